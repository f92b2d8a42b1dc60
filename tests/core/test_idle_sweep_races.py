"""The idle sweep does not end a chat that came alive while the sweep was talking to Deskie."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from deskie_mm_bot.model import CaseStatus
from deskie_mm_bot.relay.lifecycle import IdleSweeper
from deskie_mm_bot.store import Store
from tests.support.fakes import FakeClock, FakeHelpdesk

pytestmark = pytest.mark.timeout(10)


def _conv(store: Store, key: str, case_id: int) -> int:
    return store.create_conversation(
        conv_key=key, channel_id=key[3:], reply_root_id="", user_custom_id=f"u:{key}", user_full_name=key,
        case_id=case_id, case_number=str(case_id), deskie_user_id=case_id, last_message_id=0, case_updated_at=None,
    ).id


def _post(store: Store, key: str, post_id: str) -> None:
    store.enqueue_post(post_id=post_id, conv_key=key, channel_id=key[3:], reply_root_id="", user_custom_id=f"u:{key}",
                       user_full_name=key, author=key, show_author=False, text="still here", file_ids=[],
                       posted_at=0.0)


def _helpdesk(during_set_status: Callable[[int], None]) -> FakeHelpdesk:
    helpdesk = FakeHelpdesk()
    helpdesk.statuses = {11: CaseStatus.WAITING, 12: CaseStatus.WAITING}
    helpdesk.during_set_status = during_set_status
    return helpdesk


def test_a_message_relayed_while_the_case_status_is_being_set_keeps_the_chat_active(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    store = Store(tmp_path / "s.sqlite3", clock=clock)
    conv_id = _conv(store, "ch:a", 11)
    clock.now += 700
    # The customer's message reaches Deskie (inbound relay) while the sweep's PUT is on its way.
    helpdesk = _helpdesk(lambda case_id: store.touch_conversation(conv_id, "customer", 99))
    asyncio.run(IdleSweeper(store, helpdesk, 600, clock=clock).sweep())
    conv = store.conversation(conv_id)
    assert conv is not None and conv.state == "active"
    store.close()


def test_a_post_recorded_during_the_sweep_keeps_a_later_chat_of_the_same_sweep_alive(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    store = Store(tmp_path / "s.sqlite3", clock=clock)
    _conv(store, "ch:a", 11)
    b = _conv(store, "ch:b", 12)
    clock.now += 700
    # While the sweep waits on Deskie for chat a, the customer of chat b writes again.
    helpdesk = _helpdesk(lambda case_id: _post(store, "ch:b", "pb") if case_id == 11 else None)
    asyncio.run(IdleSweeper(store, helpdesk, 600, clock=clock).sweep())
    assert helpdesk.status_writes == [(11, CaseStatus.OPEN)]
    conv = store.conversation(b)
    assert conv is not None and conv.state == "active"
    store.close()
