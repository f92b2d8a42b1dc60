"""One rate budget for every Deskie call the bot makes.

Deskie limits requests per minute for the whole account and charges writes double. The bot waits for
room instead of being refused, and when several callers wait, the most important goes first:
customer messages, then reply reconciliation, then directory work.

What the server says wins: after each response `api_calls_left` (and `retry_after` when given) is the
truth about the current window, since other API users of the account spend it too. Before the first
answer, or when the headers are missing, the bot keeps its own sliding one-minute account.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from .. import errors
from ..model import Priority

__all__ = ["BudgetClosed", "Priority", "RateBudget"]  # Priority lives in model.py; kept importable here

WINDOW = 60.0
DEFAULT_LIMIT = 20  # Deskie's smallest plan; used until the account tells its own
SMALL_PLAN = 100


class BudgetClosed(errors.Stopping):
    """The bot is stopping: nobody waits for budget any more."""


def _header(headers: Mapping[str, str], *names: str) -> str | None:
    lower = {k.lower(): v for k, v in headers.items()}
    for n in names:
        v = lower.get(n.lower())
        if v not in (None, ""):
            return v
    return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


class RateBudget:
    def __init__(self, cap: int | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.cap = cap
        self._clock = clock
        self._cond = threading.Condition()
        self._server_limit: int | None = None
        self._server_left: float | None = None
        self._server_reset_at: float = 0.0
        self._in_flight = 0
        self._paused_until = 0.0
        self._spent: deque[tuple[float, int]] = deque()
        self._waiting: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self._closed = False
        # priority -> until when work of that priority is waiting without being queued here (the
        # inbound relay gathers a burst while it waits): lower priorities leave the units to it.
        self._claims: dict[int, float] = {}

    # ---- what callers see ---------------------------------------------------------------------
    @property
    def limit(self) -> int:
        learned = self._server_limit or DEFAULT_LIMIT
        limit = min(learned, self.cap) if self.cap else learned
        return max(limit, 2)  # a write costs 2: a smaller limit would block every write forever

    def available(self) -> float:
        """Units that could be spent right now without waiting."""
        with self._cond:
            return self._available(self._clock())

    def scarce(self, writes: int = 5) -> bool:
        """Callers should gather work into fewer requests: fewer than `writes` writes fit now, or the
        plan itself is small (under 50 writes a minute), where one burst could spend the minute."""
        return self.limit < SMALL_PLAN or self.available() < 2 * writes

    def paused_for(self) -> float:
        with self._cond:
            return max(0.0, self._paused_until - self._clock())

    def claim(self, priority: Priority, seconds: float) -> None:
        """Work of `priority` will ask for units within `seconds` (renewed while it waits): until then,
        calls of lower priority wait; they would otherwise take a fresh window's units first."""
        with self._cond:
            until = self._clock() + seconds
            self._claims[int(priority)] = max(self._claims.get(int(priority), 0.0), until)

    def _claimed_above(self, priority: int, now: float) -> bool:
        return any(p < priority and until > now for p, until in self._claims.items())

    def acquire(self, cost: int, priority: Priority = Priority.CUSTOMER, timeout: float | None = None) -> None:
        """Block until `cost` units may be spent; higher priorities go first."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            ticket = (int(priority), next(self._seq))
            heapq.heappush(self._waiting, ticket)
            try:
                while True:
                    if self._closed:
                        raise BudgetClosed("rate budget closed")
                    now = self._clock()
                    claimed = self._claimed_above(int(priority), now)
                    if self._waiting[0] == ticket and not claimed and self._available(now) >= cost:
                        self._spend(now, cost)
                        return
                    wait = self._wait_hint(now, cost)
                    if claimed:
                        wait = min(wait, 0.2)
                    if deadline is not None:
                        if now >= deadline:
                            raise TimeoutError("no rate budget within the timeout")
                        wait = min(wait, deadline - now)
                    self._cond.wait(timeout=max(0.01, wait))
            finally:
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._cond.notify_all()

    def settle(self, cost: int, headers: Mapping[str, str] | None, *, refused: bool = False) -> float | None:
        """Account a finished request. Returns the pause (seconds) when the server refused it."""
        with self._cond:
            now = self._clock()
            self._in_flight = max(0, self._in_flight - cost)
            if refused:
                # A refused call was not counted by the server: give the units back locally.
                self._unspend(cost)
            headers = headers or {}
            limit = _number(_header(headers, "rate_limit_per_minute", "x-ratelimit-limit"))
            if limit and limit > 0:
                self._server_limit = int(limit)
            left = _number(_header(headers, "api_calls_left", "x-ratelimit-remaining"))
            retry = _number(_header(headers, "retry_after", "retry-after"))
            if left is not None:
                if self._server_left is None or now >= self._server_reset_at or left > self._server_left:
                    self._server_reset_at = now + WINDOW
                self._server_left = left
            elif self._server_left is not None and not refused:
                self._server_left -= cost
            if retry is not None and retry >= 0:
                self._server_reset_at = now + retry
            pause: float | None = None
            if refused:
                pause = retry if retry is not None else 5.0
                self._paused_until = max(self._paused_until, now + pause)
                self._server_left = 0.0
                self._server_reset_at = max(self._server_reset_at, now + pause)
            self._cond.notify_all()
            return pause

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ---- internals (lock held) ------------------------------------------------------------------
    def _trim(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - WINDOW:
            self._spent.popleft()

    def _available(self, now: float) -> float:
        if now < self._paused_until:
            return 0.0
        self._trim(now)
        if self._server_left is None:
            return self.limit - sum(c for _, c in self._spent)
        if now >= self._server_reset_at:
            # The server's window has turned since it last spoke: a fresh window is ours.
            return self.limit - self._in_flight
        return min(self._server_left, self.limit) - self._in_flight

    def _spend(self, now: float, cost: int) -> None:
        if self._server_left is not None and now >= self._server_reset_at:
            self._server_left = float(self.limit)
            self._server_reset_at = now + WINDOW
        self._in_flight += cost
        self._spent.append((now, cost))

    def _unspend(self, cost: int) -> None:
        for i in range(len(self._spent) - 1, -1, -1):
            if self._spent[i][1] == cost:
                del self._spent[i]
                break

    def _wait_hint(self, now: float, cost: int) -> float:
        if now < self._paused_until:
            return self._paused_until - now
        if self._server_left is not None:
            return max(0.05, self._server_reset_at - now)
        if self._spent:
            return max(0.05, self._spent[0][0] + WINDOW - now)
        return 0.05
