"""The code format: base45, COSE_Sign1, payload and text, and refusals of hostile input."""

from __future__ import annotations

import zlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sscard_terminal.ecode import (
    PREFIX,
    ECodePayload,
    b45decode,
    b45encode,
    decode_sign1,
    decode_text,
    encode_text,
)
from sscard_terminal.ecode.cose import (
    _split_common_layout,
    _split_general,
    sig_structure,
    strict_cbor_loads,
)
from sscard_terminal.ecode.format import MAX_COSE_BYTES
from sscard_terminal.errors import ECodeError, MalformedECodeError

from .ecode_helpers import CARD_REF, REGION, eddsa_issuer, es256_issuer


def test_base45_matches_the_rfc_9285_examples() -> None:
    assert b45encode(b"AB") == "BB8"
    assert b45encode(b"Hello!!") == "%69 VD92EX0"
    assert b45encode(b"base-45") == "UJCLQE7W581"
    assert b45decode("QED8WEX0") == b"ietf!"


@pytest.mark.parametrize("bad", ["GGW", ":::", "BB8GGWBB8", "BB8BB8:::", "BB8BB8::", "A", "ABCD",
                                 "ab", "AB\u00e9", "A\x00B"])
def test_base45_refuses_bad_characters_lengths_and_overflowing_chunks(bad: str) -> None:
    with pytest.raises(MalformedECodeError) as info:
        b45decode(bad)
    assert info.value.reason == "malformed"


@given(st.binary(max_size=300))
def test_base45_round_trips_any_bytes(data: bytes) -> None:
    assert b45decode(b45encode(data)) == data


@pytest.mark.parametrize("make_issuer", [es256_issuer, eddsa_issuer])
def test_issued_code_decodes_to_its_payload(make_issuer) -> None:  # type: ignore[no-untyped-def]
    issuer = make_issuer()
    text = issuer.issue(CARD_REF, REGION, now=1_700_000_000, nonce=b"n" * 16)
    assert text.startswith(PREFIX)
    sign1 = decode_sign1(decode_text(text))
    assert sign1.kid == issuer.kid and sign1.alg == issuer.alg
    payload = ECodePayload.from_cbor(sign1.payload)
    assert payload == ECodePayload(CARD_REF, REGION, 1_700_000_000, 1_700_000_060, b"n" * 16)


def test_code_text_holds_no_identity_only_the_pseudonymous_reference() -> None:
    text = es256_issuer().issue(CARD_REF, REGION, now=1_700_000_000)
    raw = decode_text(text)
    assert CARD_REF.encode() in raw
    assert b"D15600000500" not in raw.upper()


def test_compressed_code_is_accepted_and_zlib_bomb_refused() -> None:
    cose = decode_text(es256_issuer().issue(CARD_REF, REGION, now=1_700_000_000))
    assert decode_text(PREFIX + b45encode(zlib.compress(cose))) == cose
    bomb = PREFIX + b45encode(zlib.compress(b"\x00" * 400_000, 9))
    with pytest.raises(MalformedECodeError, match="size limit"):
        decode_text(bomb)
    truncated = PREFIX + b45encode(zlib.compress(cose)[:-5])
    with pytest.raises(MalformedECodeError):
        decode_text(truncated)


def _sign1_bytes(protected: object, unprotected: object, payload: object,
                 signature: object) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))


HOSTILE_COSE = {
    "nesting bomb": b"\x81" * (MAX_COSE_BYTES - 1) + b"\x00",
    "map nesting bomb": b"\xa1\x00" * 500 + b"\x00",
    "huge declared array": b"\x9b\x00\xff\xff\xff\xff\xff\xff\xff",
    "huge declared bytes": b"\x5b\x00\xff\xff\xff\xff\xff\xff\xff",
    "wrong tag": cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"", b""])),
    "three fields": cbor2.dumps([b"", {}, b""]),
    "payload not bytes": _sign1_bytes(cbor2.dumps({1: -7, 4: b"k"}), {}, "text", b"s"),
    "kid unprotected": _sign1_bytes(cbor2.dumps({1: -7}), {4: b"k"}, b"", b"s"),
    "extra header": _sign1_bytes(cbor2.dumps({1: -7, 4: b"k", 3: 0}), {}, b"", b"s"),
    "alg as bool": _sign1_bytes(cbor2.dumps({1: True, 4: b"k"}), {}, b"", b"s"),
    "huge alg": _sign1_bytes(cbor2.dumps({1: 2**200, 4: b"k"}), {}, b"", b"s"),
    "kid as text": _sign1_bytes(cbor2.dumps({1: -7, 4: "k"}), {}, b"", b"s"),
    "protected not cbor": _sign1_bytes(b"\xff\xff", {}, b"", b"s"),
    "trailing garbage": _sign1_bytes(cbor2.dumps({1: -7, 4: b"k"}), {}, b"", b"s") + b"\x00",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_COSE))
