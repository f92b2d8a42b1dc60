"""The shared Deskie rate budget: costs, learning from headers, pauses, priority, shutdown.

Time is a fake clock: nothing here waits for a real minute. A blocked `acquire` sleeps on the budget's
condition; `FakeClock.advance` wakes it after moving time on.
"""

from __future__ import annotations

import threading
import time

import pytest

from deskie_mm_bot.deskie.ratebudget import BudgetClosed, Priority, RateBudget

pytestmark = pytest.mark.timeout(10)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.budget: RateBudget | None = None

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.budget is not None:
            # Waiters sleep on the budget's condition with a real timeout: wake them so they re-read the clock.
            with self.budget._cond:
                self.budget._cond.notify_all()


def make_budget(cap: int | None = None) -> tuple[RateBudget, FakeClock]:
    clock = FakeClock()
    budget = RateBudget(cap, clock=clock)
    clock.budget = budget
    return budget, clock


def wait_until(predicate, timeout: float = 3.0) -> None:
    """Poll briefly for another thread to reach a state (never waits for the budget's own pauses)."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


def waiting_count(budget: RateBudget) -> int:
    with budget._cond:
        return len(budget._waiting)


class Acquirer(threading.Thread):
    def __init__(self, budget: RateBudget, cost: int, priority: Priority, log: list[str], name: str) -> None:
        super().__init__(daemon=True)
        self.budget, self.cost, self.priority, self.log, self.label = budget, cost, priority, log, name
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.budget.acquire(self.cost, self.priority)
            self.log.append(self.label)
        except BaseException as e:  # reported to the test
            self.error = e


def test_writes_cost_two_so_twenty_units_allow_ten_writes_then_block() -> None:
    budget, clock = make_budget()
    assert budget.limit == 20
    for _ in range(10):
        budget.acquire(2, timeout=0)
    assert budget.available() == 0
    with pytest.raises(TimeoutError):
        budget.acquire(2, timeout=0)
    with pytest.raises(TimeoutError):
        budget.acquire(1, timeout=0)


def test_blocked_write_proceeds_when_the_minute_has_passed() -> None:
    budget, clock = make_budget()
    for _ in range(10):
        budget.acquire(2, timeout=0)
    log: list[str] = []
    t = Acquirer(budget, 2, Priority.CUSTOMER, log, "w")
    t.start()
    wait_until(lambda: waiting_count(budget) == 1)
    clock.advance(30)
    time.sleep(0.02)
    assert log == [], "half a minute later the window is still full"
    clock.advance(30)
    t.join(3)
    assert not t.is_alive() and t.error is None
    assert log == ["w"]


def test_reads_cost_one_unit() -> None:
    budget, _ = make_budget()
    for _ in range(20):
        budget.acquire(1, timeout=0)
    with pytest.raises(TimeoutError):
        budget.acquire(1, timeout=0)


def test_limit_learned_from_rate_limit_per_minute_header() -> None:
    budget, _ = make_budget()
    budget.acquire(1)
    budget.settle(1, {"rate_limit_per_minute": "50"})
    assert budget.limit == 50
    # Local accounting now works against 50: 1 already spent.
    assert budget.available() == 49
    for _ in range(24):
        budget.acquire(2, timeout=0)
    assert budget.available() == 1


def test_limit_header_read_case_insensitively() -> None:
    budget, _ = make_budget()
    budget.settle(0, {"Rate_Limit_Per_Minute": "750"})
    assert budget.limit == 750


def test_config_cap_lower_than_learned_limit_wins() -> None:
    budget, _ = make_budget(cap=30)
    budget.settle(0, {"rate_limit_per_minute": "100"})
    assert budget.limit == 30
    budget.settle(0, {"rate_limit_per_minute": "100", "api_calls_left": "90"})
    assert budget.available() == 30


def test_config_cap_higher_than_learned_limit_does_not_raise_it() -> None:
    budget, _ = make_budget(cap=500)
    budget.settle(0, {"rate_limit_per_minute": "50"})
    assert budget.limit == 50


def test_api_calls_left_from_server_overrides_local_accounting() -> None:
    budget, clock = make_budget()
    budget.acquire(1)
    # Other users of the account spent the window: only 1 call is left although we spent 1 of 20.
    budget.settle(1, {"rate_limit_per_minute": "20", "api_calls_left": "1"})
    assert budget.available() == 1
    with pytest.raises(TimeoutError):
        budget.acquire(2, timeout=0)
    budget.acquire(1, timeout=0)
    budget.settle(1, None)
    assert budget.available() == 0
    # The server's window turns after a minute: the full limit is ours again.
    clock.advance(60)
    assert budget.available() == 20


def test_api_calls_left_higher_than_local_view_is_believed() -> None:
    budget, _ = make_budget()
    for _ in range(9):
        budget.acquire(2, timeout=0)
        budget.settle(2, None)
    assert budget.available() == 2
    budget.settle(0, {"api_calls_left": "15"})
    assert budget.available() == 15


def test_write_waits_while_server_says_one_call_left() -> None:
    budget, clock = make_budget()
    budget.acquire(1)
    budget.settle(1, {"api_calls_left": "1"})
    log: list[str] = []
    t = Acquirer(budget, 2, Priority.CUSTOMER, log, "write")
    t.start()
    wait_until(lambda: waiting_count(budget) == 1)
    time.sleep(0.02)
    assert log == []
    clock.advance(60)
    t.join(3)
    assert log == ["write"] and t.error is None


def test_refused_settle_pauses_everyone_for_retry_after_and_returns_units() -> None:
    budget, clock = make_budget()
    budget.acquire(2)
    pause = budget.settle(2, {"retry_after": "7"}, refused=True)
    assert pause == 7
    assert budget.paused_for() == pytest.approx(7)
    assert budget.available() == 0
    with pytest.raises(TimeoutError):
        budget.acquire(1, Priority.DIRECTORY, timeout=0)
    clock.advance(6.5)
    assert budget.available() == 0
    clock.advance(0.5)
    assert budget.paused_for() == 0
    # The refused call was not counted by the server: the whole limit is available again.
    assert budget.available() == 20


def test_refused_settle_without_retry_after_still_pauses() -> None:
    budget, _ = make_budget()
    budget.acquire(1)
    pause = budget.settle(1, {}, refused=True)
    assert pause is not None and pause > 0
    assert budget.paused_for() == pytest.approx(pause)


def test_standard_retry_after_header_accepted() -> None:
    budget, _ = make_budget()
    budget.acquire(1)
    assert budget.settle(1, {"Retry-After": "12"}, refused=True) == 12
    assert budget.paused_for() == pytest.approx(12)


def test_waiter_blocked_by_pause_resumes_after_it() -> None:
    budget, clock = make_budget()
    budget.acquire(1)
    budget.settle(1, {"retry_after": "9"}, refused=True)
    log: list[str] = []
    t = Acquirer(budget, 1, Priority.CUSTOMER, log, "after-pause")
    t.start()
    wait_until(lambda: waiting_count(budget) == 1)
    clock.advance(8)
    time.sleep(0.02)
    assert log == []
    clock.advance(1)
    t.join(3)
    assert log == ["after-pause"]


def test_customer_gets_budget_before_directory_when_both_wait() -> None:
    budget, clock = make_budget()
    # Fill the window so that exactly one write frees up at a time: 1 write at t0, 9 writes at t0+1.
    budget.acquire(2)
    clock.advance(1)
    for _ in range(9):
        budget.acquire(2)
    assert budget.available() == 0
    order: list[str] = []
    directory = Acquirer(budget, 2, Priority.DIRECTORY, order, "directory")
    directory.start()
    wait_until(lambda: waiting_count(budget) == 1)  # the directory caller queued first
    customer = Acquirer(budget, 2, Priority.CUSTOMER, order, "customer")
    customer.start()
    wait_until(lambda: waiting_count(budget) == 2)
    clock.advance(59)  # the first write leaves the window: room for one write
    customer.join(3)
    assert order == ["customer"]
    time.sleep(0.02)
    assert directory.is_alive(), "directory work must not take the unit the customer needed"
    clock.advance(1)
    directory.join(3)
    assert order == ["customer", "directory"]
    assert customer.error is None and directory.error is None


def test_reconcile_goes_before_directory() -> None:
    budget, clock = make_budget()
    budget.acquire(1)
    clock.advance(1)
    budget.acquire(19)
    order: list[str] = []
    directory = Acquirer(budget, 1, Priority.DIRECTORY, order, "directory")
    directory.start()
    wait_until(lambda: waiting_count(budget) == 1)
    reconcile = Acquirer(budget, 1, Priority.RECONCILE, order, "reconcile")
    reconcile.start()
    wait_until(lambda: waiting_count(budget) == 2)
    clock.advance(59)
    reconcile.join(3)
    time.sleep(0.02)
    assert order == ["reconcile"]
    clock.advance(1)
    directory.join(3)
    assert order == ["reconcile", "directory"]


def test_close_wakes_waiters_with_budget_closed() -> None:
    budget, _ = make_budget()
    for _ in range(10):
        budget.acquire(2)
    log: list[str] = []
    waiters = [Acquirer(budget, 2, p, log, p.name) for p in (Priority.CUSTOMER, Priority.DIRECTORY)]
    for w in waiters:
        w.start()
    wait_until(lambda: waiting_count(budget) == 2)
    budget.close()
    for w in waiters:
        w.join(3)
        assert not w.is_alive()
        assert isinstance(w.error, BudgetClosed)
    assert log == []
    with pytest.raises(BudgetClosed):
        budget.acquire(1)


def test_small_plan_is_always_scarce() -> None:
    budget, _ = make_budget()
    assert budget.limit == 20
    assert budget.available() == 20
    assert budget.scarce(), "on a 20 RPM plan one burst could spend the minute: always gather"


def test_scarce_when_fewer_than_five_writes_fit() -> None:
    budget, clock = make_budget()
    budget.settle(0, {"rate_limit_per_minute": "750"})
    assert not budget.scarce()
    for _ in range(370):
        budget.acquire(2, timeout=0)
    assert budget.available() == 10
    assert not budget.scarce()
    budget.acquire(2)
    assert budget.scarce()
    assert not budget.scarce(writes=4)
    clock.advance(60)
    assert not budget.scarce()


def test_scarce_during_a_pause() -> None:
    budget, _ = make_budget()
    budget.settle(0, {"rate_limit_per_minute": "750"})
    assert not budget.scarce()
    budget.settle(0, {"retry_after": "5"}, refused=True)
    assert budget.scarce(writes=1)


def test_cap_below_one_write_still_lets_writes_through() -> None:
    budget, clock = make_budget(cap=1)
    budget.acquire(2, timeout=0)
    with pytest.raises(TimeoutError):
        budget.acquire(2, timeout=0)
    clock.advance(60)
    budget.acquire(2, timeout=0)


def test_customer_claim_keeps_a_fresh_window_from_reconciliation() -> None:
    """The inbound relay gathers a burst instead of queueing: its claim holds lower priorities back."""
    budget, clock = make_budget()
    budget.acquire(20)
    order: list[str] = []
    reconcile = Acquirer(budget, 1, Priority.RECONCILE, order, "reconcile")
    reconcile.start()
    wait_until(lambda: waiting_count(budget) == 1)
    budget.claim(Priority.CUSTOMER, 61)
    clock.advance(60)  # a fresh window: without the claim, the queued poll would take it first
    time.sleep(0.3)
    assert order == []
    budget.acquire(2)  # the customer's write goes through at once
    clock.advance(2)  # the claim ran out: the poll gets its unit
    reconcile.join(3)
    assert order == ["reconcile"]
