"""A minimal COSE_Sign1 (RFC 9052 §4.2): exactly what our e-code needs, strictly checked.

Structure: ``18([protected: bstr .cbor {1: alg, 4: kid}, unprotected: {}, payload: bstr,
signature: bstr])``. The key id must sit in the protected header, so it is covered by the
signature; anything else in either header is refused rather than ignored, because an
attacker controls every byte of the input.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cbor2

from ..errors import MalformedECodeError

__all__ = [
    "CoseSign1", "decode_sign1", "encode_sign1", "int_keyed", "sig_structure",
    "strict_cbor_loads",
]

_COSE_SIGN1_TAG = 18
_HEADER_ALG = 1
_HEADER_KID = 4
_MAX_KID = 32
_HEADER_CACHE_SIZE = 64
_MAP_TYPES = (dict, cbor2.frozendict)  # cbor2 decodes maps inside a tag as frozendict


def strict_cbor_loads(data: bytes, what: str) -> Any:
    """cbor2.loads, with every failure (bad bytes, nesting bombs, trailing data) turned
    into :class:`MalformedECodeError` so no cbor2 exception leaves this package."""
    stream = io.BytesIO(data)
    try:
        obj = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # hostile input: cbor2's semantic tags
        # (datetime, regex, MIME, decimal...) can fail in ways its docs do not list; any
        # failure means "not our code", and none may escape to the gate.
        raise MalformedECodeError(f"{what} is not valid CBOR", "malformed") from exc
    if stream.tell() != len(data):
        raise MalformedECodeError(f"{what} has trailing bytes", "malformed")
    return obj


@dataclass(frozen=True)
class CoseSign1:
    """A decoded, structurally valid COSE_Sign1 (signature NOT yet verified)."""

    protected: bytes
    alg: int
    kid: bytes
    payload: bytes
    signature: bytes

    def to_be_signed(self) -> bytes:
        """The Sig_structure bytes the signature covers."""
        return sig_structure(self.protected, self.payload)


_SIG1_HEAD = b"\x84" + cbor2.dumps("Signature1")  # array(4), "Signature1"
_EMPTY_BSTR = b"\x40"


def _bstr(data: bytes) -> bytes:
    """A CBOR byte string with the shortest length header (as cbor2 writes it)."""
    n = len(data)
    if n < 24:
        return bytes((0x40 | n,)) + data
    if n < 0x100:
        return bytes((0x58, n)) + data
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big") + data
    return b"\x5a" + n.to_bytes(4, "big") + data


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """``["Signature1", protected, external_aad = h'', payload]`` in CBOR (RFC 9052 §4.4).

    Written out by hand rather than through ``cbor2.dumps``: it is built once per
    verification on the hot path, and its shape never varies. A test pins it to cbor2's
    encoding.
    """
    return _SIG1_HEAD + _bstr(protected) + _EMPTY_BSTR + _bstr(payload)


def _exact_int(value: object) -> bool:
    return type(value) is int


def int_keyed(obj: object) -> bool:
    """A map whose keys are all true integers (``True`` and ``1.0`` compare equal to 1)."""
    return isinstance(obj, dict) and (not obj or set(map(type, obj)) == {int})


def decode_sign1(data: bytes,
                 header_cache: dict[bytes, tuple[int, bytes]] | None = None) -> CoseSign1:
    """Parse COSE_Sign1 bytes; raise :class:`MalformedECodeError` on any deviation.

    ``header_cache`` (owned by the caller, e.g. one verifier) remembers protected headers
    already checked: a terminal sees the same few signer headers all day, and parsing
    them again was a measurable share of a verification.
    """
    parts = _split_common_layout(data)
    protected, payload, signature = parts if parts is not None else _split_general(data)
    known = header_cache.get(protected) if header_cache is not None else None
    if known is None:
        known = _decode_protected(protected)
        if header_cache is not None:
            if len(header_cache) >= _HEADER_CACHE_SIZE:
                header_cache.clear()
            header_cache[protected] = known
    alg, kid = known
    return CoseSign1(protected, alg, kid, payload, signature)


def _split_common_layout(data: bytes) -> tuple[bytes, bytes, bytes] | None:
    """Protected header, payload and signature when ``data`` is laid out as every code
    we issue is: optional tag 18, array(4), a protected header under 24 bytes, the empty
    unprotected map, a payload under 256 bytes, a 64-byte signature, nothing after.
    None for any other layout, which the general decoder then judges. Sliced by hand
    because the general decoder was a measurable share of a verification; a test pins
    both to the same result."""
    size = len(data)
    pos = 2 if data[:2] == b"\xd2\x84" else 1 if data[:1] == b"\x84" else 0
    if not pos or pos >= size or not 0x40 <= data[pos] < 0x58:
        return None
    end = pos + 1 + data[pos] - 0x40
    protected = data[pos + 1:end]
    if data[end:end + 2] == b"\xa0\x58" and end + 2 < size:
        start = end + 3
        stop = start + data[end + 2]
    elif data[end:end + 1] == b"\xa0" and end + 1 < size and 0x40 <= data[end + 1] < 0x58:
        start = end + 2
        stop = start + data[end + 1] - 0x40
    else:
        return None
    if size != stop + 66 or data[stop:stop + 2] != b"\x58\x40":
        return None
    return protected, data[start:stop], data[stop + 2:]


def _split_general(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Protected header, payload and signature of any valid encoding, strictly checked."""
    obj = strict_cbor_loads(data, "the COSE message")
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != _COSE_SIGN1_TAG:
            raise MalformedECodeError("the COSE message has the wrong tag", "malformed")
        obj = obj.value
    # cbor2 hands back the content of a tag as immutable containers (tuple, frozendict).
    if not isinstance(obj, list | tuple) or len(obj) != 4:
        raise MalformedECodeError("a COSE_Sign1 is an array of four", "malformed")
    protected, unprotected, payload, signature = obj
    if not (type(protected) is bytes and type(payload) is bytes and type(signature) is bytes):
        raise MalformedECodeError("COSE_Sign1 fields have the wrong types", "malformed")
    if not isinstance(unprotected, _MAP_TYPES) or unprotected:
        raise MalformedECodeError("the unprotected header must be empty", "malformed")
    return protected, payload, signature


def _decode_protected(protected: bytes) -> tuple[int, bytes]:
    header = strict_cbor_loads(protected, "the protected header")
    if not int_keyed(header) or set(header) != {_HEADER_ALG, _HEADER_KID}:
        raise MalformedECodeError("the protected header must hold exactly alg and kid",
                                  "malformed")
    alg, kid = header[_HEADER_ALG], header[_HEADER_KID]
    # Private-use algorithm ids (RFC 9052 §16.4: below -65536) are allowed, so a province
    # can plug SM2 in under one; anything beyond 32 bits is not an algorithm id.
    if not _exact_int(alg) or not -(2**31) <= alg < 2**31:
        raise MalformedECodeError("the algorithm id is not a small integer", "malformed")
    if type(kid) is not bytes or not 1 <= len(kid) <= _MAX_KID:
        raise MalformedECodeError("the key id is not a short byte string", "malformed")
    return alg, kid


def encode_sign1(alg: int, kid: bytes, payload: bytes,
                 sign: Callable[[bytes], bytes]) -> bytes:
    """Build a tagged COSE_Sign1; ``sign`` maps the Sig_structure to the COSE signature."""
    protected = cbor2.dumps({_HEADER_ALG: alg, _HEADER_KID: kid})
    signature = sign(sig_structure(protected, payload))
    return cbor2.dumps(cbor2.CBORTag(_COSE_SIGN1_TAG, [protected, {}, payload, signature]))
