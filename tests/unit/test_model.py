"""The vocabulary: customer identities parse and print one way, keys are built in one place, and
states are their stored text."""

from __future__ import annotations

import pytest

from deskie_mm_bot.model import ConvKey, ConvState, Customer, CustomerKind, ItemKind


def test_customer_identities_round_trip_and_refuse_what_the_bot_did_not_write() -> None:
    jane = Customer.person("u1x")
    assert str(jane) == "u:u1x" and Customer.parse("u:u1x") == jane
    assert Customer.parse("c:ch9") == Customer(CustomerKind.CHANNEL, "ch9")
    for foreign in ("", "u:", "x:abc", "mm:u1", "plain"):
        assert Customer.parse(foreign) is None


def test_conversation_keys() -> None:
    assert ConvKey.channel("c1") == "ch:c1" and ConvKey.thread("p1") == "th:p1"
    assert ConvKey.outgoing(2000) == "out:2000" and ConvKey.is_outgoing("out:2000")
    assert not ConvKey.is_outgoing(ConvKey.thread("p1"))


@pytest.mark.parametrize("member", [ConvState.CLOSED, ItemKind.NOTE])
def test_states_are_their_stored_text(member: ConvState | ItemKind) -> None:
    assert member == member.value and f"{member}" == member.value and str(member) == member.value
