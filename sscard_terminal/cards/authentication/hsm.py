"""Generation 3 read authentication through the central system's HSM, in two steps.

For terminals without a PSAM (or whose PSAM lacks the key or algorithm) the unified
interface splits the exchange (``iReadCardBas_HSM_Step1`` / ``_Step2``):

1. :func:`hsm_step1` runs the card side: INTERNAL AUTHENTICATE with a fresh random R
   (the card's answer stays here, in the :class:`HsmStep1`) and GET CHALLENGE C;
2. the HSM (``POST /v1/hsm/read-auth``) answers the key string
   ``ENC(K_int, R) | ENC(K_ext, C || 00*8)``, 32 hex each;
3. :func:`hsm_step2` compares ALL of the expected internal answer with the card's (a
   mismatch is a forged card, unified code -25) and sends the cryptogram in
   EXTERNAL AUTHENTICATE.

:class:`HsmTwoStepAuthenticator` runs the three in one go for the read path.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ...apdu.processors import ApduProcessor
from ...deadline import Deadline
from ...errors import (
    CentralError,
    CentralProtocolError,
    ForgedCardError,
    SecurityModuleUnavailableError,
)
from .context import CardAuthContext
from .psam import (
    ForgeryRecord,
    ForgeryRecorder,
    external_authenticate,
    get_challenge,
    internal_authenticate,
)

__all__ = [
    "CODE_HSM_MISMATCH",
    "HSM_READ_AUTH_PATH",
    "HsmKey",
    "HsmStep1",
    "HsmTwoStepAuthenticator",
    "JsonPoster",
    "hsm_step1",
    "hsm_step2",
    "parse_hsm_key",
]

_log = logging.getLogger(__name__)

HSM_READ_AUTH_PATH = "/v1/hsm/read-auth"
CODE_HSM_MISMATCH = -25
CODE_UNKNOWN = -999
_DEFAULT_BUDGET_S = 2.0


class JsonPoster(Protocol):
    """The part of :class:`~sscard_terminal.central.client.CentralClient` used here."""

    def post_json(self, path: str, body: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        ...


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdefABCDEF" for c in text)


@dataclass(frozen=True)
class HsmStep1:
    """What step 1 learned from the card; ``card_answer`` never leaves the terminal."""

    card: CardAuthContext
    internal_random: bytes
    card_answer: bytes
    external_original: bytes
    """The card's challenge C padded to 16 bytes; empty for generation 1/2 cards."""

    def request_body(self) -> dict[str, Any]:
        """The JSON body of ``POST /v1/hsm/read-auth`` (no holder data in it)."""
        return {
            "region": self.card.region,
            "atr": self.card.atr.hex().upper(),
            "algorithm": self.card.algorithm,
            "card_identification_code": self.card.card_identification_code.hex().upper(),
            "internal_random": self.internal_random.hex().upper(),
            "external_challenge": self.external_original.hex().upper(),
        }


@dataclass(frozen=True)
class HsmKey:
    """The HSM's answer: expected internal answer and external cryptogram."""

    expected_internal: bytes
    external_cryptogram: bytes


def parse_hsm_key(key: str) -> HsmKey:
    """Parse ``<32 hex>|<32 hex>`` (a trailing ``|`` and an empty external part allowed)."""
    parts = key.strip().split("|")
    if parts and parts[-1] == "" and len(parts) == 3:
        parts = parts[:2]
    if len(parts) == 1:
        parts.append("")
    if len(parts) != 2 or not _is_hex(parts[0], 32) or not (
        parts[1] == "" or _is_hex(parts[1], 32)
    ):
        raise CentralProtocolError("HSM key string is not '<32 hex>|<32 hex>'")
    return HsmKey(bytes.fromhex(parts[0]), bytes.fromhex(parts[1]))


def hsm_step1(
    processor: ApduProcessor, card: CardAuthContext, *, external: bool = True
) -> HsmStep1:
    """Internal authentication and (for generation 3) GET CHALLENGE on the card."""
    random = secrets.token_bytes(16)
    answer = internal_authenticate(processor, random)
    challenge = get_challenge(processor).ljust(16, b"\x00") if external else b""
    return HsmStep1(card, random, answer, challenge)


def hsm_step2(processor: ApduProcessor, step1: HsmStep1, key: HsmKey) -> None:
    """Compare the whole expected internal answer, then send the cryptogram.

    Raises :class:`ForgedCardError` on a mismatch (unified -25); nothing is sent then.
    """
    if not hmac.compare_digest(step1.card_answer, key.expected_internal):
        raise ForgedCardError(
            "internal authentication disagrees with the HSM: the card is forged or cloned"
        )
    if step1.external_original:
        if not key.external_cryptogram:
            raise CentralProtocolError("HSM answered no external cryptogram (generation 3)")
        external_authenticate(processor, key.external_cryptogram)


class HsmTwoStepAuthenticator:
    """A :class:`~sscard_terminal.cards.authentication.context.ReadAuthenticator` over the
    central HSM.

    ``central`` is a ``CentralClient`` (anything with ``post_json``). Each
    authentication gets ``budget_s`` seconds unless the caller passes a deadline.
    """

    def __init__(
        self,
        central: JsonPoster,
        *,
        budget_s: float = _DEFAULT_BUDGET_S,
        recorder: ForgeryRecorder | None = None,
    ) -> None:
        self._central = central
        self._budget_s = budget_s
        self._recorder = recorder
        self.forgeries_detected = 0

    @property
    def name(self) -> str:
        return "hsm:central"

    def ask(self, step1: HsmStep1, deadline: Deadline) -> HsmKey:
        """Ask the HSM for the key string of ``step1``."""
        deadline.check("HSM read authentication")
        try:
            answer = self._central.post_json(HSM_READ_AUTH_PATH, step1.request_body(), deadline)
        except CentralError as exc:
            raise SecurityModuleUnavailableError(
                f"central HSM cannot authenticate the card: {exc}", code=CODE_UNKNOWN
            ) from exc
        key = answer.get("key")
        if not isinstance(key, str):
            raise CentralProtocolError("HSM answer has no 'key' string")
        return parse_hsm_key(key)

    def authenticate(
        self, processor: ApduProcessor, card: CardAuthContext, deadline: Deadline | None = None
    ) -> None:
        budget = deadline if deadline is not None else Deadline.after(self._budget_s)
        step1 = hsm_step1(processor, card)
        key = self.ask(step1, budget)
        try:
            hsm_step2(processor, step1, key)
        except ForgedCardError:
            self.forgeries_detected += 1
            _log.warning("forged or cloned card refused: region %s, HSM mismatch", card.region)
            if self._recorder is not None:
                self._recorder(
                    ForgeryRecord(
                        card_identification_code=card.card_identification_code.hex().upper(),
                        region=card.region,
                        algorithm=card.algorithm,
                        module=self.name,
                        detected_at=datetime.now(UTC),
                    )
                )
            raise
