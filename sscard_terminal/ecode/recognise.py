"""Tell which kind of code a scanned text is, by its shape alone.

Neither the national e-card (电子社保卡) nor the medical insurance e-voucher (医保电子凭证)
publishes a prefix, so their shapes come from the deployment profile; only our own format
is known by its ``SC1:`` prefix. A text that matches no configured shape is
:attr:`CodeKind.UNKNOWN` and is refused: guessing would send a stranger's text to the
wrong verifier.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError
from .format import PREFIX

__all__ = ["SIMULATOR_SHAPES", "CodeKind", "CodeShape", "RecognitionProfile"]


class CodeKind(enum.Enum):
    """What a scanned text is."""

    OURS = "ours"                 # the open signed format: offline-capable
    NATIONAL = "national"         # national e-card code: opaque, online only
    EVOUCHER = "evoucher"         # medical insurance e-voucher: opaque, online only
    UNKNOWN = "unknown"

    @property
    def online_only(self) -> bool:
        """Opaque codes can only be judged by the central's verify endpoint."""
        return self in (CodeKind.NATIONAL, CodeKind.EVOUCHER)


@dataclass(frozen=True)
class CodeShape:
    """One kind's shape: a full-match regular expression and a length limit."""

    kind: CodeKind
    pattern: re.Pattern[str]
    max_length: int = 512

    @classmethod
    def parse(cls, kind: CodeKind, pattern: str, max_length: int = 512) -> CodeShape:
        """Compile a profile's pattern; a bad one is a :class:`ConfigError`."""
        try:
            return cls(kind, re.compile(pattern), max_length)
        except re.error as exc:
            raise ConfigError(f"bad code shape for {kind.value}: {exc}") from exc

    def matches(self, text: str) -> bool:
        return len(text) <= self.max_length and self.pattern.fullmatch(text) is not None


# The simulator's test shapes for opaque codes (tests/hardware_sim/central_ecodes.py
# issues these). Real deployments put the shapes of their province in the profile.
SIMULATOR_SHAPES: Mapping[str, str] = {
    "national": r"ESSC[0-9A-F]{32,128}",
    "evoucher": r"NHSA[0-9A-F]{32,128}",
}


@dataclass(frozen=True)
class RecognitionProfile:
    """The opaque shapes a profile accepts; our prefix is always recognised first."""

    shapes: tuple[CodeShape, ...] = field(default_factory=tuple)

    @classmethod
    def from_mapping(cls, shapes: Mapping[str, str]) -> RecognitionProfile:
        """Build from a profile section ``{"national": regex, "evoucher": regex}``."""
        parsed = []
        for name, pattern in shapes.items():
            try:
                kind = CodeKind(name)
            except ValueError as exc:
                raise ConfigError(f"unknown code kind {name!r} in profile") from exc
            if not kind.online_only:
                raise ConfigError(f"{name!r} is not an opaque code kind")
            parsed.append(CodeShape.parse(kind, pattern))
        return cls(tuple(parsed))

    def recognise(self, text: str) -> CodeKind:
        """The kind of ``text``; :attr:`CodeKind.UNKNOWN` when nothing matches."""
        if text.startswith(PREFIX):
            return CodeKind.OURS
        for shape in self.shapes:
            if shape.matches(text):
                return shape.kind
        return CodeKind.UNKNOWN
