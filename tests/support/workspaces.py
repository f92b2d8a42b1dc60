"""Two Mattermost workspaces (two emulators) and one Deskie account (one emulator), and the real bot
serving both through `workspaces:`.

Each workspace is a `World` of its own (its emulator, team, bot, Jane, Bob, ~support) sharing the one
Deskie emulator, group, staff and webhook port, so the single-workspace helpers (`bot_posts`,
`customer_texts`) work on either. Both workspaces have a @jane and a @bob: same usernames, different
people, as two customers' servers would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from deskie_mm_bot.sandbox.deskie import DeskieEmulator
from deskie_mm_bot.sandbox.mattermost import MattermostEmulator
from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, World, seed_world
from scripts.benchkit import seed_workspace, workspaces_config
from tests.support.fakes import FakeClock
from tests.support.inproc import InProcessBot


@dataclass
class TwoWorkspaces:
    acme: World
    globex: World

    @property
    def dk(self) -> DeskieEmulator:
        return self.acme.dk

    def of(self, name: str) -> World:
        return {"acme": self.acme, "globex": self.globex}[name]

    def config(self, state_path: str, *, acme: dict[str, Any] | None = None, globex: dict[str, Any] | None = None,
               **chats: Any) -> dict[str, Any]:
        """The bot's config with `workspaces:` (acme first); `acme` / `globex`: extra keys of that entry."""
        return workspaces_config({"acme": self.acme, "globex": self.globex}, state_path,
                                 extra={"acme": acme or {}, "globex": globex or {}}, **chats)

    def write_config(self, folder: Path, **kw: Any) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "bot_config.yaml"
        path.write_text(yaml.safe_dump(self.config(str(folder / "state.sqlite3"), **kw), sort_keys=False))
        return path

    # ---- what the tests look at -------------------------------------------------------------------
    def cases(self) -> list[dict[str, Any]]:
        return self.dk.cases(CHANNEL_CODE)

    def case_of(self, custom_id: str) -> dict[str, Any] | None:
        """The newest case of the Deskie user with this user_custom_id."""
        found = [c for c in self.cases() if self.dk.user(c["user_id"]).get("user_custom_id") == custom_id]
        return found[-1] if found else None

    def health(self) -> tuple[int, dict[str, Any]]:
        r = requests.get(f"http://127.0.0.1:{self.acme.webhook_port}/healthz", timeout=5)
        return r.status_code, r.json()

    def metrics(self) -> dict[str, str]:
        text = requests.get(f"http://127.0.0.1:{self.acme.webhook_port}/metrics", timeout=5).text
        return dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))


@pytest.fixture
def two_workspaces() -> Iterator[TwoWorkspaces]:
    acme_mm = MattermostEmulator(auth_timeout=0.5).start()
    globex_mm = MattermostEmulator(auth_timeout=0.5).start()
    dk = DeskieEmulator(rate_limit_per_minute=1500).start()
    try:
        acme = seed_world(acme_mm, dk)
        yield TwoWorkspaces(acme, seed_workspace(globex_mm, acme, "globex"))
    finally:
        acme_mm.stop()
        globex_mm.stop()
        dk.stop()


@pytest.fixture
def workspaces_bot(two_workspaces: TwoWorkspaces, tmp_path: Path,
                   clock: FakeClock) -> Iterator[Callable[..., InProcessBot]]:
    """make(acme={...}, globex={...}, **chats): the real bot in this process, serving both workspaces;
    `.start()` waits for both websockets (`.start(connected=["acme"])` for only that one)."""
    bots: list[InProcessBot] = []

    def make(**kw: Any) -> InProcessBot:
        kw.setdefault("poll_interval", "2s")
        kw.setdefault("agent_name", False)  # answers are checked word for word
        bot = InProcessBot(two_workspaces.write_config(tmp_path / f"bot{len(bots)}", **kw), clock)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.stop()
