"""The Deskie helpdesk answers the core's "may a write go now" in writes, never in the budget's units."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import cast

from deskie_mm_bot.deskie.client import DeskieClient
from deskie_mm_bot.deskie.helpdesk import DeskieHelpdesk
from deskie_mm_bot.deskie.ratebudget import RateBudget


def test_the_deskie_budget_answers_in_writes_not_units() -> None:
    budget = RateBudget(1000)

    class Client:
        def __init__(self) -> None:
            self.budget = budget

    helpdesk = DeskieHelpdesk(cast(DeskieClient, Client()), "cch1", ThreadPoolExecutor(1))
    fresh = helpdesk.write_budget()
    assert fresh.ok_now and fresh.wait_s == 0.0
    budget.acquire(int(budget.available()) - 1)  # one unit left: not enough for a write, which costs two
    state = helpdesk.write_budget()
    assert not state.ok_now and state.scarce
