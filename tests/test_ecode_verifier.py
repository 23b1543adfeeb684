"""Offline verification: signature, validity window, replay, key ids, trust list, kinds."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from sscard_terminal.central import models, read_signed_trust_list
from sscard_terminal.central.signed import sign_document
from sscard_terminal.deadline import Deadline
from sscard_terminal.ecode import (
    DEFAULT_ALGORITHMS,
    PREFIX,
    SIMULATOR_SHAPES,
    CachedTrustListFile,
    CentralTrustListProvider,
    CodeKind,
    ECodePayload,
    ECodeVerifier,
    MemoryReplayCache,
    Reason,
    RecognitionProfile,
    SignerKey,
    SqliteReplayCache,
    StaticTrustListProvider,
    TrustList,
    encode_sign1,
    encode_text,
    trust_list_from_central,
)
from sscard_terminal.ecode.algorithms import EDDSA, ES256
from sscard_terminal.errors import CentralUnreachableError, ConfigError, ECodeRefusedError

from .ecode_helpers import (
    CARD_REF,
    REGION,
    eddsa_issuer,
    es256_issuer,
    memory_cache,
    signer_key,
    trust_provider,
)

NOW = 1_700_000_000.0


def _verifier(*keys, clock=lambda: NOW, cache=None, **kw) -> ECodeVerifier:  # type: ignore[no-untyped-def]
    replay = cache if cache is not None else memory_cache()
    return ECodeVerifier(trust_provider(*keys), replay, clock=clock, **kw)


def _deadline() -> Deadline:
    return Deadline.after(5)


@pytest.mark.parametrize("make_issuer", [es256_issuer, eddsa_issuer], ids=["ES256", "EdDSA"])
def test_a_fresh_code_is_accepted_offline_with_its_card_ref(make_issuer) -> None:  # type: ignore[no-untyped-def]
    issuer = make_issuer()
    verifier = _verifier(signer_key(issuer))
    result = verifier.verify(issuer.issue(CARD_REF, REGION, now=NOW), deadline=_deadline())
    assert result.accepted and result.reason is Reason.ACCEPTED
    assert (result.kind, result.card_ref, result.region, result.online) == (
        CodeKind.OURS, CARD_REF, REGION, False)
    result.raise_if_refused()


@pytest.mark.parametrize(("age", "skew", "reason"), [
    (59, 0, Reason.ACCEPTED),
    (61, 0, Reason.EXPIRED),
    (61, 30, Reason.ACCEPTED),
    (95, 30, Reason.EXPIRED),
    (-10, 30, Reason.ACCEPTED),
    (-31, 30, Reason.NOT_YET_VALID),
])
def test_validity_window_honours_the_clock_skew(age: int, skew: int, reason: Reason) -> None:
    issuer = es256_issuer()
    verifier = _verifier(signer_key(issuer), clock=lambda: NOW + age, clock_skew=skew)
    result = verifier.verify(issuer.issue(CARD_REF, REGION, now=NOW), deadline=_deadline())
    assert result.reason is reason


def test_a_code_accepted_once_is_refused_the_second_time_as_replayed() -> None:
    issuer = eddsa_issuer()
    verifier = _verifier(signer_key(issuer))
    text = issuer.issue(CARD_REF, REGION, now=NOW)
    assert verifier.verify(text, deadline=_deadline()).accepted
    second = verifier.verify(text, deadline=_deadline())
    assert not second.accepted and second.reason is Reason.REPLAYED
    assert "already accepted" in second.message
    with pytest.raises(ECodeRefusedError) as info:
        second.raise_if_refused()
    assert info.value.reason == "replayed"
    assert verifier.verify(issuer.issue(CARD_REF, REGION, now=NOW), deadline=_deadline()).accepted


def test_sqlite_replay_cache_survives_a_restart_and_prunes_expired_codes(tmp_path: Path) -> None:
    issuer = es256_issuer()
    text = issuer.issue(CARD_REF, REGION, now=time.time())
    path = tmp_path / "replay.sqlite"
    first = SqliteReplayCache(path)
    assert _verifier(signer_key(issuer), clock=time.time, cache=first).verify(
        text, deadline=_deadline()).accepted
    first.close()
    reopened = SqliteReplayCache(path)
    again = _verifier(signer_key(issuer), clock=time.time, cache=reopened)
    assert again.verify(text, deadline=_deadline()).reason is Reason.REPLAYED
    assert len(reopened) == 1
    assert reopened.remember_once(b"old", time.time() - 1, time.time())
    assert reopened.remember_once(b"new", time.time() + 60, time.time())
    assert len(reopened) == 2  # "old" pruned by the next insert, "new" and the code kept
    reopened.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("skew", [0, 30])
def test_a_replay_is_refused_anywhere_inside_expires_at_plus_skew_on_a_moving_clock(
        tmp_path: Path, kind: str, skew: int) -> None:
    """Issue 23: every replay test ran on a frozen clock, so a cache that kept an accepted
    code only until issued-at + skew (not expires-at + skew) passed. Here the clock moves
    through the whole window, each re-scan at a later time, up to the last instant the
    window still admits the code; one moment later the window itself refuses it."""
    issuer = eddsa_issuer()
    cache = (MemoryReplayCache() if kind == "memory"
             else SqliteReplayCache(tmp_path / "replay.sqlite"))
    clock = [NOW]
    verifier = _verifier(signer_key(issuer), clock=lambda: clock[0], cache=cache,
                         clock_skew=skew)
    lifetime = 60
    text = issuer.issue(CARD_REF, REGION, now=NOW, lifetime=lifetime)
    assert verifier.verify(text, deadline=_deadline()).accepted
    # before issued_at too (inside the skew), and past issued_at + skew, up to the end
    moments = sorted({NOW - skew, NOW + 1, NOW + skew + 0.5, NOW + skew + 1,
                      *(NOW + t for t in range(5, int(lifetime + skew), 5)),
                      NOW + lifetime, NOW + lifetime + skew - 0.5, NOW + lifetime + skew})
    for moment in moments:
        clock[0] = moment
        again = verifier.verify(text, deadline=_deadline())
        assert again.reason is Reason.REPLAYED, (moment - NOW, again.reason)
        # another code of the same card is still accepted at that moment: the cache
        # refuses the code, not the card
        other = issuer.issue(CARD_REF, REGION, now=moment)
        assert verifier.verify(other, deadline=_deadline()).accepted
    clock[0] = NOW + lifetime + skew + 0.5
    assert verifier.verify(text, deadline=_deadline()).reason is Reason.EXPIRED


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_seen_looks_without_recording_and_ignores_expired_entries(
        tmp_path: Path, kind: str) -> None:
    cache = (MemoryReplayCache() if kind == "memory"
             else SqliteReplayCache(tmp_path / "replay.sqlite"))
    now = 1_000.0
    assert not cache.seen(b"code", now)
    assert not cache.seen(b"code", now)   # looking records nothing
    assert cache.remember_once(b"code", now + 60, now)
    assert cache.seen(b"code", now + 59)
    assert not cache.seen(b"code", now + 61)   # expired: the window refuses it anyway


def test_a_replay_cache_that_fails_is_a_refusal_not_an_exception(tmp_path: Path) -> None:
    """The replay store failing (its disk gone, a lock held past the timeout) raised
    JournalError out of ``verify``, which promises results, never exceptions. The code
    is refused (fail closed: it could be a replay), with a reason of its own."""
    issuer = es256_issuer()
    cache = SqliteReplayCache(tmp_path / "replay.sqlite")
    cache.close()     # every statement now fails inside SQLite
    result = _verifier(signer_key(issuer), clock=time.time, cache=cache).verify(
        issuer.issue(CARD_REF, REGION, now=time.time()), deadline=_deadline())
    assert not result.accepted and result.reason is Reason.REPLAY_CHECK_FAILED
    assert result.card_ref == CARD_REF and "replay" in result.message


def test_replay_cache_is_bounded() -> None:
    cache = memory_cache()
    for i in range(1500):
        assert cache.remember_once(i.to_bytes(4, "big"), time.time() + 60 + i, time.time())
    assert len(cache) == 1000
    assert not cache.remember_once((1499).to_bytes(4, "big"), time.time() + 60, time.time())


def test_a_bounded_sqlite_cache_keeps_the_latest_expiring(tmp_path: Path) -> None:
    cache = SqliteReplayCache(tmp_path / "r.sqlite", max_entries=10)
    for i in range(25):
        cache.remember_once(i.to_bytes(4, "big"), time.time() + 100 + i, time.time())
    assert len(cache) == 10
    assert not cache.remember_once((24).to_bytes(4, "big"), time.time() + 100, time.time())
    cache.close()


def test_unknown_and_revoked_key_ids_are_refused_with_their_reason() -> None:
    known, other = es256_issuer(b"es-1"), es256_issuer(b"es-9")
    verifier = _verifier(signer_key(known))
    unknown = verifier.verify(other.issue(CARD_REF, REGION, now=NOW), deadline=_deadline())
    assert unknown.reason is Reason.UNKNOWN_KID and "'es-9'" in unknown.message
    revoked = _verifier(signer_key(known, revoked=True)).verify(
        known.issue(CARD_REF, REGION, now=NOW), deadline=_deadline())
    assert revoked.reason is Reason.REVOKED_KID


@pytest.mark.parametrize("make_issuer", [es256_issuer, eddsa_issuer], ids=["ES256", "EdDSA"])
def test_a_code_signed_by_another_key_under_a_known_kid_is_refused(make_issuer) -> None:  # type: ignore[no-untyped-def]
    """Issue 23: the forged-signature test existed for EdDSA only, so an ES256 check that
    swallowed InvalidSignature (and accepted) passed the suite."""
    real, forger = make_issuer(b"k-1"), make_issuer(b"forger")
    forged_issuer = type(forger)(b"k-1", forger.private_key)
    verifier = _verifier(signer_key(real))
    result = verifier.verify(forged_issuer.issue(CARD_REF, REGION, now=NOW),
                             deadline=_deadline())
    assert result.reason is Reason.BAD_SIGNATURE and not result.accepted
    assert result.card_ref is None          # nothing of a forged payload is passed on


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


@pytest.mark.parametrize("make_issuer", [es256_issuer, eddsa_issuer], ids=["ES256", "EdDSA"])
@pytest.mark.parametrize("index", [0, 31, 32, 63])
def test_a_well_formed_signature_with_one_bit_changed_is_refused(make_issuer, index: int) -> None:  # type: ignore[no-untyped-def]
    """A 64-byte signature of the right shape that does not verify (r and s halves of
    ES256 each touched): the algorithm must answer False, never raise, never accept."""
    issuer = make_issuer()
    payload = ECodePayload(card_ref=CARD_REF, region=REGION, issued_at=int(NOW),
                           expires_at=int(NOW) + 60, nonce=bytes(16)).to_cbor()
    text = encode_text(encode_sign1(issuer.alg, issuer.kid, payload,
                                    lambda m: _flip(issuer.sign(m), index)))
    result = _verifier(signer_key(issuer)).verify(text, deadline=_deadline())
    assert result.reason is Reason.BAD_SIGNATURE and not result.accepted
    genuine = encode_text(encode_sign1(issuer.alg, issuer.kid, payload, issuer.sign))
    assert _verifier(signer_key(issuer)).verify(genuine, deadline=_deadline()).accepted


@pytest.mark.parametrize("make_issuer", [es256_issuer, eddsa_issuer], ids=["ES256", "EdDSA"])
def test_the_algorithms_answer_false_for_a_forgery_and_true_for_the_real_thing(make_issuer) -> None:  # type: ignore[no-untyped-def]
    issuer = make_issuer()
    key = signer_key(issuer)
    algorithm = DEFAULT_ALGORITHMS[key.alg]
    loaded = algorithm.load_public_key(key.public_key)
    message = b"to be signed"
    signature = issuer.sign(message)
    assert algorithm.verify(loaded, signature, message) is True
    assert algorithm.verify(loaded, signature, message + b"!") is False
    assert algorithm.verify(loaded, _flip(signature, 5), message) is False
    assert algorithm.verify(loaded, make_issuer(b"other").sign(message), message) is False
    assert algorithm.verify(loaded, signature + b"\x00", message) is False
    assert algorithm.verify(loaded, signature[:-1], message) is False
    # a key of the other algorithm is refused, not passed to the wrong library call
    other_key = signer_key(es256_issuer() if key.alg == EDDSA else eddsa_issuer())
    other = DEFAULT_ALGORITHMS[other_key.alg].load_public_key(other_key.public_key)
    assert algorithm.verify(other, signature, message) is False


def test_public_keys_of_the_wrong_shape_are_refused_with_a_clear_message() -> None:
    es256, eddsa = DEFAULT_ALGORITHMS[ES256], DEFAULT_ALGORITHMS[EDDSA]
    point = signer_key(es256_issuer()).public_key
    compressed = bytes([2 + (point[-1] & 1)]) + point[1:33]   # a valid P-256 point, 33 bytes
    for raw in (compressed, b"\x06" + point[1:], point[:-1], b""):
        with pytest.raises(ValueError) as refused:
            es256.load_public_key(raw)
        assert str(refused.value) == "an ES256 public key is a 65-byte uncompressed P-256 point"
    for raw in (bytes(31), bytes(33), b""):
        with pytest.raises(ValueError) as refused:
            eddsa.load_public_key(raw)
        assert str(refused.value) == "an Ed25519 public key is 32 bytes"


def test_a_code_whose_algorithm_differs_from_its_keys_is_refused() -> None:
    issuer = eddsa_issuer(b"ed-1")
    es_key = signer_key(es256_issuer(b"ed-1"))
    result = _verifier(es_key).verify(issuer.issue(CARD_REF, REGION, now=NOW),
                                      deadline=_deadline())
    assert result.reason is Reason.BAD_SIGNATURE


def test_a_valid_signature_over_a_wrong_structure_is_refused() -> None:
    issuer = eddsa_issuer()
    wrong = cbor2.dumps({"name": "张三", "id": "330102199001011234"})
    text = encode_text(encode_sign1(EDDSA, issuer.kid, wrong, issuer.sign))
    result = _verifier(signer_key(issuer)).verify(text, deadline=_deadline())
    assert result.reason is Reason.BAD_PAYLOAD and not result.accepted
    assert "张三" not in result.message and "3301021990" not in result.message


@pytest.mark.parametrize("text", ["", "hello", "X" * 100_000, PREFIX + "!!", PREFIX + "A" * 100_000,
                                  "ESSC1234", "https://example.org/?q=1"])
def test_garbage_never_raises_and_is_refused(text: str) -> None:
    result = _verifier(signer_key(es256_issuer())).verify(text, deadline=_deadline())
    assert not result.accepted
    assert result.reason in (Reason.MALFORMED, Reason.UNKNOWN_KIND)


def test_unknown_shapes_are_never_guessed_and_opaque_kinds_come_from_the_profile() -> None:
    national = "ESSC" + "AB" * 20
    plain = _verifier()
    assert plain.verify(national, deadline=_deadline()).reason is Reason.UNKNOWN_KIND
    profile = RecognitionProfile.from_mapping(SIMULATOR_SHAPES)
    assert profile.recognise(national) is CodeKind.NATIONAL
    assert profile.recognise("NHSA" + "0F" * 20) is CodeKind.EVOUCHER
    assert profile.recognise("NHSA" + "zz" * 20) is CodeKind.UNKNOWN
    with pytest.raises(ConfigError):
        RecognitionProfile.from_mapping({"ours": "SC1:.*"})
    with pytest.raises(ConfigError):
        RecognitionProfile.from_mapping({"national": "("})


@pytest.mark.parametrize(("policy", "reason"), [("refuse", Reason.CENTRAL_UNREACHABLE),
                                                ("defer", Reason.DEFERRED)])
def test_opaque_codes_without_a_central_are_refused_or_deferred_as_configured(
        policy: str, reason: Reason) -> None:
    verifier = _verifier(recognition=RecognitionProfile.from_mapping(SIMULATOR_SHAPES),
                         opaque_policy=policy)
    result = verifier.verify("NHSA" + "0F" * 20, deadline=_deadline())
    assert not result.accepted and result.reason is reason
    assert result.kind is CodeKind.EVOUCHER and result.deferred == (policy == "defer")


def _central_trust_list(*keys: tuple[object, bool], not_after: str = "2099-12-31"):  # type: ignore[no-untyped-def]
    entries = []
    for issuer, revoked in keys:
        der = issuer.private_key.public_key().public_bytes(  # type: ignore[attr-defined]
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        alg = "ES256" if issuer.alg == -7 else "EdDSA"  # type: ignore[attr-defined]
        entries.append(models.TrustedKey(issuer.kid.decode(), alg, der,  # type: ignore[attr-defined]
                                         "2020-01-01", not_after, revoked))
    return models.TrustList(1, "2026-11-22T00:00:00Z", tuple(entries))


def test_the_centrals_trust_list_converts_with_key_validity_and_revocation() -> None:
    a, b = es256_issuer(b"sim-es256-1"), eddsa_issuer(b"sim-ed25519-1")
    trust = trust_list_from_central(_central_trust_list((a, False), (b, True)))
    verifier = ECodeVerifier(StaticTrustListProvider(trust), memory_cache(), clock=lambda: NOW)
    assert verifier.verify(a.issue(CARD_REF, REGION, now=NOW), deadline=_deadline()).accepted
    assert verifier.verify(b.issue(CARD_REF, REGION, now=NOW),
                           deadline=_deadline()).reason is Reason.REVOKED_KID
    old = trust_list_from_central(_central_trust_list((a, False), not_after="2023-11-13"))
    verifier = ECodeVerifier(StaticTrustListProvider(old), memory_cache(), clock=lambda: NOW)
    late = verifier.verify(a.issue(CARD_REF, REGION, now=NOW), deadline=_deadline())
    assert late.reason is Reason.KEY_OUT_OF_VALIDITY and "sim-es256-1" in late.message


_CENTRAL_KEY = Ed25519PrivateKey.generate()


def _signed(trust: models.TrustList) -> models.TrustList:
    """``trust`` as the central client returns it: read from the central's signed envelope."""
    document = {"type": "trust_list", "version": trust.version, "issued_at": trust.issued_at,
                "keys": [{"kid": k.kid, "alg": k.alg,
                          "public_key": base64.b64encode(k.public_key).decode("ascii"),
                          "not_before": k.not_before, "not_after": k.not_after,
                          "revoked": k.revoked} for k in trust.keys]}
    return read_signed_trust_list(sign_document(_CENTRAL_KEY, document),
                                  _CENTRAL_KEY.public_key())


