"""One loop per workspace around a relay's drain: a Mattermost that is slow or down holds back only its
own chats. Woken together (a new message, a retry due), each loop sleeps until its own next time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence


class PerWorkspace:
    def __init__(self, workspaces: Sequence[str]) -> None:
        self.workspaces = tuple(workspaces) or ("",)
        self._wakes: dict[str, asyncio.Event] = {}

    def wake(self) -> None:
        for event in self._wakes.values():
            event.set()

    async def run(self, stopping: asyncio.Event, drain: Callable[[str], Awaitable[float]]) -> None:
        """`drain(workspace)` does that workspace's due work and says how long to sleep, unless woken."""
        self._wakes = {ws: asyncio.Event() for ws in self.workspaces}
        await asyncio.gather(*(self._loop(ws, stopping, drain) for ws in self.workspaces))

    async def _loop(self, workspace: str, stopping: asyncio.Event, drain: Callable[[str], Awaitable[float]]) -> None:
        wake = self._wakes[workspace]
        while not stopping.is_set():
            wake.clear()
            pause = await drain(workspace)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=pause)
