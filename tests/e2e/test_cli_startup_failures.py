"""The command line on a state path it cannot use, and `start --detach` of a bot that fails."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import cli


def _with_state(world: World, tmp_path: Path, state: str) -> Path:
    path = world.write_config(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["state"]["path"] = state
    path.write_text(yaml.safe_dump(cfg))
    return path


def _one_clean_line(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_run_with_a_state_folder_that_cannot_be_created_exits_2_naming_the_key(world: World, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = _with_state(world, tmp_path, str(blocker / "state.sqlite3"))  # a folder inside a file
    r = cli("run", "-c", str(path))
    assert r.returncode == 2, r.stderr
    _one_clean_line(r.stderr)
    assert "state.path" in r.stderr


def test_run_with_a_state_path_that_is_a_folder_exits_2_naming_the_key(world: World, tmp_path: Path) -> None:
    folder = tmp_path / "state-dir"
    folder.mkdir()
    path = _with_state(world, tmp_path, str(folder))
    r = cli("run", "-c", str(path))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "state.path" in r.stderr


def test_status_of_a_state_file_that_is_not_a_database_exits_2_in_one_line(world: World, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    state.write_text("this is not sqlite\n" * 100)
    path = _with_state(world, tmp_path, str(state))
    r = cli("status", "-c", str(path))
    assert r.returncode == 2, r.stderr
    _one_clean_line(r.stderr)
    assert "state.path" in r.stderr


def test_status_of_a_state_path_that_is_a_folder_exits_2_in_one_line(world: World, tmp_path: Path) -> None:
    folder = tmp_path / "state-dir"
    folder.mkdir()
    path = _with_state(world, tmp_path, str(folder))
    r = cli("status", "-c", str(path))
    assert r.returncode == 2, r.stderr
    _one_clean_line(r.stderr)
    assert "state.path" in r.stderr


def test_send_with_a_broken_state_file_starts_nothing(world: World, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    state.write_text("this is not sqlite\n" * 100)
    path = _with_state(world, tmp_path, str(state))
    r = cli("send", "--to", "@jane", "-c", str(path), "hello")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert world.dk.cases("cch12") == []  # no case the bot would not know of
    assert [p for p in world.mm.posts_in(world.jane_dm["id"]) if p["user_id"] == world.bot["id"]] == []


def test_start_detach_of_a_bot_that_cannot_listen_reports_the_failure(world: World, tmp_path: Path) -> None:
    path = world.write_config(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", world.webhook_port))
        busy.listen()
        r = cli("start", "--detach", "-c", str(path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "started" not in r.stdout
    assert not (tmp_path / "state.sqlite3.pid").exists()