class _FlakySource:
    """Stands in for the central client's trust_list(); the real client is exercised in
    test_ecode_online.py against the simulator."""

    def __init__(self, trust: models.TrustList) -> None:
        self.trust, self.down, self.calls = trust, False, 0

    def trust_list(self, deadline: Deadline) -> models.TrustList:
        self.calls += 1
        if self.down:
            raise CentralUnreachableError("central down")
        return self.trust


def test_trust_list_is_cached_in_memory_and_on_disk_for_a_restart_while_central_is_down(
        tmp_path: Path) -> None:
    a = es256_issuer(b"sim-es256-1")
    source = _FlakySource(_signed(_central_trust_list((a, False))))
    ticks = [0.0]
    cache = CachedTrustListFile(tmp_path / "trust.json", _CENTRAL_KEY.public_key())
    provider = CentralTrustListProvider(source, cache=cache, refresh_after=300,
                                        retry_after=30, clock=lambda: ticks[0])
    assert a.kid in provider.trust_list(_deadline()).keys
    provider.trust_list(_deadline())
    assert source.calls == 1
    source.down = True
    ticks[0] = 400.0
    assert a.kid in provider.trust_list(_deadline()).keys  # stale copy while down
    assert provider.wait_idle(5)   # the refresh it started, in the background, failed
    provider.trust_list(_deadline())
    assert provider.wait_idle(5)
    assert source.calls == 2  # no retry before retry_after
    restarted = CentralTrustListProvider(source, cache=cache)
    verifier = ECodeVerifier(restarted, memory_cache(), clock=lambda: NOW)
    assert verifier.verify(a.issue(CARD_REF, REGION, now=NOW), deadline=_deadline()).accepted
    nothing = CentralTrustListProvider(
        source, cache=CachedTrustListFile(tmp_path / "no.json", _CENTRAL_KEY.public_key()))
    refused = ECodeVerifier(nothing, memory_cache(), clock=lambda: NOW).verify(
        a.issue(CARD_REF, REGION, now=NOW), deadline=_deadline())
    assert refused.reason is Reason.NO_TRUST_LIST