def test_hostile_cose_structures_are_refused_as_malformed(name: str) -> None:
    with pytest.raises(MalformedECodeError):
        decode_sign1(HOSTILE_COSE[name])


def _payload_map(**changes: object) -> dict[object, object]:
    base: dict[object, object] = {1: 1, 2: CARD_REF, 3: REGION, 4: 1_700_000_000,
                                  5: 1_700_000_060, 6: b"n" * 16}
    for key, value in changes.items():
        index = int(key[1:])
        if value is KeyError:
            del base[index]
        else:
            base[index] = value
    return base


HOSTILE_PAYLOADS = {
    "version 2": _payload_map(k1=2),
    "version as bool": _payload_map(k1=True),
    "card ref is an ID number": _payload_map(k2="330102199001011234"),
    "card ref as bytes": _payload_map(k2=CARD_REF.encode()),
    "region nested": _payload_map(k3=[REGION]),
    "issued_at as float": _payload_map(k4=1_700_000_000.0),
    "issued_at huge": _payload_map(k4=2**70, k5=2**70 + 60),
    "negative time": _payload_map(k4=-100, k5=-40),
    "expiry before issue": _payload_map(k5=1_699_999_000),
    "lives a day": _payload_map(k5=1_700_086_400),
    "short nonce": _payload_map(k6=b"n"),
    "nonce as text": _payload_map(k6="n" * 16),
    "missing nonce": _payload_map(k6=KeyError),
    "extra key": {**_payload_map(), 7: "name"},
    "text keys": {"v": 1},
}


@pytest.mark.parametrize("name", sorted(HOSTILE_PAYLOADS))
def test_payloads_of_the_wrong_structure_are_refused(name: str) -> None:
    with pytest.raises(MalformedECodeError) as info:
        ECodePayload.from_cbor(cbor2.dumps(HOSTILE_PAYLOADS[name]))
    assert info.value.reason == "bad_payload"


@pytest.mark.parametrize("text", [
    "", PREFIX, "SC1", PREFIX + "A", PREFIX + "a" * 30, PREFIX + "9" * 99_996,
    "X" * 100_000, PREFIX + "00", PREFIX + b45encode(b"\xd2"),
])
def test_hostile_texts_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(MalformedECodeError) as info:
        decode_sign1(decode_text(text))
    assert info.value.reason == "malformed"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_decoder_raises_only_ecode_errors_for_any_text(text: str) -> None:
    try:
        sign1 = decode_sign1(decode_text(PREFIX + text))
        ECodePayload.from_cbor(sign1.payload)
    except ECodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_decoder_raises_only_ecode_errors_for_any_bytes(data: bytes) -> None:
    try:
        sign1 = decode_sign1(decode_text(encode_text(data)))
        ECodePayload.from_cbor(sign1.payload)
    except ECodeError:
        pass


def test_payload_keys_must_be_true_integers_not_bools_or_floats() -> None:
    good = _payload_map()
    sneaky = {float(k) if k == 4 else k: v for k, v in good.items()}
    with pytest.raises(MalformedECodeError):
        ECodePayload.from_cbor(cbor2.dumps(sneaky))
    ECodePayload.from_cbor(cbor2.dumps(good))


@given(st.binary(max_size=70000), st.binary(max_size=300))
@settings(max_examples=60, deadline=None)
def test_sig_structure_is_the_cbor_encoding_of_the_rfc_array(payload: bytes,
                                                             protected: bytes) -> None:
    assert sig_structure(protected, payload) == cbor2.dumps(
        ["Signature1", protected, b"", payload])


# The fast paths (the canonical payload pattern, the common COSE layout) must agree with
# the general decoder on every input: same result, or both refuse.

_payloads = st.tuples(
    st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=24, max_size=24),
    st.text("0123456789", min_size=6, max_size=6),
    st.integers(0, 2**32 - 4000), st.integers(1, 3600), st.binary(min_size=8, max_size=32),
).map(lambda t: ECodePayload(card_ref=t[0], region=t[1], issued_at=t[2],
                             expires_at=t[2] + t[3], nonce=t[4]))


