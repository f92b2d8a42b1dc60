"""The command line with `workspaces:`: `find` and `send` pick a workspace, `status` reports each one.

Two Mattermost emulators play two customers' servers (acme: the world's, globex: a second one); both have a
member @bob, so a command that looked in the wrong workspace would find the wrong person.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deskie_mm_bot.model import ConvKey
from deskie_mm_bot.sandbox.mattermost import MattermostEmulator
from deskie_mm_bot.sandbox_runner import DESKIE_KEY, WEBHOOK_SECRET, World
from deskie_mm_bot.store import Store
from tests.support.harness import BotProcess, bot_posts, cases_of, cli, wait_for


@dataclass
class Globex:
    """The second workspace: its own server, bot and members."""

    mm: MattermostEmulator
    bot: dict[str, Any]
    token: str
    bob: dict[str, Any]
    help: dict[str, Any]  # a channel with the bot in it


@pytest.fixture
def globex() -> Iterator[Globex]:
    mm = MattermostEmulator().start()
    try:
        team = mm.add_team("globex", "Globex")
        bot, token = mm.add_bot("globexbot", "Globex Bot")
        bob = mm.add_user("bob", "Bob", "Green")
        for u in (bot, bob):
            mm.add_team_member(team["id"], u["id"])
        help_channel = mm.add_channel(team["id"], "help", "Help", "O")
        for u in (bot, bob):
            mm.add_channel_member(help_channel["id"], u["id"])
        yield Globex(mm, bot, token, bob, help_channel)
    finally:
        mm.stop()


def two_workspaces(world: World, globex: Globex, folder: Path, **chats: Any) -> Path:
    path = world.write_config(folder, **chats)
    data = yaml.safe_load(path.read_text())
    single = data.pop("mattermost")
    data = {"workspaces": [
        {"name": "acme", **single},
        {"name": "globex", "url": globex.mm.url, "bot_token": globex.token},
    ], **data}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def secrets_of(world: World, globex: Globex) -> list[str]:
    return [world.bot_token, globex.token, DESKIE_KEY, WEBHOOK_SECRET]


def test_send_with_a_workspace_starts_the_chat_there_only(world: World, globex: Globex, tmp_path: Path) -> None:
    path = two_workspaces(world, globex, tmp_path)
    r = cli("send", "--workspace", "globex", "--to", "@bob", "Hello Bob of Globex", "-c", str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("with @bob in globex")
    (case,) = cases_of(world)
    user = world.dk.user(case["user_id"])
    assert user["user_custom_id"] == f"globex:u:{globex.bob['id']}"
    assert user["user_full_name"] == "Bob Green (@bob) \u00b7 globex"
    dm = globex.mm.direct_channel(globex.bot["id"], globex.bob["id"])
    assert [p["message"] for p in globex.mm.posts_in(dm["id"]) if p["user_id"] == globex.bot["id"]] == [
        "Hello Bob of Globex"
    ]
    acme_dm = world.mm.direct_channel(world.bot["id"], world.bob["id"])
    assert bot_posts(world, acme_dm["id"]) == []  # acme's @bob heard nothing
    store = Store(str(tmp_path / "state.sqlite3"))
    try:
        chat = store.current_conversation(ConvKey.channel(dm["id"], "globex"))
        assert chat is not None and chat.case_id == case["case_id"] and chat.workspace == "globex"
        assert store.current_conversation(ConvKey.channel(dm["id"])) is None
    finally:
        store.close()


def test_send_to_a_channel_in_thread_mode_keys_the_thread_by_workspace(
    world: World, globex: Globex, tmp_path: Path
) -> None:
    path = two_workspaces(world, globex, tmp_path, reply_mode="thread")
    r = cli("send", "--workspace", "globex", "--to", "~help", "Maintenance tonight", "-c", str(path))
    assert r.returncode == 0, r.stderr
    (case,) = cases_of(world)
    user = world.dk.user(case["user_id"])
    assert user["user_custom_id"] == f"globex:c:{globex.help['id']}"
    assert user["user_full_name"] == "Help (~help) \u00b7 globex"
    (post,) = globex.mm.posts_in(globex.help["id"])
    store = Store(str(tmp_path / "state.sqlite3"))
    try:
        chat = store.current_conversation(ConvKey.thread(post["id"], "globex"))
        assert chat is not None and chat.reply_root_id == post["id"] and chat.case_id == case["case_id"]
    finally:
        store.close()


@pytest.mark.parametrize("command", [["send", "--to", "@bob", "hi"], ["find", "bob"]])
def test_a_missing_or_unknown_workspace_is_a_usage_error_naming_the_workspaces(
    world: World, globex: Globex, tmp_path: Path, command: list[str]
) -> None:
    path = two_workspaces(world, globex, tmp_path)
    for extra in ([], ["--workspace", "initech"]):
        r = cli(*command, *extra, "-c", str(path))
        assert r.returncode == 2, r.stdout + r.stderr
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith("usage error: --workspace: ") and line.endswith("one of: acme, globex")
        assert ("initech" in line) == bool(extra)
    assert cases_of(world) == []


def test_the_single_form_refuses_a_workspace_name(world: World, tmp_path: Path) -> None:
    path = world.write_config(tmp_path)
    r = cli("send", "--workspace", "acme", "--to", "@bob", "hi", "-c", str(path))
    assert r.returncode == 2
    assert "--workspace" in r.stderr and "mattermost:" in r.stderr
    assert cases_of(world) == []


def test_find_searches_the_chosen_workspace_and_shows_its_ids(world: World, globex: Globex, tmp_path: Path) -> None:
    path = two_workspaces(world, globex, tmp_path)
    r = cli("find", "bo", "--workspace", "globex", "-c", str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"Bob Green @bob (member) globex:u:{globex.bob['id']}"]
    r = cli("find", "--workspace", "acme", "supp", "-c", str(path))
    assert r.stdout.splitlines() == [f"Support ~support (channel) acme:c:{world.support['id']}"]
    r = cli("find", "--workspace", "globex", "hel", "-c", str(path))
    assert r.stdout.splitlines() == [f"Help ~help (channel) globex:c:{globex.help['id']}"]


def test_status_counts_each_workspaces_chats_from_the_store(world: World, globex: Globex, tmp_path: Path) -> None:
    path = two_workspaces(world, globex, tmp_path)
    for args in (["--workspace", "acme", "--to", "@bob"], ["--workspace", "acme", "--to", "@jane"],
                 ["--workspace", "globex", "--to", "@bob"]):
        assert cli("send", *args, "hello", "-c", str(path)).returncode == 0
    info = json.loads(cli("status", "--json", "-c", str(path)).stdout)
    assert info["open_chats"] == 3
    assert info["workspaces"] == {
        "acme": {"websocket": "not running", "reconnects": 0, "problem": None, "open_chats": 2},
        "globex": {"websocket": "not running", "reconnects": 0, "problem": None, "open_chats": 1},
    }
    text = cli("status", "-c", str(path)).stdout.splitlines()
    assert "workspace acme: websocket not running; open chats: 2" in text
    assert "workspace globex: websocket not running; open chats: 1" in text


def test_status_of_a_running_bot_names_the_workspace_that_is_down(
    world: World, globex: Globex, tmp_path: Path
) -> None:
    path = two_workspaces(world, globex, tmp_path, poll_interval="1s")
    bot = BotProcess(path, world)
    bot.start()
    try:
        def workspaces() -> dict[str, Any]:
            return json.loads(cli("status", "--json", "-c", str(path)).stdout).get("workspaces", {})

        wait_for(lambda: all(w["websocket"] == "connected" for w in workspaces().values()),
                 what="both websockets in status")
        globex.mm.revoke_token(globex.token)
        globex.mm.drop_connections(resumable=False)
        # One snapshot with globex's problem in it (workspace.py clears `problem` for the moment of each retry).
        info = wait_for(lambda: (w := workspaces())["globex"]["problem"] and w, what="globex's problem in status")
        assert info["acme"]["websocket"] == "connected" and info["acme"]["problem"] is None
        assert info["globex"]["websocket"] == "disconnected"
        assert "rejected the bot token" in info["globex"]["problem"]
        line = wait_for(lambda: next((ln for ln in cli("status", "-c", str(path)).stdout.splitlines()
                                      if ln.startswith("workspace globex: ") and "problem: " in ln), None),
                        what="globex's line with its problem")
        assert line.startswith("workspace globex: websocket disconnected; open chats: 0; problem: ")
        for secret in secrets_of(world, globex):
            assert secret not in line and secret not in json.dumps(info)
    finally:
        bot.stop()