def test_a_cache_file_that_cannot_be_written_does_not_refuse_codes(tmp_path: Path) -> None:
    """The central answered, but the cache file could not be written (its directory
    gone, a full or read-only disk): the ConfigError of the save came out of
    ``trust_list`` and the verifier refused a genuine code as "no usable trust list"."""
    a = es256_issuer(b"sim-es256-1")
    source = _FlakySource(_signed(_central_trust_list((a, False))))
    cache = CachedTrustListFile(tmp_path / "gone" / "trust.json", _CENTRAL_KEY.public_key())
    verifier = ECodeVerifier(CentralTrustListProvider(source, cache=cache), memory_cache(),
                             clock=lambda: NOW)
    assert verifier.verify(a.issue(CARD_REF, REGION, now=NOW), deadline=_deadline()).accepted


def test_an_older_trust_list_never_replaces_a_newer_one(tmp_path: Path) -> None:
    """A list the central signed earlier, served again (a stale mirror or proxy, a replay)
    would undo a revocation: the provider keeps the newest version it has seen, in memory
    and in its file."""
    a = es256_issuer(b"sim-es256-1")
    newer = _signed(models.TrustList(2, "2026-11-22T00:00:00Z",
                                     _central_trust_list((a, True)).keys))
    older = _signed(models.TrustList(1, "2026-11-01T00:00:00Z",
                                     _central_trust_list((a, False)).keys))
    source = _FlakySource(newer)
    ticks = [0.0]
    cache = CachedTrustListFile(tmp_path / "trust.json", _CENTRAL_KEY.public_key())
    provider = CentralTrustListProvider(source, cache=cache, refresh_after=300,
                                        retry_after=30, clock=lambda: ticks[0])
    verifier = ECodeVerifier(provider, memory_cache(), clock=lambda: NOW)
    code = a.issue(CARD_REF, REGION, now=NOW)
    assert verifier.verify(code, deadline=_deadline()).reason is Reason.REVOKED_KID
    source.trust = older
    ticks[0] = 400.0
    assert verifier.verify(code, deadline=_deadline()).reason is Reason.REVOKED_KID
    assert provider.wait_idle(5)   # the background refresh got the older list: refused
    assert verifier.verify(code, deadline=_deadline()).reason is Reason.REVOKED_KID
    assert json.loads(cache.path.read_text(encoding="utf-8"))["document"]["version"] == 2
    assert source.calls == 2


