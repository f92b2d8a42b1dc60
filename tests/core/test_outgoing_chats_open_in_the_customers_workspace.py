"""A case an agent started is opened as a chat in the workspace its customer's id names, and nowhere
else; a customer of a workspace the bot does not serve gets no chat (OutgoingChats over two FakeEdges)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from deskie_mm_bot.model import ConvKey, Customer
from deskie_mm_bot.relay.outgoing import OutgoingChats
from deskie_mm_bot.store import Store
from tests.support.fakes import FakeEdge, FakeHelpdesk

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "s.sqlite3")
    yield s
    s.close()


@pytest.fixture
def edges() -> dict[str, FakeEdge]:
    # Both workspaces have a "jane" with the same id: only the workspace in the customer's id tells them apart.
    acme, globex = FakeEdge("acme"), FakeEdge("globex")
    acme.places["jane"] = ("dm-acme-jane", "Jane Acme")
    globex.places["jane"] = ("dm-globex-jane", "Jane Globex")
    return {"acme": acme, "globex": globex}


def _chats(store: Store, edges: dict[str, FakeEdge], *, thread_mode: bool = False) -> OutgoingChats:
    return OutgoingChats(store, FakeHelpdesk(), edges, thread_mode=thread_mode, floor_of=lambda ws: 0)


def test_the_chat_opens_in_the_workspace_the_customer_belongs_to(store: Store, edges: dict[str, FakeEdge]) -> None:
    conv = asyncio.run(_chats(store, edges).for_webhook(300, "globex:u:jane"))
    assert conv is not None
    assert (conv.workspace, conv.channel_id, conv.user_full_name) == ("globex", "dm-globex-jane", "Jane Globex")
    assert conv.conv_key == ConvKey.channel("dm-globex-jane", "globex") and conv.case_id == 300
    assert edges["globex"].asked_places == [Customer.person("jane", "globex")]
    assert edges["acme"].asked_places == []
    assert store.conversation_by_case(300) == conv


def test_in_thread_mode_the_chat_waits_for_its_first_post_under_the_case(
    store: Store, edges: dict[str, FakeEdge],
) -> None:
    conv = asyncio.run(_chats(store, edges, thread_mode=True).for_webhook(301, "acme:u:jane"))
    assert conv is not None and conv.workspace == "acme" and conv.channel_id == "dm-acme-jane"
    assert conv.conv_key == ConvKey.outgoing(301) and conv.reply_root_id == ""


@pytest.mark.parametrize("customer", ["initech:u:jane", "u:jane", "not a customer id"])
def test_a_customer_of_a_workspace_the_bot_does_not_serve_gets_no_chat(
    store: Store, edges: dict[str, FakeEdge], customer: str,
) -> None:
    assert asyncio.run(_chats(store, edges).for_webhook(302, customer)) is None
    assert store.conversation_by_case(302) is None
    assert edges["acme"].asked_places == [] and edges["globex"].asked_places == []


def test_a_person_the_workspace_does_not_know_gets_no_chat(store: Store, edges: dict[str, FakeEdge]) -> None:
    assert asyncio.run(_chats(store, edges).for_webhook(303, "acme:u:nobody")) is None
    assert store.conversation_by_case(303) is None


def test_a_missed_outgoing_chat_whose_workspace_is_down_is_not_given_up(
    store: Store, edges: dict[str, FakeEdge]
) -> None:
    from deskie_mm_bot.model import CaseStatus, CaseSummary

    helpdesk = FakeHelpdesk()
    helpdesk.customers[7] = "globex:u:jane"
    chats = OutgoingChats(store, helpdesk, edges, thread_mode=False, floor_of=lambda ws: 0)
    case = CaseSummary(301, CaseStatus.OPEN, user_id=7, created_at=1.0)
    edges["globex"].chat.down = True
    # This poll cannot open it (and does not fail for the other workspaces' cases)...
    assert asyncio.run(chats.adopt(case)) is None
    # ...and a later one, with globex back, does: the case was not declined.
    edges["globex"].chat.down = False
    conv = asyncio.run(chats.adopt(case))
    assert conv is not None and conv.workspace == "globex" and conv.channel_id == "dm-globex-jane"
