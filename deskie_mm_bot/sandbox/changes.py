"""A change counter that long-poll requests wait on: how the sandbox console hears of new state.

Each emulator bumps it when its state changes (from any thread); ``GET /_emu/changes?since=N`` answers
as soon as the counter differs from N, or after a timeout, so a page sees changes at once without
polling fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

MAX_WAIT = 30.0


class ChangeFeed:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the emulator's loop (waiters live there); call from that loop."""
        self._loop = loop
        self._event = asyncio.Event()

    def bump(self) -> None:
        with self._lock:
            self._version += 1
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        # A fresh event per change: waiters of this change wake, later waiters wait for the next one.
        if self._event is not None:
            self._event.set()
            self._event = asyncio.Event()

    async def wait(self, since: int, timeout: float) -> int:
        """The version once it differs from ``since``, or the same version after ``timeout`` seconds.
        Runs on the bound loop; a bump between the check and the wait is not missed because the wake-up
        is scheduled on this loop, after this coroutine has taken the current event."""
        if self.version != since or self._event is None:
            return self.version
        event = self._event
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), min(max(timeout, 0.0), MAX_WAIT))
        return self.version

