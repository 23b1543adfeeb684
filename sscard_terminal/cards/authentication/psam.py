"""Generation 3 read authentication through a PSAM in a reader slot.

Our PSAM speaks PBOC PSAM conventions (../shared/spec/sscard-card.md, "Third-generation
cards"): ``00 A4 00 00 02 DF01`` selects its SSSE key application, ``80 1A <usage> <alg>
10 <card identification code>`` derives a card key (usage 01 K_int, 02 K_ext) and
``80 FA 00 00 10 <block>`` encrypts one block with the key derived last. The master
keys never leave the PSAM; the terminal only sees the card's diversified answers.

P2 of the derive command names the algorithm: ``00`` (the spec's default) for SM4,
``01`` for 3DES. A PSAM that does not know the algorithm answers ``6A81``/``6A86``
(unified code -2202); one without the key answers ``6A88`` (-2203).

Before touching the card, :meth:`PsamAuthenticator.check` derives both keys, so a
PSAM that lacks the read key is found out while the card is still untouched and the
caller can fall back to the central HSM.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from ...apdu.command import CommandApdu
from ...apdu.processors import ApduProcessor
from ...apdu.response import ResponseApdu
from ...apdu.transport import CardTransport
from ...errors import (
    CardCommunicationError,
    CardRefusedError,
    ForgedCardError,
    MalformedResponseError,
    ReaderError,
    SecurityModuleUnavailableError,
)
from .context import CardAuthContext

__all__ = [
    "ALGORITHM_3DES",
    "ALGORITHM_SM4",
    "CODE_NO_ALGORITHM",
    "CODE_NO_PSAM",
    "CODE_NO_READ_KEY",
    "ForgeryRecord",
    "ForgeryRecorder",
    "PsamAuthenticator",
    "authenticate_card",
    "read_terminal_number",
]

_log = logging.getLogger(__name__)

ALGORITHM_3DES = 0x01
ALGORITHM_SSF33 = 0x02
ALGORITHM_SM4 = 0x03

CODE_NO_PSAM = -2201
CODE_NO_ALGORITHM = -2202
CODE_NO_READ_KEY = -2203

USAGE_INTERNAL = 0x01
USAGE_EXTERNAL = 0x02

_SELECT_DF01 = CommandApdu(0x00, 0xA4, 0x00, 0x00, bytes.fromhex("DF01"))
_SW_OK = 0x9000
_SW_KEY_NOT_FOUND = 0x6A88
_SW_FUNCTION_NOT_SUPPORTED = 0x6A81
_SW_WRONG_P1P2 = 0x6A86


@dataclass(frozen=True)
class ForgeryRecord:
    """What is recorded about a card that failed internal authentication.

    No holder data: the card identification code identifies the card (it is what
    the issuer blacklists), not the person; the region says who issued it.
    """

    card_identification_code: str
    region: str
    algorithm: int
    module: str
    detected_at: datetime


ForgeryRecorder = Callable[[ForgeryRecord], None]
"""Called once per forged/cloned card (journal, daemon counter, central report)."""


def _p2_for(algorithm: int) -> int:
    if algorithm == ALGORITHM_SM4:
        return 0x00
    if algorithm == ALGORITHM_3DES:
        return ALGORITHM_3DES
    raise SecurityModuleUnavailableError(
        f"algorithm {algorithm:02X} is not supported by this terminal (SM4 and 3DES are)",
        code=CODE_NO_ALGORITHM,
    )


class PsamAuthenticator:
    """A :class:`~sscard_terminal.cards.authentication.context.ReadAuthenticator` backed by a PSAM.

    ``transport`` is the PSAM's own card connection (another reader, or the SAM slot).
    ``recorder`` is told about every forged card; ``forgeries_detected`` counts them.
    Not thread-safe: one PSAM serves one read at a time (the caller serialises).
    """

    def __init__(
        self, transport: CardTransport, *, recorder: ForgeryRecorder | None = None
    ) -> None:
        self._psam = ApduProcessor(transport)
        self._transport = transport
        self._in_transaction = False
        self._reader = transport.reader_name
        self._recorder = recorder
        self._ready: set[int] = set()
        """Algorithms this PSAM session has proven to hold both keys for."""
        self.forgeries_detected = 0

    @property
    def name(self) -> str:
        return f"psam:{self._reader}"

    def _exchange(self, command: CommandApdu) -> ResponseApdu:
        """One PSAM exchange; a PSAM that went away is "no PSAM", not a card problem."""
        try:
            return self._psam.send(command)
        except (CardCommunicationError, ReaderError) as exc:
            raise self._gone(exc) from exc

    def _gone(self, exc: Exception) -> SecurityModuleUnavailableError:
        """The PSAM went away: forget its checked algorithms, report "no PSAM"."""
        self._ready.clear()
        return SecurityModuleUnavailableError(
            f"{self.name}: the PSAM stopped answering: {exc}", code=CODE_NO_PSAM)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """The PSAM to ourselves: its key is "the one derived last", so another
        program's derive between our derive and encrypt would make a genuine card look
        forged. Re-entrant: the inner blocks of :meth:`authenticate` join its one."""
        if self._in_transaction:
            yield
            return
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self._transport.transaction())
            except (CardCommunicationError, ReaderError) as exc:
                raise self._gone(exc) from exc
            self._in_transaction = True
            try:
                yield
            finally:
                self._in_transaction = False

    def _psam_send(self, command: CommandApdu, what: str) -> bytes:
        response = self._exchange(command)
        if response.sw == _SW_OK:
            return response.data
        if response.sw == _SW_KEY_NOT_FOUND:
            raise SecurityModuleUnavailableError(
                f"{self.name}: no read key (RKSSSE) for this card ({what})",
                code=CODE_NO_READ_KEY,
            )
        if response.sw in (_SW_FUNCTION_NOT_SUPPORTED, _SW_WRONG_P1P2):
            raise SecurityModuleUnavailableError(
                f"{self.name}: the PSAM lacks the card's algorithm ({what})",
                code=CODE_NO_ALGORITHM,
            )
        raise SecurityModuleUnavailableError(
            f"{self.name}: {what} refused (SW {response.sw:04X})", code=CODE_NO_PSAM
        )

    def _select(self) -> None:
        response = self._exchange(_SELECT_DF01)
        if response.sw != _SW_OK and response.sw1 != 0x61:
            raise SecurityModuleUnavailableError(
                f"{self._reader}: no PSAM (SELECT DF01 answered {response.sw:04X})",
                code=CODE_NO_PSAM,
            )

    def _derive(self, usage: int, card: CardAuthContext) -> None:
        if len(card.card_identification_code) != 16:
            raise MalformedResponseError(
                "card identification code is not 16 bytes", file="EF05", record=0x01
            )
        command = CommandApdu(
            0x80, 0x1A, usage, _p2_for(card.algorithm), card.card_identification_code
        )
        self._psam_send(command, f"derive key {usage:02X}")

    def _encrypt(self, block: bytes) -> bytes:
        answer = self._psam_send(CommandApdu(0x80, 0xFA, 0x00, 0x00, block, le=0x10), "encrypt")
        if len(answer) != 16:
            raise SecurityModuleUnavailableError(
                f"{self.name}: encrypt answered {len(answer)} bytes, not 16", code=CODE_NO_PSAM
            )
        return answer

    def check(self, card: CardAuthContext) -> None:
        """Raise :class:`SecurityModuleUnavailableError` (-2201/-2202/-2203) unless the
        PSAM can serve this card; does not touch the card.

        Once the PSAM has shown it holds both keys of an algorithm, later cards of
        that algorithm skip the check (3 APDUs per read); a PSAM reset is noticed by
        :meth:`_derive_ready`, which then checks again.
        """
        _p2_for(card.algorithm)
        if card.algorithm in self._ready:
            return
        self._select()
        self._derive(USAGE_EXTERNAL, card)
        self._derive(USAGE_INTERNAL, card)
        self._ready.add(card.algorithm)

    def _derive_ready(self, usage: int, card: CardAuthContext) -> None:
        try:
            self._derive(usage, card)
        except SecurityModuleUnavailableError:
            if card.algorithm not in self._ready:  # not proven, or the PSAM went away
                raise
            # Proven before, refused now: the PSAM was reset (DF01 no longer selected).
            self._ready.discard(card.algorithm)
            self.check(card)
            self._derive(usage, card)

    def internal_answer(self, card: CardAuthContext, random: bytes) -> bytes:
        """``ENC(K_int, R)`` as the PSAM computes it."""
        with self._transaction():
            self._derive_ready(USAGE_INTERNAL, card)
            return self._encrypt(random)

    def external_cryptogram(self, card: CardAuthContext, challenge: bytes) -> bytes:
        """``ENC(K_ext, C || 00*8)`` as the PSAM computes it."""
        with self._transaction():
            self._derive_ready(USAGE_EXTERNAL, card)
            return self._encrypt(challenge.ljust(16, b"\x00"))

    def authenticate(self, processor: ApduProcessor, card: CardAuthContext) -> None:
        self.check(card)
        # One PC/SC transaction for the whole exchange rather than one per derive and
        # encrypt pair: two pcscd round trips per read instead of four.
        with self._transaction():
            authenticate_card(
                processor,
                card,
                internal=lambda random: self.internal_answer(card, random),
                external=lambda challenge: self.external_cryptogram(card, challenge),
                on_forged=self._forged,
                module=self.name,
            )

    def _forged(self, card: CardAuthContext) -> None:
        self.forgeries_detected += 1
        if self._recorder is not None:
            self._recorder(_record(card, self.name))


def _record(card: CardAuthContext, module: str) -> ForgeryRecord:
    return ForgeryRecord(
        card_identification_code=card.card_identification_code.hex().upper(),
        region=card.region,
        algorithm=card.algorithm,
        module=module,
        detected_at=datetime.now(UTC),
    )


def internal_authenticate(processor: ApduProcessor, random: bytes) -> bytes:
    """Send ``00 88 00 00 10 R``; the card's 16-byte answer."""
    response = processor.send(CommandApdu(0x00, 0x88, 0x00, 0x00, random))
    if not response.ok:
        raise CardRefusedError("the card refused internal authentication", response.sw)
    if len(response.data) != 16:
        raise MalformedResponseError(
            f"internal authentication answered {len(response.data)} bytes, not 16"
        )
    return response.data