def _outcome(parse, data: bytes) -> object:  # type: ignore[no-untyped-def]
    try:
        return parse(data)
    except MalformedECodeError as exc:
        return ("refused", exc.reason)


@settings(max_examples=300, deadline=None)
@given(_payloads, st.integers(0, 200), st.integers(0, 255), st.booleans())
def test_canonical_payload_fast_path_agrees_with_the_general_decoder(
        payload: ECodePayload, where: int, byte: int, mutate: bool) -> None:
    data = payload.to_cbor()
    assert ECodePayload.from_cbor(data) == payload == ECodePayload.from_cbor_general(data)
    if mutate:
        index = where % (len(data) + 1)
        data = data[:index] + bytes((byte,)) + data[index + 1:]
    assert _outcome(ECodePayload.from_cbor, data) == _outcome(
        ECodePayload.from_cbor_general, data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=23), st.binary(max_size=300), st.binary(min_size=60, max_size=70),
       st.booleans(), st.integers(0, 400), st.integers(0, 255), st.booleans())
def test_common_cose_layout_agrees_with_the_general_decoder(
        protected: bytes, payload: bytes, signature: bytes, tagged: bool, where: int,
        byte: int, mutate: bool) -> None:
    body = [protected, {}, payload, signature]
    data = cbor2.dumps(cbor2.CBORTag(18, body) if tagged else body)
    if mutate:
        index = where % (len(data) + 1)
        data = data[:index] + bytes((byte,)) + data[index + 1:]
    fast = _split_common_layout(data)
    if fast is not None:
        assert fast == _split_general(data)


