"""The central's wire formats: JSON answers and signed documents into our models.

Parsing is strict on what matters and lenient on unknown extras; every malformed answer
is a :class:`~sscard_terminal.errors.CentralProtocolError`. Kept apart from the HTTP
client (:mod:`.client`) because the answers are read in other places too: the e-code
trust-list cache re-reads a signed trust list from its file
(:mod:`sscard_terminal.ecode.trust_list`) with no client in sight.

Any text the central wrote (a reason, a warning) passes :func:`said` before it reaches
a log, an error, the journal or a gate's display.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import CentralProtocolError
from ..privacy import mask_card_number, mask_id_number
from .models import (
    Application,
    CardStatus,
    CardValidation,
    DenylistChunk,
    DenylistEntry,
    DenylistManifest,
    DenylistUpdate,
    Entitlement,
    HolderIdentity,
    TransactionAck,
    TrustedKey,
    TrustList,
    parse_until,
)
from .signed import canonical_json, verify_document

__all__ = [
    "decode_answer",
    "parse_acks",
    "parse_denylist",
    "parse_manifest",
    "parse_trust_list",
    "parse_validation",
    "read_signed_trust_list",
    "said",
    "said_or_none",
]

_MAX_SAID = 200   # characters of a reason or warning the central wrote
# Shapes of personal numbers inside a central's text: an 18-character ID number and a
# 9-character card number (a letter and 8 digits), each standing alone.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_CARD_NUMBER = re.compile(r"(?<![0-9A-Za-z])[A-Z][0-9]{8}(?![0-9A-Za-z])")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def decode_answer(data: bytes, method: str, path: str) -> dict[str, Any]:
    """The JSON object an answer carries; anything else is a CentralProtocolError."""
    try:
        answer = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CentralProtocolError(f"{method} {path}: answer is not JSON") from exc
    except RecursionError:  # nested deeper than the interpreter's stack
        raise CentralProtocolError(f"{method} {path}: answer is nested too deeply") from None
    if not isinstance(answer, dict):
        raise CentralProtocolError(f"{method} {path}: answer is not a JSON object")
    return answer


def _opt_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CentralProtocolError(f"field {name} is not a string")
    return value


def _until(data: Mapping[str, Any]) -> str | None:
    """``until`` checked: an instant with its zone, or a date (an end a terminal cannot
    read would keep a card refused, or let it through, at the wrong time)."""
    value = _opt_str(data, "until")
    if value is not None:
        try:
            parse_until(value)
        except ValueError:
            raise CentralProtocolError("field until is neither a date nor a time with "
                                       "its zone") from None
    return value


def _enum_set(values: Any, enum_type: type[Application] | type[Entitlement], name: str
              ) -> frozenset[Any]:
    if values is None:
        return frozenset()
    if not isinstance(values, list):
        raise CentralProtocolError(f"field {name} is not a list")
    known = {e.value: e for e in enum_type}
    # Unknown names are skipped: a newer central may know more applications than we do.
    return frozenset(known[v] for v in values if isinstance(v, str) and v in known)


def parse_validation(data: Mapping[str, Any]) -> CardValidation:
    """A :class:`CardValidation` from the central's JSON; malformed -> CentralProtocolError."""
    try:
        status = CardStatus(data.get("status"))
    except ValueError:
        raise CentralProtocolError("validation answer has no known status") from None
    reason = data.get("reason")
    if not isinstance(reason, str):
        raise CentralProtocolError("validation answer has no reason")
    holder = None
    raw_holder = data.get("holder")
    if raw_holder is not None:
        if not isinstance(raw_holder, dict):
            raise CentralProtocolError("field holder is not an object")
        name, number = raw_holder.get("name"), raw_holder.get("id_number")
        if not isinstance(name, str) or not isinstance(number, str):
            raise CentralProtocolError("holder lacks name or id_number")
        holder = HolderIdentity(name=name, id_number=number)
    return CardValidation(
        status=status, reason=said(reason), card_ref=_opt_str(data, "card_ref"),
        since=_opt_str(data, "since"), until=_until(data),
        expires_on=_opt_str(data, "expires_on"),
        applications=_enum_set(data.get("applications"), Application, "applications"),
        entitlements=_enum_set(data.get("entitlements"), Entitlement, "entitlements"),
        holder=holder, warning=said_or_none(_opt_str(data, "warning")))


def parse_acks(answer: Mapping[str, Any], keys: Iterable[str]) -> list[TransactionAck]:
    raw = answer.get("acks")
    wanted = list(keys)
    if not isinstance(raw, list) or len(raw) != len(wanted):
        raise CentralProtocolError("upload answer does not acknowledge every transaction")
    acks = []
    for key, item in zip(wanted, raw, strict=True):
        if not isinstance(item, dict) or item.get("outcome") not in (
                "accepted", "duplicate", "rejected"):
            raise CentralProtocolError("upload answer has a malformed acknowledgement")
        if item["outcome"] != "rejected" and item.get("idempotency_key") != key:
            raise CentralProtocolError("upload answer acknowledges a transaction not sent")
        reason = item.get("reason")
        acks.append(TransactionAck(idempotency_key=key, outcome=item["outcome"],
                                   reason=said_or_none(reason)))
    return acks