def get_challenge(processor: ApduProcessor) -> bytes:
    """``00 84 00 00 08``: the card's 8-byte challenge."""
    response = processor.send(CommandApdu(0x00, 0x84, 0x00, 0x00, le=0x08))
    if not response.ok:
        raise CardRefusedError("the card refused GET CHALLENGE", response.sw)
    if len(response.data) != 8:
        raise MalformedResponseError(f"GET CHALLENGE answered {len(response.data)} bytes, not 8")
    return response.data


def external_authenticate(processor: ApduProcessor, cryptogram: bytes) -> None:
    """``00 82 00 0A 10 <cryptogram>`` with the read key RKSSSE; 63Cx = tries left."""
    response = processor.send(CommandApdu(0x00, 0x82, 0x00, 0x0A, cryptogram))
    if not response.ok:
        raise CardRefusedError("the card refused external authentication", response.sw)


def authenticate_card(
    processor: ApduProcessor,
    card: CardAuthContext,
    *,
    internal: Callable[[bytes], bytes],
    external: Callable[[bytes], bytes],
    on_forged: Callable[[CardAuthContext], None],
    module: str,
) -> None:
    """The card-side exchange shared by every module: internal then external.

    ``internal(R)`` returns the module's ENC(K_int, R); ``external(C)`` the cryptogram.
    A mismatch calls ``on_forged`` and raises :class:`ForgedCardError`.
    """
    random = secrets.token_bytes(16)
    answer = internal_authenticate(processor, random)
    expected = internal(random)
    if not hmac.compare_digest(answer, expected):
        _log.warning(
            "forged or cloned card refused: region %s, internal authentication by %s mismatched",
            card.region, module,
        )
        on_forged(card)
        raise ForgedCardError(
            f"internal authentication failed ({module}): the card is forged or cloned"
        )
    challenge = get_challenge(processor)
    external_authenticate(processor, external(challenge))


def read_terminal_number(transport: CardTransport) -> str:
    """The PSAM's 6-byte BCD terminal number (file 0016, read by SFI), as 12 digits."""
    psam = PsamAuthenticator(transport)
    psam._select()
    response = psam._exchange(CommandApdu(0x00, 0xB0, 0x80 | 0x16, 0x00, le=0x06))
    if not response.ok or len(response.data) != 6:
        raise SecurityModuleUnavailableError(
            f"{transport.reader_name}: no terminal number (SW {response.sw:04X})",
            code=CODE_NO_PSAM,
        )
    return response.data.hex().upper()