@pytest.mark.parametrize("size", [0, 1, 23, 24, 25, 255, 256, 257, 65535, 65536, 65537])
def test_sig_structure_length_headers_at_every_cbor_boundary(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    for protected in (b"", b"\xa2\x01\x26\x04\x44ed-1", bytes(24), bytes(300)):
        assert sig_structure(protected, payload) == cbor2.dumps(
            ["Signature1", protected, b"", payload])


def _layout(protected: bytes, payload: bytes, signature: bytes, tagged: bool) -> bytes:
    body = [protected, {}, payload, signature]
    return cbor2.dumps(cbor2.CBORTag(18, body) if tagged else body)


@pytest.mark.parametrize("tagged", [True, False])
@pytest.mark.parametrize("payload_size", [0, 1, 23, 24, 100, 255])
@pytest.mark.parametrize("protected_size", [0, 1, 10, 23])
def test_the_layout_we_issue_takes_the_fast_path_and_slices_it_exactly(
        tagged: bool, payload_size: int, protected_size: int) -> None:
    """Every code we issue (protected header under 24 bytes, payload under 256, a 64-byte
    signature, tagged or not) must be sliced by the fast path, to exactly the parts the
    general decoder finds; and every single-byte change of it must either leave the
    fast path or agree with the general decoder (same parts, or both refuse)."""
    protected = bytes(range(1, protected_size + 1))
    payload = bytes((2 + i) % 256 for i in range(payload_size))
    signature = bytes(range(3, 67))
    data = _layout(protected, payload, signature, tagged)
    assert _split_common_layout(data) == (protected, payload, signature)
    assert _split_general(data) == (protected, payload, signature)
    for index in range(len(data) + 1):
        for byte in (0x00, 0x01, 0x17, 0x18, 0x3F, 0x40, 0x41, 0x57, 0x58, 0x59, 0x84,
                     0xA0, 0xA1, 0xD2, 0xFF):
            changed = data[:index] + bytes((byte,)) + data[index + 1:]
            fast = _split_common_layout(changed)
            if fast is not None:
                assert fast == _split_general(changed), (index, byte)
        truncated = data[:index]
        if (fast := _split_common_layout(truncated)) is not None:
            assert fast == _split_general(truncated), index


@pytest.mark.parametrize(("name", "data"), [
    ("signature of 63 bytes", _layout(b"p", b"x" * 30, bytes(63), True)),
    ("signature of 65 bytes", _layout(b"p", b"x" * 30, bytes(65), True)),
    ("payload of 256 bytes", _layout(b"p", b"x" * 256, bytes(64), True)),
    ("protected header of 24 bytes", _layout(bytes(24), b"x" * 30, bytes(64), True)),
    ("another tag", cbor2.dumps(cbor2.CBORTag(98, [b"p", {}, b"x", bytes(64)]))),
    ("unprotected header not empty", cbor2.dumps([b"p", {1: 2}, b"x", bytes(64)])),
    ("trailing byte", _layout(b"p", b"x" * 30, bytes(64), True) + b"\x00"),
    ("empty", b""),
    ("tag alone", b"\xd2"),
    ("array head alone", b"\xd2\x84"),
])
def test_other_layouts_leave_the_fast_path(name: str, data: bytes) -> None:
    assert _split_common_layout(data) is None, name


def test_the_header_cache_remembers_checked_headers_and_stays_bounded() -> None:
    issuer = eddsa_issuer()
    cache: dict[bytes, tuple[int, bytes]] = {}
    text = issuer.issue(CARD_REF, REGION, now=1_700_000_000)
    first = decode_sign1(decode_text(text), cache)
    again = decode_sign1(decode_text(text), cache)
    assert first == again and cache == {first.protected: (first.alg, first.kid)}
    for n in range(200):
        other = eddsa_issuer(f"k-{n}".encode())
        decoded = decode_sign1(decode_text(other.issue(CARD_REF, REGION, now=1_700_000_000)),
                               cache)
        assert cache[decoded.protected] == (decoded.alg, decoded.kid)
        assert len(cache) <= 64
    assert decode_sign1(decode_text(text), cache) == first


@pytest.mark.parametrize(("data", "message"), [
    (b"\xff", "the thing is not valid CBOR"),
    (b"\x18", "the thing is not valid CBOR"),
    (b"\x01\x02", "the thing has trailing bytes"),
])
def test_strict_cbor_refusals_name_what_and_why(data: bytes, message: str) -> None:
    with pytest.raises(MalformedECodeError) as refused:
        strict_cbor_loads(data, "the thing")
    assert (str(refused.value), refused.value.reason) == (message, "malformed")


def _with_header(header: object) -> bytes:
    return _sign1_bytes(cbor2.dumps(header), {}, b"payload", bytes(64))


@pytest.mark.parametrize(("data", "message"), [
    (HOSTILE_COSE["wrong tag"], "the COSE message has the wrong tag"),
    (HOSTILE_COSE["three fields"], "a COSE_Sign1 is an array of four"),
    (cbor2.dumps(cbor2.CBORTag(18, "four")), "a COSE_Sign1 is an array of four"),
    (HOSTILE_COSE["payload not bytes"], "COSE_Sign1 fields have the wrong types"),
    (_sign1_bytes("p", {}, b"", b"s"), "COSE_Sign1 fields have the wrong types"),
    (_sign1_bytes(b"p", {}, b"", "s"), "COSE_Sign1 fields have the wrong types"),
    (HOSTILE_COSE["kid unprotected"], "the unprotected header must be empty"),
    (_sign1_bytes(b"p", [], b"", b"s"), "the unprotected header must be empty"),
    (HOSTILE_COSE["extra header"], "the protected header must hold exactly alg and kid"),
    (_with_header({1: -7}), "the protected header must hold exactly alg and kid"),
    (_with_header({"1": -7, 4: b"k"}), "the protected header must hold exactly alg and kid"),
    (HOSTILE_COSE["alg as bool"], "the algorithm id is not a small integer"),
    (HOSTILE_COSE["huge alg"], "the algorithm id is not a small integer"),
    (_with_header({1: 2**31, 4: b"k"}), "the algorithm id is not a small integer"),
    (_with_header({1: -(2**31) - 1, 4: b"k"}), "the algorithm id is not a small integer"),
    (HOSTILE_COSE["kid as text"], "the key id is not a short byte string"),
    (_with_header({1: -7, 4: b""}), "the key id is not a short byte string"),
    (_with_header({1: -7, 4: bytes(33)}), "the key id is not a short byte string"),
    (HOSTILE_COSE["protected not cbor"], "the protected header is not valid CBOR"),
    (HOSTILE_COSE["trailing garbage"], "the COSE message has trailing bytes"),
    (b"\xff", "the COSE message is not valid CBOR"),
])
def test_each_cose_refusal_says_which_rule_and_why(data: bytes, message: str) -> None:
    with pytest.raises(MalformedECodeError) as refused:
        decode_sign1(data)
    assert (str(refused.value), refused.value.reason) == (message, "malformed")


@pytest.mark.parametrize(("alg", "kid"), [
    (-(2**31), b"k"), (2**31 - 1, b"k"), (-7, bytes(1)), (-8, bytes(32)), (-70_000, b"sm2"),
])
def test_the_header_limits_themselves_are_accepted(alg: int, kid: bytes) -> None:
    decoded = decode_sign1(_with_header({1: alg, 4: kid}))
    assert (decoded.alg, decoded.kid, decoded.payload) == (alg, kid, b"payload")
