"""The core wired in one place (`Relay`) over the fake helpdesk and two workspaces' FakeEdges: a customer's
message reaches the helpdesk with its workspace's files and route, and the agent's answer comes back
into that workspace's chat, with its status reaction there too."""

from __future__ import annotations

import asyncio

import pytest

from deskie_mm_bot.model import ConvKey
from deskie_mm_bot.relay.relay import Relay
from deskie_mm_bot.store import Store
from tests.support.fakes import FakeClock, FakeEdge, FakeHelpdesk

pytestmark = pytest.mark.timeout(10)


def _customer_post(store: Store, clock: FakeClock, workspace: str, channel_id: str, post_id: str, text: str,
                   file_ids: list[str]) -> None:
    """What a workspace's intake records for a DM of its Jane."""
    store.enqueue_post(post_id=post_id, conv_key=ConvKey.channel(channel_id, workspace), channel_id=channel_id,
                       reply_root_id="", user_custom_id=f"{workspace}:u:jane", user_full_name="Jane",
                       author="Jane", show_author=False, text=text, file_ids=file_ids, posted_at=clock.now)


def test_one_message_each_way_per_workspace(store: Store, clock: FakeClock) -> None:
    helpdesk = FakeHelpdesk()
    acme, globex = FakeEdge("acme"), FakeEdge("globex")
    acme.customer_files["fa"] = ({"name": "invoice.pdf", "mime_type": "application/pdf"}, b"%PDF")
    globex.customer_files["fg"] = ({"name": "photo.png", "mime_type": "image/png"}, b"\x89PNG")
    acme.routes["dm-a"], globex.routes["dm-g"] = "Billing", "Sales"
    relay = Relay(store, helpdesk, [acme, globex], thread_mode=False, reactions=True, idle_timeout=600,
                  names=None, clock=clock)

    # Mattermost -> Deskie: each customer's message opens a case for that workspace's customer.
    _customer_post(store, clock, "acme", "dm-a", "pa", "hello from acme", ["fa"])
    _customer_post(store, clock, "globex", "dm-g", "pg", "hello from globex", ["fg"])
    asyncio.run(relay.inbound.drain())
    assert relay.queued() == (0, 0)
    by_customer = {custom: case for case, custom in helpdesk.customer_of_case.items()}
    a, g = by_customer["acme:u:jane"], by_customer["globex:u:jane"]
    assert dict(helpdesk.written)[a] == "hello from acme" and dict(helpdesk.written)[g] == "hello from globex"
    assert helpdesk.files_of[a] == ["invoice.pdf"] and helpdesk.files_of[g] == ["photo.png"]
    assert helpdesk.groups[a] == "Billing" and helpdesk.groups[g] == "Sales"  # each channel's own route

    # Deskie -> Mattermost: each answer lands in its own workspace's chat, :eyes: on the customer's post.
    for case, text in ((a, "answer for acme"), (g, "answer for globex")):
        conv = store.conversation_by_case(case)
        assert conv is not None
        assert store.add_reply(message_id=900 + case, case_id=case, conversation_id=conv.id, body=text,
                               attachments=[], source="webhook")
    asyncio.run(relay.outbound.drain())
    assert [(p["channel_id"], p["message"]) for p in acme.chat.made()] == [("dm-a", "answer for acme")]
    assert [(p["channel_id"], p["message"]) for p in globex.chat.made()] == [("dm-g", "answer for globex")]
    assert acme.chat.reactions == [("pa", "eyes")] and globex.chat.reactions == [("pg", "eyes")]
    assert relay.totals()["deskie_mm_answers_posted"] == 2 and relay.queued() == (0, 0)


def test_a_message_of_a_workspace_taken_out_of_the_config_waits(store: Store, clock: FakeClock) -> None:
    """Its file cannot be fetched from any other workspace: the message stays queued, nothing is sent."""
    helpdesk = FakeHelpdesk()
    acme = FakeEdge("acme")
    acme.customer_files["fi"] = ({"name": "not-yours.txt", "mime_type": "text/plain"}, b"x")
    relay = Relay(store, helpdesk, [acme], thread_mode=False, reactions=True, idle_timeout=600, names=None,
                  clock=clock)
    _customer_post(store, clock, "initech", "dm-i", "pi", "hello from initech", ["fi"])
    asyncio.run(relay.inbound.drain())
    assert helpdesk.cases == [] and relay.queued() == (1, 0)