def said(text: str) -> str:
    """A text the central wrote (a reason, a warning), fit for logs, errors, the journal
    and a gate's display.

    Control and format characters become ``?`` (a CR LF forges a log line, an escape
    clears a technician's terminal, a bidi override reverses what is shown) and a long
    text is cut to :data:`_MAX_SAID` characters.
    """
    # A little past the cut, so that a number straddling it is still seen whole.
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text[:_MAX_SAID + 20])
    # Reasons are meant to be codes; numbers a central put in one anyway are masked.
    cleaned = _ID_NUMBER.sub(lambda m: mask_id_number(m.group()), cleaned)
    cleaned = _CARD_NUMBER.sub(lambda m: mask_card_number(m.group()), cleaned)
    return cleaned if len(cleaned) <= _MAX_SAID else cleaned[:_MAX_SAID - 1] + "…"


def said_or_none(text: object) -> str | None:
    """:func:`said` of a string; None for anything else (an absent or mistyped field)."""
    return said(text) if isinstance(text, str) else None


def _int(document: Mapping[str, Any], name: str) -> int:
    value = document.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CentralProtocolError(f"signed document: {name} is not an integer")
    return value


def parse_denylist(document: Mapping[str, Any]) -> DenylistUpdate:
    added_raw, removed_raw = document.get("added"), document.get("removed")
    if not isinstance(added_raw, list) or not isinstance(removed_raw, list):
        raise CentralProtocolError("denylist: added/removed are not lists")
    added = []
    for item in added_raw:
        if not isinstance(item, dict) or not isinstance(item.get("card_ref"), str):
            raise CentralProtocolError("denylist: malformed entry")
        try:
            status = CardStatus(item.get("status"))
        except ValueError:
            raise CentralProtocolError("denylist: entry with an unknown status") from None
        added.append(DenylistEntry(card_ref=item["card_ref"], status=status,
                                   until=_until(item)))
    if not all(isinstance(r, str) for r in removed_raw):
        raise CentralProtocolError("denylist: malformed removal")
    return DenylistUpdate(version=_int(document, "version"),
                          since_version=_int(document, "since_version"),
                          full=bool(document.get("full")), added=tuple(added),
                          removed=tuple(removed_raw))


def parse_manifest(document: Mapping[str, Any]) -> DenylistManifest:
    """A signed manifest of a chunked denylist (its chunks fetched one by one)."""
    raw_chunks = document.get("chunks")
    full = document.get("full")
    if not isinstance(raw_chunks, list) or not isinstance(full, bool):
        raise CentralProtocolError("denylist manifest: no chunk list, or no full flag")
    chunks = []
    for item in raw_chunks:
        records = item.get("records") if isinstance(item, dict) else None
        digest = item.get("sha256") if isinstance(item, dict) else None
        if (not isinstance(records, int) or isinstance(records, bool) or records <= 0
                or not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest)):
            raise CentralProtocolError("denylist manifest: malformed chunk")
        chunks.append(DenylistChunk(records=records, sha256=bytes.fromhex(digest)))
    entries = _int(document, "entries")
    if sum(c.records for c in chunks) != entries:
        raise CentralProtocolError("denylist manifest: chunk sizes do not add up to entries")
    return DenylistManifest(
        version=_int(document, "version"), since_version=_int(document, "since_version"),
        entries=entries, record_bytes=_int(document, "record_bytes"), chunks=tuple(chunks),
        digest=hashlib.sha256(canonical_json(document)).digest(), full=full)


def read_signed_trust_list(envelope: object, central_key: Ed25519PublicKey) -> TrustList:
    """The trust list in a signed envelope, checked against the pinned central key.

    The envelope is kept on the result. Raises :class:`CentralProtocolError` when the
    envelope is malformed, is not a trust list or does not verify.
    """
    document = verify_document(central_key, envelope, "trust_list")
    # verify_document refused anything but a dict, so the cast only tells the type checker.
    return dataclasses.replace(parse_trust_list(document),
                               envelope=cast("dict[str, Any]", envelope))


def parse_trust_list(document: Mapping[str, Any]) -> TrustList:
    raw_keys = document.get("keys")
    if not isinstance(raw_keys, list):
        raise CentralProtocolError("trust list: keys is not a list")
    keys = []
    for item in raw_keys:
        if not isinstance(item, dict) or item.get("alg") not in ("ES256", "EdDSA"):
            raise CentralProtocolError("trust list: malformed key entry")
        try:
            der = base64.b64decode(str(item.get("public_key")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CentralProtocolError("trust list: public key is not base64") from exc
        kid, nbf, naf = item.get("kid"), item.get("not_before"), item.get("not_after")
        if not (isinstance(kid, str) and isinstance(nbf, str) and isinstance(naf, str)):
            raise CentralProtocolError("trust list: key lacks kid or validity")
        keys.append(TrustedKey(kid=kid, alg=item["alg"], public_key=der, not_before=nbf,
                               not_after=naf, revoked=bool(item.get("revoked"))))
    issued = document.get("issued_at")
    return TrustList(version=_int(document, "version"),
                     issued_at=issued if isinstance(issued, str) else "", keys=tuple(keys))
