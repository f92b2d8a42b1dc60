"""The idle sweep does not end a chat that came alive while the sweep was talking to Deskie."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from deskie_mm_bot.relay.lifecycle import IdleSweeper
from deskie_mm_bot.store import Store
from tests.support.fakes import FakeClock

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


class Deskie:
    def __init__(self, during: Any = None) -> None:
        self.calls: list[tuple[int, str]] = []
        self.during = during

    def get_case(self, case_id: int, priority: Any = None) -> dict[str, Any]:
        return {"case_id": case_id, "status": "waiting"}

    def set_case_status(self, case_id: int, status: str, priority: Any = None) -> dict[str, Any]:
        self.calls.append((case_id, status))
        if self.during is not None:
            self.during(case_id)
        return {"case_id": case_id, "status": status}


def test_a_message_relayed_while_the_case_status_is_being_set_keeps_the_chat_active(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    store = Store(tmp_path / "s.sqlite3", clock=clock)
    conv_id = _conv(store, "ch:a", 11)
    clock.now += 700
    # The customer's message reaches Deskie (inbound relay) while the sweep's PUT is on its way.
    deskie = Deskie(during=lambda case_id: store.touch_conversation(conv_id, "customer", 99))
    with ThreadPoolExecutor(2) as pool:
        sweeper = IdleSweeper(store, deskie, 600, pool, clock=clock)  # type: ignore[arg-type]
        asyncio.run(sweeper.sweep())
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
    deskie = Deskie(during=lambda case_id: _post(store, "ch:b", "pb") if case_id == 11 else None)
    with ThreadPoolExecutor(2) as pool:
        sweeper = IdleSweeper(store, deskie, 600, pool, clock=clock)  # type: ignore[arg-type]
        asyncio.run(sweeper.sweep())
    assert deskie.calls == [(11, "open")]
    conv = store.conversation(b)
    assert conv is not None and conv.state == "active"
    store.close()
