"""A generation 3 read with PSAM authentication, against a bare pyscard loop.

Card (gen3-adult, SM4) in vpcd slot 0, virtual PSAM in slot 1, both through pcscd, in
one process. Ours: connect to the card, ``read_card_info`` with a
:class:`PsamAuthenticator` over a PSAM connection kept open (as the daemon keeps it).
Baseline: ``smartcard.scard`` directly, replaying the exact APDU sequence ours sent to
card and PSAM in a steady-state read (the PSAM's key check is done on its first read
only), in the same order, with only the fresh values substituted (the random R,
the PSAM's answers, the cryptogram) and the same constant-time comparison. Reported:
median ratio ours/baseline (goal <= 1.25).

    python -m bench card_auth [--runs N] [--holder NAME]
"""

from __future__ import annotations

import argparse
import hmac
import os
import statistics
import time

from smartcard import scard
from sscard_hardware_sim.pcscd_runner import PcscdRunner, wait_card_state
from sscard_hardware_sim.recording import RecordingTransport, Step
from sscard_hardware_sim.virtual_card import VirtualCard
from sscard_hardware_sim.virtual_psam import full_psam
from sscard_hardware_sim.vpcd_link import VpcdLink

from sscard_terminal.cards.authentication.psam import PsamAuthenticator
from sscard_terminal.cards.ssse import read_card_info
from sscard_terminal.drivers.pcsc import PcscTransport

CARD_READER = "Virtual PCD 00 00"
PSAM_READER = "Virtual PCD 00 01"



def _ours(psam: PsamAuthenticator) -> float:
    start = time.perf_counter()
    with PcscTransport(CARD_READER) as transport:
        info = read_card_info(transport, authenticator=psam)
    elapsed = time.perf_counter() - start
    if not info.complete:
        raise RuntimeError("benchmark read was incomplete")
    return elapsed


def _transmit(card: int, proto: int, apdu: bytes) -> bytes:
    result, response = scard.SCardTransmit(card, proto, list(apdu))
    if result != scard.SCARD_S_SUCCESS or len(response) < 2:
        raise RuntimeError("baseline transmit failed")
    return bytes(response)


def _baseline(psam: tuple[int, int], steps: list[Step]) -> float:
    """One read as ours does it: its own context and connection to the card."""
    start = time.perf_counter()
    _, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    _, card, proto = scard.SCardConnect(ctx, CARD_READER, scard.SCARD_SHARE_SHARED,
                                        scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
    scard.SCardStatus(card)
    random = b""
    card_answer = b""
    usage = 0
    psam_answer = b""
    for target, recorded in steps:
        apdu = recorded
        if target == "card":
            if apdu[1] == 0x88:
                random = os.urandom(16)
                apdu = apdu[:5] + random
            elif apdu[1] == 0x82:
                apdu = apdu[:5] + psam_answer
            answer = _transmit(card, proto, apdu)
            if apdu[1] == 0x88:
                card_answer = answer[:-2]
            elif apdu[1] == 0x84:
                challenge = answer[:-2]
        else:
            if apdu[1] == 0x1A:
                usage = apdu[2]
            elif apdu[1] == 0xFA:
                block = random if usage == 0x01 else challenge.ljust(16, b"\x00")
                apdu = apdu[:5] + block + apdu[21:]
            answer = _transmit(psam[0], psam[1], apdu)
            if apdu[1] == 0xFA:
                psam_answer = answer[:-2]
                if usage == 0x01 and not hmac.compare_digest(psam_answer, card_answer):
                    raise RuntimeError("baseline internal authentication mismatch")
    scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    scard.SCardReleaseContext(ctx)
    return time.perf_counter() - start


def main(argv: list[str]) -> float:
    parser = argparse.ArgumentParser(prog="python -m bench card_auth")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--holder", default="gen3-adult")
    args = parser.parse_args(argv)
    with PcscdRunner() as _runner, \
            VpcdLink(VirtualCard.from_holder(args.holder), slot=0) as _card, \
            VpcdLink(full_psam(), slot=1) as _psam:
        wait_card_state(CARD_READER, True)
        wait_card_state(PSAM_READER, True)
        steps: list[Step] = []
        psam_transport = PcscTransport(PSAM_READER)
        recorder = PsamAuthenticator(RecordingTransport(psam_transport, steps, "psam"))
        for _ in range(2):  # record a steady-state read: the PSAM check is done once
            steps.clear()
            with PcscTransport(CARD_READER) as card_transport:
                info = read_card_info(RecordingTransport(card_transport, steps, "card"),
                                      authenticator=recorder)
            if not info.complete:
                raise RuntimeError("recording read was incomplete")
        steps = list(steps)  # the recorder keeps appending to the old list
        psam = PsamAuthenticator(psam_transport)
        _, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _, psam_card, psam_proto = scard.SCardConnect(
            ctx, PSAM_READER, scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        try:
            for _ in range(10):  # warm up both paths
                _ours(psam)
                _baseline((psam_card, psam_proto), steps)
            ours: list[float] = []
            base: list[float] = []
            for _ in range(args.runs):  # interleaved, so drift hits both alike
                ours.append(_ours(psam))
                base.append(_baseline((psam_card, psam_proto), steps))
        finally:
            scard.SCardDisconnect(psam_card, scard.SCARD_LEAVE_CARD)
            scard.SCardReleaseContext(ctx)
            psam_transport.close()
    ratio = statistics.median(ours) / statistics.median(base)
    card_apdus = sum(1 for target, _ in steps if target == "card")
    print(f"holder={args.holder} card_apdus={card_apdus} "
          f"psam_apdus={len(steps) - card_apdus} runs={args.runs}")
    print(f"ours     median={statistics.median(ours) * 1000:.2f} ms")
    print(f"baseline median={statistics.median(base) * 1000:.2f} ms")
    print(f"median ratio={ratio:.3f} (goal <= 1.25)")
    return ratio
