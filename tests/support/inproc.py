"""The real bot in this process (its own thread and event loop) with a clock the test controls.

Everything still goes over real sockets to the emulators; only time is the test's. Use this for
behaviour that depends on time (idle chats) or to drive one scheduler job at a precise moment.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from deskie_mm_bot.app import BotApp
from deskie_mm_bot.config import load_config
from deskie_mm_bot.sandbox_runner import World
from tests.support.fakes import FakeClock
from tests.support.harness import wait_for

T = TypeVar("T")


class InProcessBot:
    def __init__(self, config_path: Path, clock: FakeClock) -> None:
        self.settings = load_config(config_path, env={})
        self.clock = clock
        self.app: BotApp | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.exit_code: int | None = None
        self._thread: threading.Thread | None = None

    def start(self, connected: Iterable[str] | None = None) -> InProcessBot:
        """Start the bot and wait until the websockets are up: every workspace's, or only those named
        in `connected` (with several workspaces, one may be meant to stay down)."""
        ready = threading.Event()

        def main() -> None:
            async def go() -> int:
                self.app = BotApp(self.settings, clock=self.clock)
                self.loop = asyncio.get_running_loop()
                ready.set()
                return await self.app.run()

            self.exit_code = asyncio.run(go())

        self._thread = threading.Thread(target=main, name="bot", daemon=True)
        self._thread.start()
        ready.wait(10)
        wait_for(lambda: self.app is not None and (self.app.started.is_set() or self.app.stopping.is_set()),
                 20, "the bot to start")
        assert self.app is not None and not self.app.stopping.is_set(), f"bot failed: {self.app and self.app.exit_message}"
        app = self.app
        wanted = [w.name for w in app.workspaces] if connected is None else list(connected)

        def up() -> bool:
            # A workspace of several gets its websocket once it has logged in (workspace.serve).
            return all(w.ws is not None and w.ws.connected.is_set() for w in app.workspaces if w.name in wanted)

        wait_for(up, 20, f"the websocket(s) of {wanted or 'the workspace'}")
        return self

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run a coroutine of the bot's on the bot's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> int | None:
        if self.app is not None and self.loop is not None and self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.app.request_stop)
            self._thread.join(30)
        return self.exit_code


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock.passing()


@pytest.fixture
def inproc_bot(world: World, tmp_path: Path, clock: FakeClock) -> Iterator[Callable[..., InProcessBot]]:
    bots: list[InProcessBot] = []

    def make(**chats: Any) -> InProcessBot:
        # The scheduler's own timers are long here: tests drive the jobs themselves.
        chats.setdefault("poll_interval", "1h")
        # Answers are checked word for word as the agent wrote them; the agent's name has its own tests.
        chats.setdefault("agent_name", False)
        path = world.write_config(tmp_path / f"inproc{len(bots)}", **chats)
        bot = InProcessBot(path, clock)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.stop()
