"""Stable reason codes for every e-code decision.

Scripts, journals and the central compare these strings, so they never change meaning;
the human message next to them may.
"""

from __future__ import annotations

import enum

__all__ = ["Reason"]


class Reason(enum.Enum):
    """Why an e-code was accepted, refused or deferred."""

    ACCEPTED = "accepted"
    MALFORMED = "malformed"              # length, base45, zlib, CBOR or COSE structure
    BAD_PAYLOAD = "bad_payload"          # signed, but the payload is not our structure
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    UNKNOWN_KID = "unknown_kid"          # key id not in the trust list
    REVOKED_KID = "revoked_kid"          # key id revoked in the trust list
    KEY_OUT_OF_VALIDITY = "key_out_of_validity"  # code issued outside the key's validity
    BAD_SIGNATURE = "bad_signature"
    NOT_YET_VALID = "not_yet_valid"      # issued in the future beyond the clock skew
    EXPIRED = "expired"                  # past its expiry beyond the clock skew
    REPLAYED = "replayed"                # already accepted once on this terminal
    REPLAY_CHECK_FAILED = "replay_check_failed"  # the replay cache failed: refused
    UNKNOWN_KIND = "unknown_kind"        # matches no configured shape: never guessed
    NO_TRUST_LIST = "no_trust_list"      # no usable trust list to verify offline
    CENTRAL_UNREACHABLE = "central_unreachable"  # online-only code, central down: refused
    DEFERRED = "deferred"                # online-only code, central down: profile defers
    CARD_NOT_USABLE = "card_not_usable"  # the central says the card's status refuses it
    CENTRAL_REFUSED = "central_refused"  # the central refused the code itself
