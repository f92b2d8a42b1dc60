"""What Mattermost will never take is not lost silently: a post refused for good drops the answer and tells
the agent in a note; a file that can never come is named in the post and in a note; a refused reaction is
given up without holding back anything (the outbound relay over a FakeChat and a real store)."""

from __future__ import annotations

import asyncio

import pytest

from deskie_mm_bot.model import ConvKey, ItemKind
from deskie_mm_bot.relay.outbound import OutboundRelay
from deskie_mm_bot.relay.reactions import StatusReactions
from deskie_mm_bot.store import Conversation, OutboxItem, Store
from tests.support.fakes import FakeChat, FakeClock

pytestmark = pytest.mark.timeout(10)


def _chat(store: Store) -> Conversation:
    return store.create_conversation(
        conv_key=ConvKey.channel("dm-a", "acme"), channel_id="dm-a", reply_root_id="", user_custom_id="acme:u:jane",
        user_full_name="Jane", case_id=7, case_number="7", deskie_user_id=5, last_message_id=0, case_updated_at=None,
    )


def _notes(store: Store, conv: Conversation) -> list[OutboxItem]:
    return [i for i in store.pending_items(conv.conv_key) if i.kind == ItemKind.NOTE]


def test_a_post_refused_for_good_drops_the_answer_and_tells_the_agent(store: Store, clock: FakeClock) -> None:
    chat = FakeChat("acme-bot", clock)
    chat.refused_channels.add("dm-a")
    conv = _chat(store)
    store.add_reply(message_id=501, case_id=7, conversation_id=conv.id, body="your invoice is attached",
                    attachments=[], source="webhook")
    relay = OutboundRelay(store, {"acme": chat}, clock=clock)
    asyncio.run(relay.drain())
    assert chat.made() == [] and store.count_replies("dropped") == 1 and relay.failures == 0
    (note,) = _notes(store, conv)
    assert "could not be posted" in note.text and "your invoice is attached" in note.text
    asyncio.run(relay.drain())  # said once only
    assert len(_notes(store, conv)) == 1


def test_a_file_that_can_never_come_is_named_in_the_post_and_told_to_the_agent(
    store: Store, clock: FakeClock,
) -> None:
    chat = FakeChat("acme-bot", clock)
    chat.unbringable["huge.iso"] = "over Mattermost's 100 MB limit"
    conv = _chat(store)
    store.add_reply(message_id=502, case_id=7, conversation_id=conv.id, body="two files",
                    attachments=[{"url": "https://dk.example/files/notes.txt"},
                                 {"url": "https://dk.example/files/huge.iso"}], source="webhook")
    asyncio.run(OutboundRelay(store, {"acme": chat}, clock=clock).drain())
    (post,) = chat.made()
    assert [name for _, name in chat.files.values()] == ["notes.txt"] and len(post["file_ids"]) == 1
    assert "huge.iso could not be attached (over Mattermost's 100 MB limit)" in post["message"]
    (note,) = _notes(store, conv)
    assert "huge.iso" in note.text and store.count_replies("posted") == 1


def test_a_refused_reaction_is_given_up_without_holding_back_the_answer(store: Store, clock: FakeClock) -> None:
    chat = FakeChat("acme-bot", clock)
    chat.refuse_reactions = True
    conv = _chat(store)
    store.note_first_post(conv.id, "dm-a", "p1")  # the customer's post the chat's reactions go on
    store.add_reply(message_id=503, case_id=7, conversation_id=conv.id, body="hi", attachments=[], source="webhook")
    reactions = StatusReactions(store, {"acme": chat}, enabled=True, clock=clock)
    asyncio.run(OutboundRelay(store, {"acme": chat}, clock=clock, after_drain=reactions.settle).drain())
    assert chat.texts("dm-a") == ["hi"] and chat.reactions == [] and reactions.made == 0
    assert chat.calls == 2  # the post, and the :eyes: it asked for
    chat.refuse_reactions = False
    asyncio.run(reactions.settle())
    assert chat.calls == 2 and chat.reactions == []  # given up for good: not tried again
