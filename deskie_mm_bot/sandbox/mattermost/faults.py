"""REST fault switches: the next N requests fail (5xx), hang, or are rate limited; or an outage."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

KINDS = ("5xx", "hang", "429")


@dataclass(frozen=True)
class RestFault:
    kind: str  # 5xx | hang | 429 | applied (carried out, then answered `status`) | late (carried out, answered after `seconds`)
    status: int = 503
    seconds: float = 0.0
    retry_after: int = 1
    match: str = ""  # only requests whose "METHOD /path" starts with this; "" for any


class RestFaults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[RestFault] = deque()
        self._outage_until = 0.0
        self._outage_kind = ""

    def push(self, fault: RestFault, n: int) -> None:
        with self._lock:
            self._queue.extend([fault] * n)

    def outage(self, seconds: float, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        with self._lock:
            self._outage_until = time.monotonic() + seconds
            self._outage_kind = kind

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._outage_until = 0.0

    def take(self, method: str = "", path: str = "") -> RestFault | None:
        with self._lock:
            left = self._outage_until - time.monotonic()
            if left > 0:
                if self._outage_kind == "hang":
                    return RestFault("hang", seconds=left)
                if self._outage_kind == "429":
                    return RestFault("429", retry_after=max(1, int(left + 0.999)))
                return RestFault("5xx", status=503)
            request = f"{method} {path}"
            for i, fault in enumerate(self._queue):
                if not fault.match or request.startswith(fault.match):
                    del self._queue[i]
                    return fault
            return None
