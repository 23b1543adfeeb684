"""Verify a scanned e-code, offline when the format allows and online when it must.

Our signed codes (``SC1:``) are verified offline: signature against the trust list,
validity window with a clock-skew tolerance, then the replay cache. When a central is
configured and answers in time, its verdict on the card (same status as a card tap:
卡码同权) is added, and a card the central refuses is refused here too. National e-card
and e-voucher codes are opaque: only the central can judge them, and when it cannot be
reached the profile decides whether they are refused or deferred.

Every refusal is a returned :class:`ECodeVerification` with a stable :class:`Reason`,
never an exception: hostile input is an ordinary event at a gate.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from ..central.models import CardValidation, ECodeCheck
from ..deadline import Deadline
from ..errors import (
    CentralRefusedError,
    CentralUnreachableError,
    DeadlineExceededError,
    ECodeRefusedError,
    MalformedECodeError,
    SscardError,
)
from .algorithms import DEFAULT_ALGORITHMS, SignatureAlgorithm
from .cose import decode_sign1
from .format import decode_text
from .payload import ECodePayload
from .reasons import Reason
from .recognise import CodeKind, RecognitionProfile
from .replay_cache import ReplayCache
from .trust_list import TrustListProvider

__all__ = ["ECodeCentral", "ECodeVerification", "ECodeVerifier", "OpaquePolicy"]

_log = logging.getLogger(__name__)

OpaquePolicy = Literal["refuse", "defer"]


class ECodeCentral(Protocol):
    """The part of the central client the verifier uses."""

    def verify_ecode(self, code_text: str, deadline: Deadline) -> ECodeCheck:
        """The central's verdict on a code, with the card behind it (卡码同权)."""
        ...


@dataclass(frozen=True)
class ECodeVerification:
    """The outcome for one code. Holds no personal data: ``card_ref`` is a pseudonym."""

    accepted: bool
    reason: Reason
    message: str
    kind: CodeKind
    card_ref: str | None = None
    region: str | None = None
    online: bool = False
    validation: CardValidation | None = None
    """The central's answer about the card, the same as for a tap of that card."""

    @property
    def deferred(self) -> bool:
        """Neither accepted nor refused: decide later, when the central is back."""
        return self.reason is Reason.DEFERRED

    def raise_if_refused(self) -> None:
        """Raise :class:`ECodeRefusedError` (with the reason) unless accepted."""
        if not self.accepted:
            raise ECodeRefusedError(f"e-code refused: {self.message}", self.reason.value)


