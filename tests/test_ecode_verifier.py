"""Offline verification: signature, validity window, replay, key ids, trust list, kinds."""

from __future__ import annotations

import time
from pathlib import Path

import cbor2
import pytest

from sscard_terminal.deadline import Deadline
from sscard_terminal.ecode import (
    PREFIX,
    SIMULATOR_SHAPES,
    CodeKind,
    ECodeVerifier,
    FileTrustListProvider,
    Reason,
    RecognitionProfile,
    SqliteReplayCache,
    encode_sign1,
    encode_text,
    encode_trust_list,
    load_signed_trust_list,
)
from sscard_terminal.ecode.algorithms import EDDSA
from sscard_terminal.errors import ConfigError, ECodeRefusedError

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
    return ECodeVerifier(trust_provider(*keys), cache if cache is not None else memory_cache(), clock=clock, **kw)


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
    assert unknown.reason is Reason.UNKNOWN_KID and "6573" in unknown.message
    revoked = _verifier(signer_key(known, revoked=True)).verify(
        known.issue(CARD_REF, REGION, now=NOW), deadline=_deadline())
    assert revoked.reason is Reason.REVOKED_KID


def test_a_code_signed_by_another_key_under_a_known_kid_is_refused() -> None:
    real, forger = eddsa_issuer(b"ed-1"), eddsa_issuer(b"forger")
    forged_issuer = type(forger)(b"ed-1", forger.private_key)
    verifier = _verifier(signer_key(real))
    result = verifier.verify(forged_issuer.issue(CARD_REF, REGION, now=NOW),
                             deadline=_deadline())
    assert result.reason is Reason.BAD_SIGNATURE and not result.accepted


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


def _root():  # type: ignore[no-untyped-def]
    root = eddsa_issuer(b"root-1")
    return root, {root.kid: (EDDSA, signer_key(root).public_key)}


def test_signed_trust_list_file_is_verified_and_reloaded_when_it_changes(tmp_path: Path) -> None:
    root, roots = _root()
    a, b = es256_issuer(b"es-a"), eddsa_issuer(b"ed-b")
    path = tmp_path / "trust.cose"
    path.write_bytes(encode_trust_list([signer_key(a)], 1, root.kid, EDDSA, root.sign))
    provider = FileTrustListProvider(path, roots)
    verifier = ECodeVerifier(provider, memory_cache(), clock=lambda: NOW)
    assert verifier.verify(a.issue(CARD_REF, REGION, now=NOW), deadline=_deadline()).accepted
    code_b = b.issue(CARD_REF, REGION, now=NOW)
    assert verifier.verify(code_b, deadline=_deadline()).reason is Reason.UNKNOWN_KID
    path.write_bytes(encode_trust_list([signer_key(a, revoked=True), signer_key(b)], 2,
                                       root.kid, EDDSA, root.sign) + b"")
    import os
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert verifier.verify(code_b, deadline=_deadline()).accepted
    assert verifier.verify(a.issue(CARD_REF, REGION, now=NOW),
                           deadline=_deadline()).reason is Reason.REVOKED_KID


def test_a_trust_list_not_signed_by_the_pinned_root_is_refused(tmp_path: Path) -> None:
    _, roots = _root()
    impostor = eddsa_issuer(b"root-1")  # same kid, other key
    impostor = type(impostor)(b"root-1", eddsa_issuer(b"impostor").private_key)
    doc = encode_trust_list([signer_key(es256_issuer())], 1, impostor.kid, EDDSA,
                            impostor.sign)
    with pytest.raises(ConfigError, match="signature"):
        load_signed_trust_list(doc, roots)
    with pytest.raises(ConfigError, match="unknown root"):
        load_signed_trust_list(doc, {})
    with pytest.raises(ConfigError):
        load_signed_trust_list(b"\x00garbage", roots)
    path = tmp_path / "missing.cose"
    verifier = ECodeVerifier(FileTrustListProvider(path, roots), memory_cache(),
                             clock=lambda: NOW)
    issuer = es256_issuer()
    result = verifier.verify(issuer.issue(CARD_REF, REGION, now=NOW), deadline=_deadline())
    assert result.reason is Reason.NO_TRUST_LIST
