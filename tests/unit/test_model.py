"""The vocabulary: customer identities parse and print one way, keys are built in one place, and
states are their stored text."""

from __future__ import annotations

import pytest

from deskie_mm_bot.model import ConvKey, ConvState, Customer, CustomerKind, ItemKind, named


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


def test_a_customer_of_a_named_workspace_prints_and_parses_with_its_name() -> None:
    jane = Customer.person("abc123", "acme")
    assert str(jane) == "acme:u:abc123"
    assert Customer.parse("acme:u:abc123") == jane
    assert Customer.parse("globex:c:chan1") == Customer.channel("chan1", "globex")
    # The single form keeps its two parts, and the two forms never read as each other.
    assert Customer.parse("u:abc123") == Customer.person("abc123")
    assert Customer.parse("u:abc123") != jane


def test_ids_this_bot_did_not_write_are_no_customer() -> None:
    for text in ("", "x:abc", ":u:abc", "Acme:u:abc", "acme:x:abc", "acme:u:", "a:b:u:c", "acme_1:u:abc"):
        assert Customer.parse(text) is None, text


def test_conversation_keys_carry_the_workspace_except_for_a_case_s_own_key() -> None:
    assert ConvKey.channel("ch1", "acme") == "acme:ch:ch1"
    assert ConvKey.thread("root", "acme") == "acme:th:root"
    assert ConvKey.channel("ch1") == "ch:ch1"
    assert [ConvKey.workspace_of(k) for k in ("acme:ch:ch1", "ch:ch1", "out:42", "globex:th:r")] == [
        "acme", "", "", "globex"]


def test_full_names_name_the_workspace_only_when_there_are_several() -> None:
    assert named("Jane Doe (@jane)", "acme") == "Jane Doe (@jane) \u00b7 acme"
    assert named("Jane Doe (@jane)", "") == "Jane Doe (@jane)"
