"""Tell which kind of code a scanned text is, by its shape alone.

Neither the national e-card (电子社保卡) nor the medical insurance e-voucher (医保电子凭证)
publishes a prefix, so their shapes come from the deployment profile; only our own format
is known by its ``SC1:`` prefix. Shapes come from the profile's ``[[ecode.shapes]]``
and, over those, the terminal's own ``code_shapes``; both are checked the same way. A
text that matches no configured shape is :attr:`CodeKind.UNKNOWN` and is refused:
guessing would send a stranger's text to the wrong verifier.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError
from .format import PREFIX

__all__ = ["ONLINE_VERIFIERS", "SIMULATOR_SHAPES", "CodeKind", "CodeShape", "RecognitionProfile"]


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


ONLINE_VERIFIERS = ("central",)
"""Where an opaque code is verified: ``central`` is the central's verify endpoint
(``/v1/ecodes/verify``), which forwards to the national or provincial platform."""

# Texts no real code shape should match all of: a pattern that does is a catch-all and
# would send every stranger's text (a URL, a payment code) to a verifier as a credential.
_PROBES = ("a", "Z9", " ", "\x00", "中文", "SC1:ABC", "https://example.com/?q=1",
           "0" * 64, "!@#$%^&*()", "ESSC" + "0" * 40, "NHSA" + "0" * 40)


@dataclass(frozen=True)
class CodeShape:
    """One kind's shape: a full-match regular expression, a length limit and the online
    verifier its codes go to."""

    kind: CodeKind
    pattern: re.Pattern[str]
    max_length: int = 512
    verifier: str = "central"

    @classmethod
    def parse(cls, kind: CodeKind, pattern: str, max_length: int = 512,
              verifier: str = "central", *, key: str | None = None) -> CodeShape:
        """Compile and check a configured shape; a bad one is a :class:`ConfigError`
        naming ``key`` (the profile or settings key it came from).

        Refused: a pattern that does not compile, one that matches the empty string or
        every probe text (a catch-all), a length limit outside 8..4096, an unknown
        verifier, a kind that is not an opaque one (ours is known by its prefix).
        """
        where = key or f"code shape {kind.value}"
        if not kind.online_only:
            raise ConfigError(f"{where}: {kind.value!r} is not an opaque code kind "
                              "(use national or evoucher)")
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{where}: the pattern must be a non-empty string")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}: not a valid regular expression: {exc}") from exc
        if compiled.fullmatch("") is not None:
            raise ConfigError(f"{where}: the pattern {pattern!r} matches the empty string")
        if all(compiled.fullmatch(probe) is not None for probe in _PROBES):
            raise ConfigError(f"{where}: the pattern {pattern!r} matches every string: "
                              "give the code's real shape")
        whole = isinstance(max_length, int) and not isinstance(max_length, bool)
        if not whole or not 8 <= max_length <= 4096:
            raise ConfigError(f"{where}: max_length must be whole characters in 8..4096")
        if verifier not in ONLINE_VERIFIERS:
            raise ConfigError(f"{where}: unknown online verifier {verifier!r} "
                              f"(allowed: {', '.join(ONLINE_VERIFIERS)})")
        return cls(kind, compiled, max_length, verifier)

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
    def from_mapping(cls, shapes: Mapping[str, str], *,
                     key: str = "code_shapes") -> RecognitionProfile:
        """Build from a settings mapping ``{"national": regex, "evoucher": regex}``."""
        return cls(tuple(_parse_named(name, pattern, f"{key}.{name}")
                         for name, pattern in shapes.items()))

    def overridden_by(self, other: RecognitionProfile) -> RecognitionProfile:
        """These shapes, with every kind ``other`` configures taken from ``other`` (a
        terminal's own configuration over its profile's)."""
        replaced = {shape.kind for shape in other.shapes}
        return RecognitionProfile((*other.shapes,
                                   *(s for s in self.shapes if s.kind not in replaced)))

    def recognise(self, text: str) -> CodeKind:
        """The kind of ``text``; :attr:`CodeKind.UNKNOWN` when nothing matches."""
        if text.startswith(PREFIX):
            return CodeKind.OURS
        for shape in self.shapes:
            if shape.matches(text):
                return shape.kind
        return CodeKind.UNKNOWN


def _parse_named(name: str, pattern: str, key: str) -> CodeShape:
    try:
        kind = CodeKind(name)
    except ValueError:
        raise ConfigError(f"{key}: unknown code kind {name!r} "
                          "(allowed: national, evoucher)") from None
    return CodeShape.parse(kind, pattern, key=key)
