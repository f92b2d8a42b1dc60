"""A workspace whose Mattermost is slow to give a customer's file holds back only its own chats' writes to
Deskie: each workspace has its own inbound loop over the one shared helpdesk (and its budget)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from deskie_mm_bot.model import ConvKey
from deskie_mm_bot.relay.inbound import InboundRelay
from deskie_mm_bot.store import Store
from tests.support.fakes import FakeHelpdesk

pytestmark = pytest.mark.timeout(10)


def _post(store: Store, workspace: str, post_id: str, files: list[str]) -> None:
    store.enqueue_post(post_id=post_id, conv_key=ConvKey.channel(f"dm-{workspace}", workspace),
                       channel_id=f"dm-{workspace}", reply_root_id="", user_custom_id=f"{workspace}:u:jane",
                       user_full_name=f"Jane \u00b7 {workspace}", author="Jane", show_author=False,
                       text=f"hello from {workspace}", file_ids=files, posted_at=store._clock())


def test_a_workspace_slow_to_give_a_file_does_not_hold_back_another_workspaces_writes(store: Store) -> None:
    helpdesk = FakeHelpdesk()
    released = asyncio.Event()
    asked: list[tuple[str, str]] = []

    async def fetch(workspace: str, file_id: str) -> tuple[dict[str, Any], bytes]:
        asked.append((workspace, file_id))
        if workspace == "acme":
            await released.wait()  # acme's server hangs on its file
        return {"name": f"{file_id}.txt", "mime_type": "text/plain"}, b"x"

    _post(store, "acme", "p-acme", ["f1"])
    _post(store, "globex", "p-globex", [])
    relay = InboundRelay(store, helpdesk, fetch, workspaces=["acme", "globex"])

    async def go() -> None:
        stopping = asyncio.Event()
        task = asyncio.create_task(relay.run(stopping))
        for _ in range(100):
            if helpdesk.customer_of_case:
                break
            await asyncio.sleep(0.02)
        # globex's message is in Deskie while acme's file is still on its way.
        assert list(helpdesk.customer_of_case.values()) == ["globex:u:jane"]
        assert asked == [("acme", "f1")]
        released.set()
        for _ in range(100):
            if len(helpdesk.customer_of_case) == 2:
                break
            await asyncio.sleep(0.02)
        stopping.set()
        relay.wake()
        await asyncio.wait_for(task, 5)

    asyncio.run(go())
    assert sorted(helpdesk.customer_of_case.values()) == ["acme:u:jane", "globex:u:jane"]
