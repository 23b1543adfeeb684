"""The lanes' gate outputs in the daemon (issue 18): built from ``[lanes.NAME.gate]``,
driven through :class:`~sscard_terminal.drivers.gate.GateController`.

- **Opens for accepts only**, for the profile's ``gate.open_ms``; a refusal or a deferral
  never reaches the driver.
- **Never on the event loop.** A serial relay's write may block up to its write timeout,
  so every open runs on a thread of its own (one, so a gate's frames keep their order);
  the lane has already published and moves on.
- **A gate that fails is a lane fault, not a lost transaction**: the presentation is
  journaled before the gate is asked; the fault turns the lane's gate to ``fault`` in
  ``status`` (and so ``health``), is counted on the lane (``gate.faults``) and published
  as a ``gate`` event; the next accept tries the gate again.
- Two lanes configured with the same device (the card reader and the scanner of one gate)
  share one output: one owner of the port or GPIO line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..drivers.gate import GateController, GateOutput, GateState, gate_from_config
from ..errors import ConfigError
from ..local_api.status import GateStatus
from .config import DaemonConfig
from .config import GateOutput as GateConfig

__all__ = ["LaneGates"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Shown:
    """What :class:`GateController` needs of a published presentation."""

    accepted: bool
    transaction_id: str


class LaneGates:
    """Every configured lane's gate, its controller and its state for ``status``."""

    def __init__(self, config: DaemonConfig, *,
                 publish: Callable[[Mapping[str, object]], object],
                 on_fault: Callable[[str], None]) -> None:
        self._publish = publish
        self._on_fault = on_fault
        self._outputs: list[GateOutput] = []
        shared: dict[GateConfig, GateOutput] = {}
        self._controllers: dict[str, GateController] = {}
        self._executor: ThreadPoolExecutor | None = None
        open_seconds = config.profile.gate_open_ms / 1000.0
        for lane in config.lanes:
            if lane.gate is None:
                continue
            output = shared.get(lane.gate)
            if output is None:
                try:
                    output = gate_from_config(lane.gate.driver_config(),
                                              where=f"lanes.{lane.name}.gate")
                except ConfigError as exc:
                    raise ConfigError(f"{config.source}: key {exc}") from exc
                self._outputs.append(output)
                if lane.gate.device or lane.gate.chip:      # a sim gate is each lane's own
                    shared[lane.gate] = output
            add_listener = getattr(output, "add_listener", None)
            if callable(add_listener):
                add_listener(self._listener(lane.name))
            self._controllers[lane.name] = GateController(
                output, open_seconds=open_seconds, lane=lane.name,
                on_fault=lambda name, _why: self._on_fault(name))
        if self._controllers:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sscard-gate")

    def _listener(self, lane: str) -> Callable[[GateState, str | None], None]:
        def changed(state: GateState, fault: str | None) -> None:
            log.log(logging.ERROR if fault else logging.INFO, "lane %s: gate %s%s", lane,
                    state.value, f" ({fault})" if fault else "", extra={"lane": lane})
            event: dict[str, object] = {"lane": lane, "state": state.value}
            if fault is not None:
                event["fault"] = fault
            self._publish(event)
        return changed

    def present(self, lane: str, event: Mapping[str, object]) -> Future[bool] | None:
        """Open ``lane``'s gate if ``event`` is an accepted presentation (on the gate
        thread); None when the lane has no gate or nothing is to open."""
        controller = self._controllers.get(lane)
        if controller is None or self._executor is None or event.get("outcome") != "accept":
            return None
        shown = _Shown(accepted=True, transaction_id=str(event.get("transaction_id", "")))
        return self._executor.submit(controller.present, shown)

    def set_open_time(self, config: DaemonConfig) -> None:
        """A reload's profile may change the open time."""
        for controller in self._controllers.values():
            controller.open_seconds = config.profile.gate_open_ms / 1000.0

    def status(self) -> dict[str, GateStatus]:
        found = {}
        for lane, controller in self._controllers.items():
            gate = controller.gate
            found[lane] = GateStatus(driver=str(getattr(gate, "driver", "gate")),
                                     state=gate.state.value,
                                     fault=getattr(gate, "fault", None))
        return found

    def shutdown(self) -> None:
        """Finish the opens in progress, then release every output."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        for output in self._outputs:
            try:
                output.shutdown()
            except Exception as exc:
                log.warning("releasing a gate at shutdown failed: %s", type(exc).__name__)
