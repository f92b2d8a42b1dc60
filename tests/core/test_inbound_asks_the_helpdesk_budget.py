"""The inbound relay asks the helpdesk "may a write go now / is the budget scarce", never for units."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from deskie_mm_bot.model import Budget
from deskie_mm_bot.relay.inbound import InboundRelay
from deskie_mm_bot.store import Store
from tests.support.fakes import FakeClock, FakeHelpdesk

pytestmark = pytest.mark.timeout(10)


def _post(store: Store, post_id: str, at: float) -> None:
    store.enqueue_post(post_id=post_id, conv_key="ch:dm", channel_id="dm", reply_root_id="", user_custom_id="u:jane",
                       user_full_name="Jane", author="Jane", show_author=False, text="hi", file_ids=[], posted_at=at)


def test_no_write_goes_while_the_budget_says_wait_and_the_room_is_held_for_customers(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    store = Store(tmp_path / "s.sqlite3", clock=clock)
    helpdesk = FakeHelpdesk()
    helpdesk.budget = Budget(ok_now=False, scarce=False, wait_s=0.4)
    _post(store, "p1", clock.now)
    relay = InboundRelay(store, helpdesk, clock=clock)
    due = asyncio.run(relay.process("ch:dm"))
    assert due == pytest.approx(clock.now + 0.4)
    assert helpdesk.holds == [pytest.approx(1.4)]
    assert store.count_outbox("pending") == 1 and helpdesk.written == []
    store.close()


def test_a_burst_gathers_while_the_budget_is_scarce(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    store = Store(tmp_path / "s.sqlite3", clock=clock)
    helpdesk = FakeHelpdesk()
    helpdesk.budget = Budget(ok_now=True, scarce=True, wait_s=0.0)
    _post(store, "p1", clock.now)
    _post(store, "p2", clock.now)
    relay = InboundRelay(store, helpdesk, clock=clock)
    due = asyncio.run(relay.process("ch:dm"))
    assert due is not None and due > clock.now
    assert len(helpdesk.holds) == 1 and helpdesk.holds[0] > 1.0
    assert store.count_outbox("pending") == 2 and helpdesk.written == []
    store.close()
