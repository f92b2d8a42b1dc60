"""An agent's answer is posted in its chat's own workspace, and a workspace whose Mattermost fails or
hangs does not hold back another's answers (the outbound relay over two FakeChats and a real store)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from deskie_mm_bot.model import ConvKey
from deskie_mm_bot.relay.outbound import OutboundRelay
from deskie_mm_bot.relay.relay import queued
from deskie_mm_bot.store import Store
from tests.support.fakes import FakeChat, FakeClock

pytestmark = pytest.mark.timeout(10)


def _answer(store: Store, workspace: str, channel_id: str, case_id: int, text: str) -> int:
    """A chat of `workspace` (the store derives it from the customer) with one answer waiting."""
    conv = store.create_conversation(
        conv_key=ConvKey.channel(channel_id, workspace), channel_id=channel_id, reply_root_id="",
        user_custom_id=f"{workspace}:u:jane", user_full_name="Jane", case_id=case_id, case_number=str(case_id),
        deskie_user_id=case_id, last_message_id=0, case_updated_at=None,
    )
    assert conv.workspace == workspace
    assert store.add_reply(message_id=500 + case_id, case_id=case_id, conversation_id=conv.id, body=text,
                           attachments=[], source="webhook")
    return conv.id


def test_each_answer_is_posted_in_its_own_workspace_only(store: Store, clock: FakeClock) -> None:
    acme, globex = FakeChat("acme-bot", clock), FakeChat("globex-bot", clock)
    _answer(store, "acme", "dm-a", 1, "for acme")
    _answer(store, "globex", "dm-g", 2, "for globex")
    relay = OutboundRelay(store, {"acme": acme, "globex": globex}, clock=clock)
    asyncio.run(relay.drain())
    assert [(p["channel_id"], p["message"]) for p in acme.made()] == [("dm-a", "for acme")]
    assert [(p["channel_id"], p["message"]) for p in globex.made()] == [("dm-g", "for globex")]
    assert relay.posted == 2 and store.count_replies("posted") == 2


def test_an_answer_of_a_workspace_taken_out_of_the_config_waits_and_is_posted_nowhere_else(
    store: Store, clock: FakeClock,
) -> None:
    acme = FakeChat("acme-bot", clock)
    _answer(store, "initech", "dm-i", 3, "for initech")
    relay = OutboundRelay(store, {"acme": acme}, clock=clock)
    asyncio.run(relay.drain())
    assert acme.made() == [] and acme.calls == 0
    assert store.count_replies("pending") == 1 and store.count_replies("dropped") == 0


def test_a_workspace_whose_chat_fails_does_not_hold_back_another_workspaces_answers(
    store: Store, clock: FakeClock,
) -> None:
    acme, globex = FakeChat("acme-bot", clock), FakeChat("globex-bot", clock)
    _answer(store, "acme", "dm-a", 1, "for acme")
    _answer(store, "globex", "dm-g", 2, "for globex")
    acme.down = True
    relay = OutboundRelay(store, {"acme": acme, "globex": globex}, clock=clock)
    asyncio.run(relay.drain())
    assert globex.texts("dm-g") == ["for globex"]
    assert acme.made() == [] and relay.failures == 1
    assert queued(store) == (0, 1) and store.count_replies("dropped") == 0  # kept for a retry
    acme.down = False
    clock.advance(120)  # past its backoff
    asyncio.run(relay.drain())
    assert acme.texts("dm-a") == ["for acme"] and globex.texts("dm-g") == ["for globex"]


def test_a_workspace_whose_chat_hangs_does_not_hold_back_another_workspaces_answers(
    store: Store, clock: FakeClock,
) -> None:
    """Each workspace has its own loop: a Mattermost that does not answer at all stalls only its chats."""
    acme, globex = FakeChat("acme-bot", clock), FakeChat("globex-bot", clock)
    _answer(store, "acme", "dm-a", 1, "for acme")
    _answer(store, "globex", "dm-g", 2, "for globex")
    relay = OutboundRelay(store, {"acme": acme, "globex": globex}, clock=clock)

    async def until(done: Callable[[], object]) -> None:
        for _ in range(500):
            if done():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("not done in time")

    async def go() -> None:
        acme.gate = asyncio.Event()  # acme's Mattermost takes the request and never answers
        stopping = asyncio.Event()
        loops = asyncio.ensure_future(relay.run(stopping))
        await until(lambda: globex.texts("dm-g"))
        assert globex.texts("dm-g") == ["for globex"] and acme.made() == []
        acme.gate.set()  # acme answers again
        await until(lambda: acme.texts("dm-a"))
        stopping.set()
        await asyncio.wait_for(loops, 5)

    asyncio.run(go())
    assert acme.texts("dm-a") == ["for acme"]
