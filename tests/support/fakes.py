"""Fakes the kinds of tests share, so each test module does not write its own."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deskie_mm_bot.deskie.ratebudget import RateBudget


class FakeClock:
    """Time that moves only when the test moves it (set `now`, or `advance`).

    Code waiting on a RateBudget sleeps on the budget's condition with a real timeout; given the budget,
    `advance` wakes those waiters so they re-read the clock at once instead of after their timeout.
    (The in-process bot needs time that also passes by itself: that clock is tests.support.inproc's.)
    """

    def __init__(self, now: float = 1000.0, budget: RateBudget | None = None) -> None:
        self.now = now
        self.budget = budget

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.budget is not None:
            with self.budget._cond:
                self.budget._cond.notify_all()
