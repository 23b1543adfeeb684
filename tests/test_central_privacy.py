"""No holder's personal data reaches the logs, even at DEBUG, even with identity."""

from __future__ import annotations

import logging

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central import Channel
from sscard_terminal.deadline import Deadline
from sscard_terminal.errors import CentralUnreachableError


def test_full_validation_with_identity_logs_no_personal_data(
        central_sim: CentralSim, caplog: pytest.LogCaptureFixture) -> None:
    card = DEMO_CARDS["normal"]
    caplog.set_level(logging.DEBUG)
    with central_sim.make_client(identity=True) as client:
        result = client.validate_card(card.identification_code, card.card_number, card.region,
                                      Channel.CONTACT, Deadline.after(3))
        logging.getLogger("test").info("result: %r", result)
        central_sim.set_faults(mode="error")
        with pytest.raises(CentralUnreachableError) as info:
            client.validate_card(card.identification_code, card.card_number, card.region,
                                 Channel.CONTACT, Deadline.after(0.5))
    assert result.holder is not None and result.holder.name == card.name
    text = caplog.text + str(info.value)
    assert "validated card" in caplog.text  # the debug line was really emitted
    for secret in (card.name, card.id_number, card.card_number, central_sim.identity_secret):
        assert secret not in text
