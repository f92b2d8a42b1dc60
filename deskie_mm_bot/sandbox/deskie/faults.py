"""Injected faults: one-shot queues (fail/hang/throttle the next N requests) and timed outages."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

OUTAGE_KINDS = ("5xx", "hang", "429", "403rate")


@dataclass
class Fault:
    kind: str  # "fail" | "hang" | "throttle" | "429" | "403rate" | "slow" (applied, answered late)
    status: int = 500
    seconds: float = 0.0
    retry_after: int = 5


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._outage_until = 0.0
        self._outage_kind = ""

    def push(self, fault: Fault, n: int) -> None:
        with self._lock:
            self._queue.extend(
                Fault(fault.kind, fault.status, fault.seconds, fault.retry_after) for _ in range(n)
            )

    def outage(self, seconds: float, kind: str) -> None:
        if kind not in OUTAGE_KINDS:
            raise ValueError(f"outage kind must be one of {OUTAGE_KINDS}")
        with self._lock:
            self._outage_until = time.monotonic() + seconds
            self._outage_kind = kind

    def outage_left(self) -> float:
        with self._lock:
            return max(0.0, self._outage_until - time.monotonic())

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._outage_until = 0.0
            self._outage_kind = ""

    def next_fault(self, write: bool = True) -> Fault | None:
        """The fault for the request being handled now, if any (consumes a one-shot fault).
        A "slow" fault waits for the next write; reads pass it by."""
        with self._lock:
            now = time.monotonic()
            if now < self._outage_until:
                remaining = self._outage_until - now
                kind = self._outage_kind
                if kind == "5xx":
                    return Fault("fail", status=503)
                if kind == "hang":
                    return Fault("hang", seconds=remaining)
                return Fault(kind, retry_after=max(1, int(remaining + 0.999)))
            if self._queue and (write or self._queue[0].kind != "slow"):
                return self._queue.popleft()
            return None
