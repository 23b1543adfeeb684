"""Text views of the daemon for technicians: one screen of status, one line per event.

Pure functions from the local API's JSON (``status``, ``health``, ``last_decision``,
events) to text, so ``sscard status`` and ``sscard events`` stay thin and the views are
tested without a terminal. The JSON holds no personal data in clear; neither does this.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

__all__ = ["event_line", "status_screen"]


def _age(seconds: object) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _get(mapping: object, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, Mapping) else None


def status_screen(status: Mapping[str, Any], health: Mapping[str, Any],
                  last: Mapping[str, Any] | None) -> str:
    """One screen: health, lanes, central, journal, lists, the last decision."""
    state = str(_get(health, "state") or "?")
    problems = _get(health, "problems") or []
    lines = [
        f"sscard-terminald {status.get('version', '?')}  "
        f"terminal {status.get('terminal_id') or '-'}  profile {status.get('profile') or '-'}"
        f"  up {_age(status.get('uptime_s'))}",
        f"health: {state.upper()}" + (f" ({'; '.join(map(str, problems))})" if problems else ""),
        "",
        f"{'LANE':<14}{'KIND':<6}{'STATE':<22}{'FOR':>7}  {'GATE':<16}{'FAULTS':>6}  DEVICE",
    ]
    lanes = status.get("lanes") or []
    for lane in lanes:
        gate = _get(lane, "gate")
        gate_text = "-" if not gate else f"{_get(gate, 'driver')}:{_get(gate, 'state')}"
        lines.append(f"{_get(lane, 'name')!s:<14}{_get(lane, 'kind')!s:<6}"
                     f"{_get(lane, 'state')!s:<22}{_age(_get(lane, 'since_s')):>7}  "
                     f"{gate_text:<16}{_get(lane, 'faults') or 0:>6}  {_get(lane, 'device') or ''}")
    if not lanes:
        lines.append("(no lanes)")
    central = status.get("central") or {}
    journal = status.get("journal") or {}
    denylist = status.get("denylist") or {}
    trust = status.get("trust_list") or {}
    latency = _get(central, "latency_ms")
    lines += [
        "",
        f"central    {_get(central, 'link') or '?'}, breaker {_get(central, 'circuit') or '?'}"
        f", last success {_age(_get(central, 'last_success_age_s'))} ago"
        + (f", {latency:.0f} ms" if isinstance(latency, int | float) else ""),
        f"journal    {_get(journal, 'depth') if _get(journal, 'depth') is not None else '?'}"
        f" undelivered, oldest {_age(_get(journal, 'oldest_age_s'))}"
        + (", FULL" if _get(journal, "full") else ""),
        f"denylist   version {_get(denylist, 'version') or '-'}, "
        f"{_get(denylist, 'size') if _get(denylist, 'size') is not None else '?'} entries, "
        f"age {_age(_get(denylist, 'age_s'))}",
        f"trust list version {_get(trust, 'version') or '-'}, age {_age(_get(trust, 'age_s'))}",
        "",
        "last decision: " + (event_line(last) if last else "none yet"),
    ]
    return "\n".join(lines)


def event_line(event: Mapping[str, Any]) -> str:
    """One line per event: time, type, lane and what happened."""
    at = event.get("at")
    clock = time.strftime("%H:%M:%S", time.localtime(at)) if isinstance(at, int | float) \
        else "--:--:--"
    kind = event.get("type")
    lane = event.get("lane") or "-"
    if kind == "presentation":
        mode = "online" if event.get("online") else "offline"
        elapsed = event.get("elapsed_ms")
        took = f" {elapsed:.0f} ms" if isinstance(elapsed, int | float) else ""
        extra = f" {event['concession']}" if event.get("concession") else ""
        return (f"{clock} {lane} {event.get('channel', '?')} {event.get('outcome', '?').upper()}"
                f" {event.get('reason', '?')} ({mode}{took}){extra} "
                f"tx {str(event.get('transaction_id') or '-')[:8]}")
    if kind == "lane":
        fault = f" ({event['fault']})" if event.get("fault") else ""
        return f"{clock} {lane} lane {event.get('previous') or '?'} -> {event.get('state')}{fault}"
    if kind == "gate":
        fault = f" ({event['fault']})" if event.get("fault") else ""
        return f"{clock} {lane} gate {event.get('state')}{fault}"
    if kind == "central":
        return f"{clock} central {event.get('link')}, breaker {event.get('circuit') or '?'}"
    if kind == "lagged":
        return f"{clock} (missed {event.get('missed')} events: this reader fell behind)"
    return f"{clock} {kind}"