class ECodeVerifier:
    """Verifies codes of every kind the profile recognises. Thread-safe if its replay
    cache and providers are (the shipped ones are)."""

    def __init__(
        self,
        trust_list_provider: TrustListProvider,
        replay_cache: ReplayCache,
        *,
        clock_skew: float = 30.0,
        central: ECodeCentral | None = None,
        opaque_policy: OpaquePolicy = "refuse",
        recognition: RecognitionProfile | None = None,
        algorithms: Mapping[int, SignatureAlgorithm] = DEFAULT_ALGORITHMS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # ``not 0 <= x < inf`` also catches NaN: a NaN skew made both window comparisons
        # false, and every expired code passed.
        if not 0 <= clock_skew < math.inf:
            raise ValueError("clock_skew must be a finite, non-negative number of seconds")
        if opaque_policy not in ("refuse", "defer"):
            raise ValueError("opaque_policy is 'refuse' or 'defer'")
        self._trust = trust_list_provider
        self._replay = replay_cache
        self._skew = clock_skew
        self._central = central
        self._opaque_policy = opaque_policy
        self._recognition = recognition or RecognitionProfile()
        self._algorithms = algorithms
        self._clock = clock
        self._header_cache: dict[bytes, tuple[int, bytes]] = {}

    def verify(self, text: str, *, deadline: Deadline) -> ECodeVerification:
        """Judge one scanned code within ``deadline``."""
        text = text.strip()
        kind = self._recognition.recognise(text)
        if kind is CodeKind.UNKNOWN:
            return _refuse(kind, Reason.UNKNOWN_KIND, "the code matches no known shape")
        if kind.online_only:
            return self._verify_opaque(text, kind, deadline)
        return self._verify_ours(text, deadline)

    # --- our signed format -------------------------------------------------------------

    def _verify_ours(self, text: str, deadline: Deadline) -> ECodeVerification:
        kind = CodeKind.OURS
        try:
            sign1 = decode_sign1(decode_text(text), self._header_cache)
        except MalformedECodeError as exc:
            return _refuse(kind, Reason(exc.reason), str(exc))
        try:
            trust = self._trust.trust_list(deadline)
        except SscardError as exc:
            # The refusal carries the cause; the caller reports it (once), so this is
            # only a debugging aid and must not add a second message per scan.
            _log.info("no trust list for offline e-code verification: %s", exc)
            return _refuse(kind, Reason.NO_TRUST_LIST, f"no usable trust list: {exc}")
        signer = trust.keys.get(sign1.kid)
        if signer is None:
            return _refuse(kind, Reason.UNKNOWN_KID, f"unknown key id {_kid_text(sign1.kid)}")
        if signer.revoked:
            return _refuse(kind, Reason.REVOKED_KID, f"key id {_kid_text(sign1.kid)} is revoked")
        algorithm = self._algorithms.get(sign1.alg)
        key = trust.loaded.get(sign1.kid)
        if algorithm is None or key is None:
            return _refuse(kind, Reason.UNSUPPORTED_ALGORITHM,
                           f"algorithm {sign1.alg} is not supported here")
        if sign1.alg != signer.alg:
            return _refuse(kind, Reason.BAD_SIGNATURE,
                           "the code names another algorithm than its key's")
        if not algorithm.verify(key, sign1.signature, sign1.to_be_signed()):
            return _refuse(kind, Reason.BAD_SIGNATURE, "the signature does not verify")
        try:
            payload = ECodePayload.from_cbor(sign1.payload)
        except MalformedECodeError as exc:
            return _refuse(kind, Reason.BAD_PAYLOAD, str(exc))
        if not signer.valid_at(payload.issued_at):
            return _refuse(kind, Reason.KEY_OUT_OF_VALIDITY, f"key id {_kid_text(sign1.kid)} "
                           "was not valid when the code was issued", payload)
        now = self._clock()
        if now < payload.issued_at - self._skew:
            return _refuse(kind, Reason.NOT_YET_VALID, "the code is not valid yet",
                           payload)
        if now > payload.expires_at + self._skew:
            return _refuse(kind, Reason.EXPIRED, "the code has expired", payload)
        replay_key = hashlib.sha256(sign1.kid + b"\x00" + sign1.payload).digest()[:16]
        # A replay is refused before the central is asked (no budget spent on it, the
        # central hears of each code once); remember_once below still decides races.
        replayed = self._replay_check(lambda: self._replay.seen(replay_key, now), payload)
        if replayed is not None:
            return replayed
        online = self._ask_central_about_ours(text, payload, deadline)
        if online is not None and not online.accepted:
            return online
        replayed = self._replay_check(
            lambda: not self._replay.remember_once(replay_key, payload.expires_at + self._skew,
                                                   now), payload)
        if replayed is not None:
            return replayed
        if online is not None:
            return online
        return ECodeVerification(True, Reason.ACCEPTED, "signature and validity verified "
                                 "offline", kind, payload.card_ref, payload.region)

    @staticmethod
    def _replay_check(is_replay: Callable[[], bool],
                      payload: ECodePayload) -> ECodeVerification | None:
        """The refusal when ``is_replay`` says so or the cache fails (closed), else None."""
        try:
            if not is_replay():
                return None
        except SscardError as exc:
            # Fail closed: without the cache, this could be a replay.
            _log.error("e-code replay cache failed, code refused: %s", exc)
            return _refuse(CodeKind.OURS, Reason.REPLAY_CHECK_FAILED,
                           "the replay cache cannot be consulted; code refused", payload)
        return _refuse(CodeKind.OURS, Reason.REPLAYED,
                       "this code was already accepted on this terminal", payload)

    def _ask_central_about_ours(self, text: str, payload: ECodePayload,
                                deadline: Deadline) -> ECodeVerification | None:
        """The central's verdict on the card, or None when there is no central in time
        (the offline verification then stands; the denylist is the pipeline's job)."""
        if self._central is None:
            return None
        try:
            check = self._central.verify_ecode(text, deadline)
        except (CentralUnreachableError, DeadlineExceededError) as exc:
            _log.info("central not reached for an e-code, offline result stands: %s", exc)
            return None
        except CentralRefusedError as exc:
            return _refuse(CodeKind.OURS, Reason.CENTRAL_REFUSED,
                           f"the central refused the code: {exc}", payload, online=True)
        except SscardError as exc:
            _log.warning("central answered an e-code verification badly: %s", exc)
            return None
        return _from_check(CodeKind.OURS, check, payload.card_ref, payload.region)

    # --- opaque, online-only codes -----------------------------------------------------

    def _verify_opaque(self, text: str, kind: CodeKind,
                       deadline: Deadline) -> ECodeVerification:
        if self._central is None:
            return self._central_missing(kind, "no central is configured")
        try:
            check = self._central.verify_ecode(text, deadline)
        except (CentralUnreachableError, DeadlineExceededError) as exc:
            return self._central_missing(kind, f"the central cannot be reached ({exc})")
        except CentralRefusedError as exc:
            return _refuse(kind, Reason.CENTRAL_REFUSED,
                           f"the central refused the code: {exc}", online=True)
        except SscardError as exc:
            return self._central_missing(kind, f"the central answered badly ({exc})")
        return _from_check(kind, check, None, None)

    def _central_missing(self, kind: CodeKind, why: str) -> ECodeVerification:
        if self._opaque_policy == "defer":
            return ECodeVerification(False, Reason.DEFERRED,
                                     f"{kind.value} code deferred: {why}", kind)
        return _refuse(kind, Reason.CENTRAL_UNREACHABLE,
                       f"{kind.value} codes are verified online only and {why}")


def _kid_text(kid: bytes) -> str:
    """A key id for messages: as text when it is printable ASCII, else hex (the input is
    hostile and must not put control characters into logs)."""
    if kid.isascii() and kid.decode("ascii").isprintable():
        return repr(kid.decode("ascii"))
    return kid.hex()


def _refuse(kind: CodeKind, reason: Reason, message: str,
            payload: ECodePayload | None = None, *, online: bool = False) -> ECodeVerification:
    return ECodeVerification(
        False, reason, message, kind,
        payload.card_ref if payload else None, payload.region if payload else None,
        online=online)


def _from_check(kind: CodeKind, check: ECodeCheck, card_ref: str | None,
                region: str | None) -> ECodeVerification:
    """Accept only when the central accepts the code AND the card behind it is usable:
    a cancelled card's code is refused whatever else is said (卡码同权)."""
    card = check.card
    if card is not None and card.card_ref:
        card_ref = card.card_ref
    if card is not None and not card.usable:
        return ECodeVerification(False, Reason.CARD_NOT_USABLE,
                                 f"the card's status is {card.status.value} ({card.reason})",
                                 kind, card_ref, region, online=True, validation=card)
    if not check.accepted:
        return ECodeVerification(False, Reason.CENTRAL_REFUSED,
                                 f"the central refused the code ({check.reason})", kind,
                                 card_ref, region, online=True, validation=card)
    return ECodeVerification(True, Reason.ACCEPTED, "verified online", kind, card_ref,
                             region, online=True, validation=card)
