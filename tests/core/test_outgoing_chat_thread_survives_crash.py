"""An agent-started chat in thread mode lives in the thread of its first post, even when the bot
was killed right after that post was made (before, or right after, it was recorded)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from deskie_mm_bot.model import ConvKey
from deskie_mm_bot.relay.outbound import PROP_MESSAGE, PROP_PART, OutboundRelay
from deskie_mm_bot.store import Store
from tests.support.fakes import FakeChat

pytestmark = pytest.mark.timeout(10)

CASE = 77
MID = 501
BODY = ("first paragraph " * 700).strip() + "\n\n" + ("second paragraph " * 500).strip()  # two posts


def _setup(tmp_path: Path) -> tuple[Store, int, int]:
    store = Store(tmp_path / "s.sqlite3")
    conv = store.create_conversation(
        conv_key=ConvKey.outgoing(CASE), channel_id="dm1", reply_root_id="", user_custom_id="u:jane",
        user_full_name="Jane", case_id=CASE, case_number="1-1", deskie_user_id=5, last_message_id=0,
        case_updated_at=None, last_speaker="agent",
    )
    assert store.add_reply(message_id=MID, case_id=CASE, conversation_id=conv.id, body=BODY, attachments=[],
                           source="webhook")
    reply = store.due_replies(1e12)[0]
    store.mark_reply_posting(reply.id)  # the first post was being made when the bot was killed
    return store, conv.id, reply.id


def _chat_with_first_post() -> FakeChat:
    chat = FakeChat()
    chat.already_posted("dm1", "root1", props={PROP_MESSAGE: str(MID), PROP_PART: 0})
    return chat


def _check(store: Store, conv_id: int, chat: FakeChat) -> None:
    conv = store.conversation(conv_id)
    assert conv is not None
    assert (conv.conv_key, conv.reply_root_id) == ("th:root1", "root1")
    # The first part was not posted again; the second went into the thread.
    assert [(p["id"] == "root1", p["root_id"]) for p in chat.posts["dm1"]] == [(True, ""), (False, "root1")]


def test_first_post_made_but_not_recorded_before_a_crash_still_becomes_the_thread(tmp_path: Path) -> None:
    store, conv_id, _ = _setup(tmp_path)
    chat = _chat_with_first_post()
    asyncio.run(OutboundRelay(store, chat).drain())
    _check(store, conv_id, chat)
    store.close()


def test_first_post_recorded_but_chat_not_rekeyed_before_a_crash_still_becomes_the_thread(tmp_path: Path) -> None:
    store, conv_id, reply_id = _setup(tmp_path)
    store.record_reply_part(reply_id, "root1")
    chat = _chat_with_first_post()
    asyncio.run(OutboundRelay(store, chat).drain())
    _check(store, conv_id, chat)
    store.close()
