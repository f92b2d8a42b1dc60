"""End-to-end harness: both emulators on loopback, a seeded world, and the real bot as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from deskie_mm_bot.sandbox.deskie import DeskieEmulator
from deskie_mm_bot.sandbox.mattermost import MattermostEmulator
from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, World, seed_world
from scripts import benchkit

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]  # tests/support/harness.py -> the checkout
NETGUARD = Path(__file__).resolve().parent / "netguard"  # its sitecustomize bans non-loopback traffic


def wait_for(predicate: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m deskie_mm_bot ARGS` as an admin runs it, held to loopback like the bot."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(NETGUARD), str(REPO)]))
    return subprocess.run([sys.executable, "-m", "deskie_mm_bot", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=str(cwd or REPO))


class BotProcess(benchkit.BotProcess):
    """`python -m deskie_mm_bot run` in a subprocess (the benchmark's), held to loopback like the tests and
    run from the checkout; with what tests read of it besides."""

    cwd = str(REPO)

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["PYTHONPATH"] = os.pathsep.join([str(NETGUARD), env["PYTHONPATH"]])  # its sitecustomize bans the rest
        return env

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.world.webhook_port}/healthz"

    def health(self) -> dict[str, Any]:
        """/healthz's report (its body is JSON whether or not the bot is healthy)."""
        body: dict[str, Any] = requests.get(self.health_url, timeout=5).json()
        return body

    def metrics(self) -> dict[str, float]:
        """/metrics as sample name (with its labels) -> value: the counters a test reads instead of the log."""
        text = requests.get(self.health_url.replace("/healthz", "/metrics"), timeout=5).text
        samples = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
        return {name: float(value) for name, value in samples}

    def wait_healthy(self, timeout: float = 20.0) -> None:
        super().wait_healthy(timeout)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def world() -> Iterator[World]:
    mm = MattermostEmulator().start()
    dk = DeskieEmulator(rate_limit_per_minute=1500).start()
    try:
        yield seed_world(mm, dk)
    finally:
        mm.stop()
        dk.stop()


@pytest.fixture
def make_bot(world: World, tmp_path: Path) -> Iterator[Callable[..., BotProcess]]:
    bots: list[BotProcess] = []

    def make(**chats: Any) -> BotProcess:
        chats.setdefault("poll_interval", "1s")
        # Answers are checked word for word as the agent wrote them; the agent's name has its own tests.
        chats.setdefault("agent_name", False)
        path = world.write_config(tmp_path / f"bot{len(bots)}", **chats)
        bot = BotProcess(path, world)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        if bot.proc is not None and bot.proc.poll() is None:
            bot.kill()


def cases_of(world: World) -> list[dict[str, Any]]:
    return world.dk.cases(CHANNEL_CODE)


def first_case(world: World, timeout: float = 15.0) -> dict[str, Any]:
    """The first case of the custom channel, once the bot has opened it."""
    return wait_for(lambda: next(iter(cases_of(world)), None), timeout, "a case")


def customer_texts(world: World, case_id: int) -> list[str]:
    return [m["content"] for m in world.dk.messages(case_id) if not m["staff_id"] and not m["note"]]


def bot_posts(world: World, channel_id: str) -> list[dict[str, Any]]:
    return [p for p in world.mm.posts_in(channel_id) if p["user_id"] == world.bot["id"]]
