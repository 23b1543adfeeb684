"""The unified interface's two-step HSM read: ``iReadCardBas_HSM_Step1`` / ``_Step2``.

Step 1 answers ``区划代码|卡复位信息|算法标识|卡识别码|内部认证过程因子|内部认证原始信息|
外部认证过程因子|外部认证原始信息|`` (../shared/spec/sscard-card.md). In our protocol
both 过程因子 are the card identification code (the key-diversification input), the
internal 原始信息 is the random R of INTERNAL AUTHENTICATE and the external one the
card's challenge C padded to 16 bytes; for generation 1/2 cards the external fields are
empty. The HIS passes the step-1 string to its HSM and feeds the HSM's key string
(``ENC(K_int, R)|ENC(K_ext, C||00*8)``, 32 hex each) to step 2, which compares all 32
hex of the internal answer (-25 on a mismatch), authenticates the terminal and returns
the ``iReadCardBas`` string. The card must stay in the reader between the steps.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime

from ...apdu.processors import ApduProcessor
from ...apdu.transport import CardTransport
from ...errors import CentralProtocolError, InputError, SscardError
from ..authentication.context import CardAuthContext
from ..authentication.hsm import HsmKey, HsmStep1, hsm_step1, parse_hsm_key
from ..authentication.psam import ForgeryRecord, ForgeryRecorder, external_authenticate
from ..ssse import read_card_info
from .basic_info import UnifiedCode, format_basic_info, unified_code_for

__all__ = [
    "TWO_STEP_MODULE",
    "HsmTwoStepSession",
    "format_step1",
    "parse_step2_key",
    "unified_auth_code_for",
]

_log = logging.getLogger(__name__)

TWO_STEP_MODULE = "hsm:two-step"
"""The module named in a :class:`ForgeryRecord` of the two-step (the caller's HSM)."""


def format_step1(step1: HsmStep1, historical_bytes: bytes) -> str:
    """The step-1 string (8 fields, trailing ``|``)."""
    card = step1.card
    idcode = card.card_identification_code.hex().upper()
    external = bool(step1.external_original)
    fields = [
        card.region,
        historical_bytes.hex().upper(),
        f"{card.algorithm:02X}",
        idcode,
        idcode,
        step1.internal_random.hex().upper(),
        idcode if external else "",
        step1.external_original.hex().upper() if external else "",
    ]
    return "".join(f"{field}|" for field in fields)


def parse_step2_key(key: str) -> HsmKey:
    """Step 2's input: the HSM's ``<32 hex>|<32 hex>`` key string, as the caller (the HIS)
    passes it on. A string that does not parse is the caller's :class:`InputError` (-23),
    not the central's: no central answered it here."""
    try:
        return parse_hsm_key(key)
    except CentralProtocolError as exc:
        raise InputError(str(exc)) from None


unified_auth_code_for = unified_code_for
"""The unified code of a read-authentication error: :func:`.basic_info.unified_code_for`
itself (one table), kept under this name for callers of the HSM two-step. Pass
``hsm=True`` for the two-step, where a disagreeing internal authentication is -25."""


class _ExternalOnly:
    """Sends the HSM's cryptogram when the read path asks for authentication."""

    name = "hsm:central"

    def __init__(self, cryptogram: bytes) -> None:
        self._cryptogram = cryptogram

    def authenticate(self, processor: ApduProcessor, card: CardAuthContext) -> None:
        if not self._cryptogram:
            raise InputError("HSM key string has no external cryptogram")
        external_authenticate(processor, self._cryptogram)


class HsmTwoStepSession:
    """One card, read in two steps; return codes and strings as the unified interface.

    ``step1()`` -> ``(0, step-1 string)`` or ``(negative code, "")``;
    ``step2(key)`` -> ``(0, iReadCardBas string)`` or ``(negative code, "")``.
    The iReadCardBas string carries personal data in clear (HIS expects it): never log it.
    A card whose internal answer disagrees with the HSM (-25) is counted in
    ``forgeries_detected`` and told to ``recorder``, as on the one-step read.
    """

    def __init__(
        self,
        transport: CardTransport,
        *,
        terminal_number: str = "",
        device_number: str = "",
        recorder: ForgeryRecorder | None = None,
    ) -> None:
        self._transport = transport
        self._terminal_number = terminal_number
        self._device_number = device_number
        self._recorder = recorder
        self._step1: HsmStep1 | None = None
        self.forgeries_detected = 0

    def step1(self) -> tuple[int, str]:
        try:
            info = read_card_info(self._transport)
            if not info.card_identification_code:
                return int(UnifiedCode.BAD_CARD_IDENTIFICATION_CODE), ""
            context = CardAuthContext(
                card_identification_code=bytes.fromhex(info.card_identification_code),
                algorithm=info.algorithm if info.algorithm is not None else 0x03,
                atr=info.atr,
                region=info.region,
            )
            generation = info.generation
            external = generation is not None and generation >= 3
            self._step1 = hsm_step1(ApduProcessor(self._transport), context, external=external)
            return 0, format_step1(self._step1, info.historical_bytes)
        except SscardError as exc:
            self._step1 = None
            return unified_code_for(exc, hsm=True), ""

    def step2(self, key: str) -> tuple[int, str]:
        step1, self._step1 = self._step1, None
        if step1 is None:
            return int(UnifiedCode.ILLEGAL_INPUT), ""
        try:
            parsed = parse_step2_key(key)
            if not hmac.compare_digest(step1.card_answer, parsed.expected_internal):
                self._forged(step1.card)
                return int(UnifiedCode.HSM_MISMATCH), ""
            info = read_card_info(
                self._transport, authenticator=_ExternalOnly(parsed.external_cryptogram)
            )
            text = format_basic_info(
                info, terminal_number=self._terminal_number, device_number=self._device_number
            )
            assert isinstance(text, str)
            return 0, text
        except SscardError as exc:
            return unified_code_for(exc, hsm=True), ""

    def _forged(self, card: CardAuthContext) -> None:
        self.forgeries_detected += 1
        _log.warning("forged or cloned card refused: region %s, two-step HSM mismatch",
                     card.region)
        if self._recorder is not None:
            self._recorder(ForgeryRecord(
                card_identification_code=card.card_identification_code.hex().upper(),
                region=card.region,
                algorithm=card.algorithm,
                module=TWO_STEP_MODULE,
                detected_at=datetime.now(UTC),
            ))
