"""A gate relay on a GPIO line, through the Linux GPIO character device and libgpiod.

Boards with GPIO (a Raspberry Pi-class validator, an industrial SBC) drive the gate's
relay from one output line of ``/dev/gpiochipN``. The character device (GPIO uAPI v2),
not the sysfs interface removed from current kernels, through the ``gpiod`` package
(libgpiod's own Python bindings, the ``gpio`` extra: ``gpiod>=2.1``): it owns the ioctl
structures and their versions. The line is requested as an output, inactive, with
consumer ``sscard-gate`` on first use and held (so no other process drives it); a
failing request or write releases it, the gate turns ``fault``, the next open tries
again. ``active_low`` serves relay boards that switch on a low level.

Tested without a chip (none on the development and CI machines, and no gpio-sim in
their kernels): configuration, the clear fault for a missing chip, for a device that is
not a GPIO chip and for a missing libgpiod. Driving a real line is not tested here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .gate import GateOutputError, StateCallback, TimedGate, _only

__all__ = ["GpioGate"]

_log = logging.getLogger(__name__)

_KEYS = {"driver", "chip", "line", "active_low"}
_CHIP = re.compile(r"^/dev/gpiochip\d{1,3}$")
CONSUMER = "sscard-gate"


class GpioGate(TimedGate):
    """Drives line ``line`` of ``chip`` active to open, inactive to close."""

    driver = "gpio"

    def __init__(self, chip: str, line: int, *, active_low: bool = False,
                 on_change: StateCallback | None = None) -> None:
        super().__init__(on_change=on_change)
        self.chip = chip
        self.line = line
        self.active_low = active_low
        self._request: Any = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, where: str,
                    on_change: StateCallback | None = None) -> GpioGate:
        _only(config, _KEYS, where)
        chip = config.get("chip")
        if not isinstance(chip, str) or not _CHIP.match(chip):
            raise ConfigError(f"{where}.chip: a GPIO character device such as "
                              f"/dev/gpiochip0; got {chip!r}")
        line = config.get("line")
        if isinstance(line, bool) or not isinstance(line, int) or not 0 <= line < 1024:
            raise ConfigError(f"{where}.line: the line offset on the chip (0..1023), "
                              f"not {line!r}")
        active_low = config.get("active_low", False)
        if not isinstance(active_low, bool):
            raise ConfigError(f"{where}.active_low: true or false")
        return cls(chip, line, active_low=active_low, on_change=on_change)

    def _energise(self) -> None:
        self._drive(active=True)

    def _release(self) -> None:
        self._drive(active=False)

    def _free(self) -> None:
        self._drop()

    def _drive(self, *, active: bool) -> None:
        try:
            import gpiod  # noqa: PLC0415 - libgpiod only where a GPIO gate is configured
            from gpiod.line import Direction, Value  # noqa: PLC0415
        except ImportError as exc:
            raise GateOutputError("GPIO gate needs libgpiod's bindings: pip install "
                            "'sscard-terminal[gpio]'") from exc
        value = Value.ACTIVE if active else Value.INACTIVE
        try:
            if self._request is None:
                settings = gpiod.LineSettings(direction=Direction.OUTPUT,
                                              output_value=Value.INACTIVE,
                                              active_low=self.active_low)
                self._request = gpiod.request_lines(self.chip, consumer=CONSUMER,
                                                    config={self.line: settings})
            self._request.set_value(self.line, value)
        except (OSError, ValueError, gpiod.RequestReleasedError) as exc:
            self._drop()
            raise GateOutputError(f"GPIO {self.chip} line {self.line}: {exc}") from exc

    def _drop(self) -> None:
        if self._request is not None:
            try:
                self._request.release()
            except Exception as exc:  # a vanished chip raises from release too
                _log.debug("releasing %s line %d: %s", self.chip, self.line, exc)
            self._request = None