def test_a_damaged_trust_list_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    path.write_text('{"keys": [{"kid": "zz"}]}')
    with pytest.raises(ConfigError, match="damaged"):
        CachedTrustListFile(path, _CENTRAL_KEY.public_key()).load()
    for text in ('{"keys": [', "[" * 100_000 + "]" * 100_000):
        path.write_text(text)
        with pytest.raises(ConfigError, match="damaged"):
            CachedTrustListFile(path, _CENTRAL_KEY.public_key()).load()


def _cached(tmp_path: Path, *keys: tuple[object, bool]) -> CachedTrustListFile:
    cache = CachedTrustListFile(tmp_path / "trust.json", _CENTRAL_KEY.public_key())
    cache.save(_signed(_central_trust_list(*keys)))
    return cache


def test_the_cache_holds_the_centrals_signed_document_and_checks_it_on_every_load(
        tmp_path: Path) -> None:
    a = es256_issuer(b"sim-es256-1")
    cache = _cached(tmp_path, (a, False))
    envelope = json.loads(cache.path.read_text(encoding="utf-8"))
    assert envelope["document"]["type"] == "trust_list" and envelope["signature"]
    assert a.kid in cache.load().keys
    # Without the pinned key the file is not trusted, whoever wrote it.
    with pytest.raises(ConfigError, match="--central-key"):
        CachedTrustListFile(cache.path, None).load()
    # Nor with another central's key.
    with pytest.raises(ConfigError, match="refused"):
        CachedTrustListFile(cache.path, Ed25519PrivateKey.generate().public_key()).load()
    # A list that did not come from the central's envelope is never written.
    with pytest.raises(ValueError, match="signed envelope"):
        cache.save(_central_trust_list((a, False)))


