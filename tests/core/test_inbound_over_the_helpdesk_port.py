"""The inbound relay with a real store over the fake helpdesk port: no sockets, no Deskie dicts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from deskie_mm_bot.model import BatchOp
from deskie_mm_bot.relay.inbound import InboundRelay
from deskie_mm_bot.store import Store
from tests.support.fakes import FakeHelpdesk

pytestmark = pytest.mark.timeout(10)


def _post(store: Store, post_id: str, text: str) -> None:
    store.enqueue_post(post_id=post_id, conv_key="ch:dm", channel_id="dm", reply_root_id="", user_custom_id="u:jane",
                       user_full_name="Jane", author="Jane", show_author=False, text=text, file_ids=[], posted_at=0.0)


def test_a_message_to_a_case_the_helpdesk_no_longer_has_opens_a_new_case(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    helpdesk = FakeHelpdesk()
    relay = InboundRelay(store, helpdesk)
    _post(store, "p1", "hello")
    asyncio.run(relay.drain())
    first = store.current_conversation("ch:dm")
    assert first is not None and first.case_id == 100
    helpdesk.gone.add(100)
    _post(store, "p2", "still there?")
    asyncio.run(relay.drain())
    second = store.current_conversation("ch:dm")
    assert second is not None and second.case_id == 101
    assert [content for _, content in helpdesk.written] == ["hello", "still there?"]
    assert store.count_outbox("sent") == 2
    store.close()


def test_an_interrupted_create_found_in_the_helpdesk_is_not_sent_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    helpdesk = FakeHelpdesk()
    relay = InboundRelay(store, helpdesk)
    _post(store, "p1", "hello")
    items = store.pending_items("ch:dm")
    batch = store.begin_batch("ch:dm", None, BatchOp.CREATE_CASE, items[0].text, [i.id for i in items], 0)
    # The create reached the helpdesk, and the bot died before it heard the answer.
    asyncio.run(helpdesk.open_case(user_custom_id="u:jane", user_full_name="Jane",
                                   subject="hello", content=batch.content, files=None, content_html=""))
    asyncio.run(relay.drain())
    conv = store.current_conversation("ch:dm")
    assert conv is not None and conv.case_id == 100
    assert len(helpdesk.written) == 1 and store.count_outbox("sent") == 1
    store.close()
