"""Account-wide fixed-window request budget (Deskie §4): GET costs 1, writes cost 2."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .timeutil import seconds_until

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def request_cost(method: str) -> int:
    return 2 if method.upper() in WRITE_METHODS else 1


@dataclass
class Decision:
    allowed: bool
    limit: int
    left: int
    retry_after: int | None  # set when exhausted or refused


class RateLimiter:
    def __init__(self, per_window: int, window_seconds: float = 60.0) -> None:
        self._lock = threading.Lock()
        self.per_window = per_window
        self.window_seconds = window_seconds
        self._window_start = time.monotonic()
        self._used = 0

    def _roll(self, now: float) -> None:
        elapsed = now - self._window_start
        if elapsed >= self.window_seconds:
            windows = int(elapsed // self.window_seconds)
            self._window_start += windows * self.window_seconds
            self._used = 0

    def _retry_after(self, now: float) -> int:
        return seconds_until(self._window_start + self.window_seconds, now)

    def configure(self, per_window: int, window_seconds: float | None = None) -> None:
        with self._lock:
            self.per_window = per_window
            if window_seconds is not None:
                self.window_seconds = window_seconds
            self._window_start = time.monotonic()
            self._used = 0

    def try_consume(self, cost: int) -> Decision:
        with self._lock:
            now = time.monotonic()
            self._roll(now)
            left = self.per_window - self._used
            if cost > left:
                return Decision(False, self.per_window, max(0, left), self._retry_after(now))
            self._used += cost
            left -= cost
            return Decision(True, self.per_window, left, self._retry_after(now) if left <= 0 else None)

    def peek(self) -> Decision:
        with self._lock:
            now = time.monotonic()
            self._roll(now)
            left = max(0, self.per_window - self._used)
            return Decision(True, self.per_window, left, self._retry_after(now) if left <= 0 else None)
