"""The card lifecycle the regulations describe (policy.md; Hainan §16-§28, §42).

- normal;
- temporary loss: 15 days, then it lapses by itself (the card works again), or
  open-ended until unlocked;
- formal loss: locked;
- unlock: back to normal, refused once a replacement was applied for;
- replacement: the old card is void from the moment the application is accepted; a new
  card is issued;
- renewal: the old card is handed back and cancelled; a new card is issued;
- cancellation on death: every card of the holder, and the e-code, are void;
- expiry 10 years after issue, with a "renew within 3 months" warning before it;
- suspension for misuse (and its reinstatement);
- applications switched on and off per card.

Time-driven states (lapse, expiry) are computed when asked, from ``today``, so the
stored row never needs a background job.

Every date that bounds something is its LAST day, inclusive, as on the chip (EF05 tag 06
is the last valid day, and the terminal's offline rules refuse only once it has passed)
and as the terminal's denylist reads ``until``: a card is expired the day after
``expires_on``, and a temporary loss set to end by date lapses the day after ``until``.
A 15-day temporary loss reported at an instant lapses at that instant plus 15 days, and
``until`` is then that instant with its zone (``2026-12-19T09:30:00+08:00``). So online
and offline give the same verdict on the boundary day, and at the boundary minute.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sscard_terminal.central.models import Application, CardStatus, lapse_passed
from sscard_terminal.decision.denylist_format import ref_of, status_of, until_text

from .central_store import CardRow, CentralStore, card_number_check

__all__ = [
    "LifecycleError",
    "apply_replacement",
    "cancel_holder",
    "denylist_document",
    "effective_status",
    "lapse_instant",
    "renew",
    "report_formal_loss",
    "report_temporary_loss",
    "set_application",
    "set_status",
    "suspend",
    "unlock",
    "validation_document",
]

TEMPORARY_LOSS_DAYS = 15
"""Days a temporary loss holds: it lapses 15 days after the instant it was reported."""
CST = dt.timezone(dt.timedelta(hours=8), "CST")
RENEWAL_WARNING_DAYS = 92
"""About 3 months: the window in which a holder should renew."""
MAX_DELTA = 20_000
"""A terminal further behind than this many changes gets a full snapshot (a delta of
20,000 is about 1.6 MB of JSON, well inside the client's 4 MB answer cap)."""

_VOID = {CardStatus.REPLACED, CardStatus.RENEWED, CardStatus.CANCELLED}


class LifecycleError(Exception):
    """A transition the regulations do not allow (e.g. unlock after replacement)."""


def effective_status(card: CardRow, today: dt.date,
                     now: dt.datetime | None = None) -> tuple[CardStatus, str, str | None]:
    """(status, reason, until) as of ``today`` (and ``now``, for a loss that lapses at an
    instant): lapsed temporary loss and expiry applied."""
    status, reason, until = card.status, card.reason, card.until
    if status is CardStatus.TEMPORARY_LOSS and until is not None and lapse_passed(
            until, now or dt.datetime.now(dt.UTC), today):
        status, reason, until = CardStatus.NORMAL, "ok", None
    if status is CardStatus.NORMAL and dt.date.fromisoformat(card.expires_on) < today:
        status, reason = CardStatus.EXPIRED, "expired"
    return status, reason, until


def _day_after(day: str | None) -> str | None:
    """When a status that ended at ``day`` gave way: the day after a last day, or the
    instant itself."""
    if day is None:
        return None
    if "T" in day:
        return day
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


def validation_document(store: CentralStore, card: CardRow | None, *, card_number: str,
                        identity_entitled: bool, today: dt.date) -> dict[str, Any]:
    """The JSON answer of card validation (docs/central-protocol.md)."""
    if card is None or not store.knows_region(card.region):
        return {"status": CardStatus.UNKNOWN.value, "reason": "unknown_card"}
    if card.card_number != card_number:
        return {"status": CardStatus.UNKNOWN.value, "reason": "card_number_mismatch"}
    status, reason, until = effective_status(card, today)
    since = card.since if status is card.status else _day_after(
        card.expires_on if status is CardStatus.EXPIRED else card.until)
    doc: dict[str, Any] = {
        "status": status.value, "reason": reason, "card_ref": card.card_ref,
        "since": since, "until": until, "expires_on": card.expires_on,
        "applications": store.enabled_applications(card.card_number),
        "entitlements": store.entitlements(card.holder_id),
    }
    expires = dt.date.fromisoformat(card.expires_on)
    if status is CardStatus.NORMAL and (expires - today).days <= RENEWAL_WARNING_DAYS:
        doc["warning"] = "renew within 3 months"
    if identity_entitled and status is not CardStatus.UNKNOWN:
        name, id_number = store.holder(card.holder_id)
        doc["holder"] = {"name": name, "id_number": id_number}
    return doc


def _require(store: CentralStore, card_number: str) -> CardRow:
    card = store.card_by_number(card_number)
    if card is None:
        raise LifecycleError(f"no card {card_number}")
    return card


def _update(store: CentralStore, card: CardRow, status: CardStatus, reason: str,
            today: dt.date, *, until: str | None = None, **extra: int | str) -> None:
    """Write a status and log the denylist change in the same transaction."""
    sets = ", ".join(f"{k} = ?" for k in extra)
    with store.atomic() as conn:
        conn.execute(
            "UPDATE cards SET status = ?, reason = ?, since = ?, until = ?"
            + (", " + sets if sets else "") + " WHERE card_number = ?",
            (status.value, reason, today.isoformat(), until, *extra.values(), card.card_number))
        was_usable = effective_status(card, today)[0].usable
        if status.usable and not was_usable:
            store.log_denylist(conn, card.card_ref, "remove", None, None, today)
        elif not status.usable:
            store.log_denylist(conn, card.card_ref, "add", status, until, today)


def _not_void(card: CardRow) -> None:
    if card.status in _VOID:
        raise LifecycleError(f"card is void ({card.status.value})")


def report_temporary_loss(store: CentralStore, card_number: str, today: dt.date, *,
                          open_ended: bool = False, until: dt.date | None = None,
                          at: dt.datetime | None = None) -> None:
    """挂失: open-ended, until a given last day, or (the default) 15 days from the report's
    instant ``at`` (default: now on ``today``), lapsing at that instant."""
    card = _require(store, card_number)
    _not_void(card)
    if card.status in (CardStatus.FORMAL_LOSS, CardStatus.SUSPENDED):
        # A temporary loss lapses by itself: on top of a lock it would undo the lock.
        raise LifecycleError(f"card is {card.status.value}: unlock or reinstate it first")
    if open_ended:
        end = None
    elif until is not None:
        end = until.isoformat()       # an end set by date (the admin's --until): last day
    else:
        end = lapse_instant(at or _reported_at(today))
    _update(store, card, CardStatus.TEMPORARY_LOSS, "temporary_loss", today, until=end)


def lapse_instant(reported: dt.datetime) -> str:
    """When a 15-day temporary loss reported at ``reported`` lapses: 15 days later to the
    second, in China Standard Time with its zone (as the protocol carries it)."""
    end = reported + dt.timedelta(days=TEMPORARY_LOSS_DAYS)
    return end.astimezone(CST).isoformat(timespec="seconds")


def _reported_at(today: dt.date) -> dt.datetime:
    """A report made on ``today`` (the server's date, in the machine's zone as
    ``date.today()`` gives it) at the current time of day."""
    now = dt.datetime.now().astimezone()
    return now + dt.timedelta(days=(today - now.date()).days)


def report_formal_loss(store: CentralStore, card_number: str, today: dt.date) -> None:
    card = _require(store, card_number)
    _not_void(card)
    _update(store, card, CardStatus.FORMAL_LOSS, "formal_loss", today)


def unlock(store: CentralStore, card_number: str, today: dt.date) -> None:
    """解挂: refused once a replacement was applied for, and for void cards."""
    card = _require(store, card_number)
    if card.replacement_pending or card.status is CardStatus.REPLACED:
        raise LifecycleError("unlock refused: a replacement was applied for")
    _not_void(card)
    _update(store, card, CardStatus.NORMAL, "ok", today)


def suspend(store: CentralStore, card_number: str, today: dt.date, *,
            reason: str = "suspended") -> None:
    card = _require(store, card_number)
    _not_void(card)
    _update(store, card, CardStatus.SUSPENDED, reason, today)


def _successor_number(card_number: str, tag: str) -> str:
    digest = hashlib.sha256(f"{card_number}:{tag}".encode()).hexdigest().upper()
    body = "R" + "".join(c for c in digest if c.isdigit())[:7].ljust(7, "0")
    return body + card_number_check(body)


def _issue_successor(store: CentralStore, card: CardRow, today: dt.date, tag: str) -> str:
    number = _successor_number(card.card_number, tag)
    issuer = hashlib.sha256(f"{card.identification_code}:{tag}".encode()).hexdigest()
    idcode = f"{card.region}D156000005{issuer[:16].upper()}"
    apps_off = tuple(a for a in Application
                     if a.value not in store.enabled_applications(card.card_number))
    with store.atomic() as conn:
        store.insert_card(conn, holder_id=card.holder_id, card_number=number,
                          identification_code=idcode, region=card.region,
                          status=CardStatus.NORMAL, reason="ok", since=today.isoformat(),
                          until=None, issued_on=today, apps_off=apps_off)
    return number


def apply_replacement(store: CentralStore, card_number: str, today: dt.date) -> str:
    """补领: the old card is void at once; returns the new card's number."""
    card = _require(store, card_number)
    _not_void(card)
    new = _issue_successor(store, card, today, "replacement")
    _update(store, card, CardStatus.REPLACED, "replaced", today, replacement_pending=1,
            successor=new)
    return new


def renew(store: CentralStore, card_number: str, today: dt.date) -> str:
    """换领: the old card is handed back and void; returns the new card's number."""
    card = _require(store, card_number)
    _not_void(card)
    new = _issue_successor(store, card, today, "renewal")
    _update(store, card, CardStatus.RENEWED, "renewed", today, successor=new)
    return new


def cancel_holder(store: CentralStore, card_number: str, today: dt.date) -> None:
    """注销 (death): every card of the holder is void, and with it the e-code."""
    card = _require(store, card_number)
    rows = store.conn.execute("SELECT card_number FROM cards WHERE holder_id = ?",
                              (card.holder_id,)).fetchall()
    for (number,) in rows:
        other = _require(store, str(number))
        if other.status is not CardStatus.CANCELLED:
            _update(store, other, CardStatus.CANCELLED, "cancelled", today, ecode_void=1)


def set_application(store: CentralStore, card_number: str, application: Application,
                    enabled: bool) -> None:
    _require(store, card_number)
    with store.atomic() as conn:
        conn.execute("UPDATE card_applications SET enabled = ? WHERE card_number = ?"
                     " AND application = ?", (int(enabled), card_number, application.value))


def set_status(store: CentralStore, card_number: str, status: CardStatus, today: dt.date, *,
               until: dt.date | None = None, open_ended: bool = False) -> str | None:
    """The admin command's entry: maps a target status onto the lifecycle transition.

    Returns the new card number for replacement and renewal.
    """
    if status is CardStatus.NORMAL:
        unlock(store, card_number, today)
    elif status is CardStatus.TEMPORARY_LOSS:
        report_temporary_loss(store, card_number, today, open_ended=open_ended, until=until)
    elif status is CardStatus.FORMAL_LOSS:
        report_formal_loss(store, card_number, today)
    elif status is CardStatus.SUSPENDED:
        suspend(store, card_number, today)
    elif status is CardStatus.REPLACED:
        return apply_replacement(store, card_number, today)
    elif status is CardStatus.RENEWED:
        return renew(store, card_number, today)
    elif status is CardStatus.CANCELLED:
        cancel_holder(store, card_number, today)
    elif status is CardStatus.EXPIRED:
        card = _require(store, card_number)
        last_day = until or today - dt.timedelta(days=1)  # expired today: yesterday was last
        with store.atomic() as conn:
            conn.execute("UPDATE cards SET expires_on = ? WHERE card_number = ?",
                         (last_day.isoformat(), card.card_number))
            store.log_denylist(conn, card.card_ref, "add", CardStatus.EXPIRED, None, today)
    else:
        raise LifecycleError(f"cannot set a card to {status.value}")
    return None


def denylist_document(store: CentralStore, since_version: int, today: dt.date, *,
                      bulk: bool = True) -> dict[str, Any]:
    """A delta since ``since_version``, or a full snapshot when too far behind (or 0, or
    behind the last bulk load). ``bulk`` False leaves the bulk entries out of a snapshot
    (the chunked form adds them as records, central_denylist.py)."""
    current = int(store.conn.execute(
        "SELECT coalesce(max(version), 0) FROM denylist_changes").fetchone()[0])
    # A terminal "ahead" of the central (its database was restored) also gets a snapshot.
    if (since_version <= 0 or since_version > current or current - since_version > MAX_DELTA
            or since_version < store.denylist_bulk_version()):
        entries = []
        if bulk:
            entries = [{"card_ref": ref_of(key), "status": status_of(rec[0]).value,
                        "until": until_text(int.from_bytes(rec[1:], "big"))}
                       for key, rec in store.denylist_bulk()]
        for (ref,) in store.conn.execute("SELECT card_ref FROM cards ORDER BY card_ref"):
            card = store.card_by_ref(str(ref))
            if card is None:
                continue
            status, _, until = effective_status(card, today)
            if not status.usable:
                entries.append({"card_ref": card.card_ref, "status": status.value,
                                "until": until})
        return {"type": "denylist", "version": current, "since_version": since_version,
                "full": True, "added": entries, "removed": []}
    latest: dict[str, tuple[str, str | None, str | None]] = {}
    for ref, action, status_text, until in store.conn.execute(
            "SELECT card_ref, action, status, until FROM denylist_changes WHERE version > ?"
            " ORDER BY version", (since_version,)):
        latest[str(ref)] = (str(action), status_text, until)
    added = [{"card_ref": ref, "status": s, "until": u}
             for ref, (a, s, u) in sorted(latest.items()) if a == "add"]
    removed = sorted(ref for ref, (a, _, _) in latest.items() if a == "remove")
    return {"type": "denylist", "version": current, "since_version": since_version,
            "full": False, "added": added, "removed": removed}