@pytest.mark.parametrize("edit", ["add_key", "unrevoke", "extend_validity"])
def test_an_edited_cache_file_is_refused_and_codes_are_not_verified_from_it(
        tmp_path: Path, edit: str) -> None:
    """Whoever can write the state directory must not be able to add a signer key or undo
    a revocation: the central's signature covers the document, and it is checked again."""
    genuine, revoked = es256_issuer(b"sim-es256-1"), eddsa_issuer(b"sim-ed25519-1")
    cache = _cached(tmp_path, (genuine, False), (revoked, True))
    envelope = json.loads(cache.path.read_text(encoding="utf-8"))
    keys = envelope["document"]["keys"]
    forger = es256_issuer(b"forger-1")
    if edit == "add_key":
        keys.append(dict(keys[0], kid="forger-1", public_key=base64.b64encode(
            forger.private_key.public_key().public_bytes(  # type: ignore[attr-defined]
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode("ascii")))
    elif edit == "unrevoke":
        keys[1]["revoked"] = False
    else:
        keys[0]["not_after"] = "2199-12-31"
    cache.path.write_text(json.dumps(envelope), encoding="utf-8")
    with pytest.raises(ConfigError, match="refused"):
        cache.load()
    source = _FlakySource(_signed(_central_trust_list((genuine, False))))
    source.down = True
    verifier = ECodeVerifier(CentralTrustListProvider(source, cache=cache), memory_cache(),
                             clock=lambda: NOW)
    for issuer in (forger, revoked, genuine):
        result = verifier.verify(issuer.issue(CARD_REF, REGION, now=NOW), deadline=_deadline())
        assert result.reason is Reason.NO_TRUST_LIST


class _PluggedAlgorithm:
    """A stand-in for an SM2 plug-in under a private-use COSE id: the verifier only knows
    it through the algorithm table it is given."""

    cose_id = -70_000
    name = "plugged"

    def load_public_key(self, raw: bytes) -> object:
        return DEFAULT_ALGORITHMS[EDDSA].load_public_key(raw)

    def verify(self, key: object, signature: bytes, message: bytes) -> bool:
        return DEFAULT_ALGORITHMS[EDDSA].verify(key, signature, message)


def test_the_algorithm_table_is_pluggable_and_unknown_algorithms_are_refused() -> None:
    issuer = eddsa_issuer(b"plug-1")
    raw = signer_key(issuer).public_key
    payload = ECodePayload(CARD_REF, REGION, int(NOW), int(NOW) + 60, b"p" * 16).to_cbor()
    text = encode_text(encode_sign1(-70_000, issuer.kid, payload, issuer.sign))
    table = {**DEFAULT_ALGORITHMS, -70_000: _PluggedAlgorithm()}
    key = SignerKey(issuer.kid, -70_000, raw)
    plugged = ECodeVerifier(StaticTrustListProvider(TrustList.build([key], algorithms=table)),
                            memory_cache(), clock=lambda: NOW, algorithms=table)
    assert plugged.verify(text, deadline=_deadline()).accepted
    plain = ECodeVerifier(StaticTrustListProvider(TrustList.build([key])), memory_cache(),
                          clock=lambda: NOW)
    assert plain.verify(text, deadline=_deadline()).reason is Reason.UNSUPPORTED_ALGORITHM


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.text(alphabet=st.sampled_from(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"), max_size=300).map(lambda t: PREFIX + t)))
def test_any_text_gets_a_verdict_and_never_an_exception(text: str) -> None:
    verifier = _verifier(signer_key(es256_issuer()),
                         recognition=RecognitionProfile.from_mapping(SIMULATOR_SHAPES))
    result = verifier.verify(text, deadline=_deadline())
    assert not result.accepted and isinstance(result.reason, Reason)


@pytest.mark.parametrize("skew", [float("nan"), float("inf"), -1.0])
def test_a_clock_skew_that_is_not_a_finite_tolerance_is_refused(skew: float) -> None:
    """A NaN skew made both window comparisons false: a code expired for hours (here
    10 000 s) was accepted. An infinite one accepts every expired code as well."""
    issuer = eddsa_issuer()
    with pytest.raises(ValueError, match="clock_skew"):
        _verifier(signer_key(issuer), clock=lambda: NOW + 10_000, clock_skew=skew)


# SubjectPublicKeyInfo of an EC key on the SM2 curve (OID 1.2.156.10197.1.301), which
# cryptography cannot load: it raises UnsupportedAlgorithm, not ValueError.
_SM2_SPKI = (bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
             + b"\x04" + bytes(64))


def test_a_trust_list_key_cryptography_cannot_load_is_a_clear_refusal() -> None:
    """cryptography's UnsupportedAlgorithm came out of trust_list_from_central and then out
    of ``verify`` itself (the verifier catches only our errors): one odd key in the
    central's list crashed every verification instead of refusing with no_trust_list."""
    a = es256_issuer(b"sim-es256-1")
    good = _central_trust_list((a, False))
    odd = models.TrustedKey("sm2-1", "ES256", _SM2_SPKI, "2020-01-01", "2099-12-31", False)
    with_odd = models.TrustList(2, good.issued_at, (*good.keys, odd))
    with pytest.raises(ConfigError, match="sm2-1"):
        trust_list_from_central(with_odd)
    verifier = ECodeVerifier(CentralTrustListProvider(_FlakySource(_signed(with_odd))),
                             memory_cache(), clock=lambda: NOW)
    result = verifier.verify(a.issue(CARD_REF, REGION, now=NOW), deadline=_deadline())
    assert result.reason is Reason.NO_TRUST_LIST


class _GatedEd25519:
    """EdDSA whose key loading waits, in the thread named ``stale``, until released: it
    holds that thread between the provider's rollback check and its commit."""

    cose_id, name = EDDSA, "EdDSA"

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def load_public_key(self, raw: bytes) -> object:
        if threading.current_thread().name == "stale":
            self.entered.set()
            self.release.wait(10)
        return DEFAULT_ALGORITHMS[EDDSA].load_public_key(raw)

    def verify(self, key: object, signature: bytes, message: bytes) -> bool:
        return DEFAULT_ALGORITHMS[EDDSA].verify(key, signature, message)


def test_two_racing_refreshes_never_roll_the_trust_list_back() -> None:
    """Two threads refresh at once: one gets a stale version 2 (key not yet revoked),
    the other the current version 3 (key revoked). The rollback check ran before the
    slow key loading and the commit was unconditional, so the stale list, committed
    last, replaced the newer one and undid the revocation."""
    a = eddsa_issuer(b"sim-ed25519-1")
    keys_ok, keys_revoked = (_central_trust_list((a, False)).keys,
                             _central_trust_list((a, True)).keys)
    answers = [_signed(models.TrustList(1, "2026-11-01T00:00:00Z", keys_ok)),
               _signed(models.TrustList(2, "2026-11-10T00:00:00Z", keys_ok)),
               _signed(models.TrustList(3, "2026-11-22T00:00:00Z", keys_revoked))]

    class Source:
        def trust_list(self, deadline: Deadline) -> models.TrustList:
            return answers.pop(0)

    gated = _GatedEd25519()
    ticks = [0.0]
    provider = CentralTrustListProvider(Source(), refresh_after=300, clock=lambda: ticks[0],
                                        algorithms={**DEFAULT_ALGORITHMS, EDDSA: gated})
    provider.trust_list(_deadline())                      # version 1
    ticks[0] = 400.0
    # Explicit refreshes (a daemon's, or the background one beside a daemon's): the
    # background refreshes alone run one at a time.
    stale = threading.Thread(target=provider.refresh, args=(_deadline(),), name="stale")
    stale.start()                                         # takes version 2, then waits
    assert gated.entered.wait(10)
    assert provider.refresh(_deadline()).keys[a.kid].revoked      # version 3
    gated.release.set()
    stale.join(10)
    assert provider.trust_list(_deadline()).keys[a.kid].revoked
    verifier = ECodeVerifier(provider, memory_cache(), clock=lambda: NOW)
    assert verifier.verify(a.issue(CARD_REF, REGION, now=NOW),
                           deadline=_deadline()).reason is Reason.REVOKED_KID


def test_a_due_refresh_never_holds_the_scan_and_runs_once_however_many_scan() -> None:
    """The refresh ran inline in the scan that found it due: that scan waited for the
    central (its whole budget while the central was slow, leaving nothing for the card's
    online check), and every lane scanning then fetched again."""
    a = eddsa_issuer(b"sim-ed25519-1")
    keys_ok, keys_revoked = (_central_trust_list((a, False)).keys,
                             _central_trust_list((a, True)).keys)
    answers = [_signed(models.TrustList(1, "2026-11-01T00:00:00Z", keys_ok)),
               _signed(models.TrustList(2, "2026-11-22T00:00:00Z", keys_revoked))]
    asked, slow = threading.Event(), threading.Event()
    calls: list[int] = []

    class SlowCentral:
        def trust_list(self, deadline: Deadline) -> models.TrustList:
            calls.append(1)
            if len(calls) > 1:
                asked.set()
                slow.wait(10)
            return answers.pop(0)

    ticks = [0.0]
    provider = CentralTrustListProvider(SlowCentral(), refresh_after=300,
                                        clock=lambda: ticks[0])
    assert not provider.trust_list(_deadline()).keys[a.kid].revoked   # the first: inline
    ticks[0] = 400.0
    try:
        for _ in range(5):     # five lanes scan while the central is slow to answer
            started = time.monotonic()
            assert not provider.trust_list(_deadline()).keys[a.kid].revoked
            assert time.monotonic() - started < 0.5
        assert asked.wait(5) and len(calls) == 2
    finally:
        slow.set()
    assert provider.wait_idle(5)
    assert provider.trust_list(_deadline()).keys[a.kid].revoked      # version 2 in use
    assert len(calls) == 2


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_full_replay_cache_never_forgets_the_code_it_just_accepted(
        kind: str, tmp_path: Path) -> None:
    """Full cache, "closest to expiry goes first": a 60-second code accepted after
    longer-lived ones was itself the closest to expiry, so it was evicted the moment it
    was recorded and the very same code was accepted again (a replay)."""
    issuer = eddsa_issuer()
    cache = (SqliteReplayCache(tmp_path / "r.sqlite", max_entries=2) if kind == "sqlite"
             else MemoryReplayCache(max_entries=2))
    verifier = _verifier(signer_key(issuer), cache=cache)
    for _ in range(2):
        long_lived = issuer.issue(CARD_REF, REGION, now=NOW, lifetime=600)
        assert verifier.verify(long_lived, deadline=_deadline()).accepted
    short = issuer.issue(CARD_REF, REGION, now=NOW)
    assert verifier.verify(short, deadline=_deadline()).accepted
    assert verifier.verify(short, deadline=_deadline()).reason is Reason.REPLAYED
