"""The state store as README's operations section treats it: backed up while the bot runs, upgraded in
place at start, and refused (one line, exit 2) when a newer bot wrote it."""

from __future__ import annotations

import shlex
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from deskie_mm_bot.sandbox_runner import World
from deskie_mm_bot.store import Store
from deskie_mm_bot.store.migrate import current_version, latest_version, migrate
from tests.support.harness import REPO, BotProcess, cases_of, cli, wait_for

README = (REPO / "README.md").read_text()
PYTHON_BACKUP = ("python3 -c 'import sqlite3, sys; d = sqlite3.connect(sys.argv[2]); "
                 "sqlite3.connect(sys.argv[1]).backup(d); d.close()'")
SQLITE3_BACKUP = "sqlite3 STATE \".backup 'OUT'\""


def _state_path(bot: BotProcess) -> Path:
    return Path(yaml.safe_load(bot.config_path.read_text())["state"]["path"])


def _open_chats(path: Path) -> int:
    store = Store(str(path))
    try:
        return store.count_conversations("active")
    finally:
        store.close()


def test_readme_backup_commands_copy_the_state_while_the_bot_runs(
    world: World, make_bot: Callable[..., BotProcess], tmp_path: Path
) -> None:
    assert PYTHON_BACKUP in README and "sqlite3 /var/lib/deskie-mm-bot/deskie-mm-bot.sqlite3 \".backup '" in README
    bot = make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "a chat worth backing up")
    wait_for(lambda: cases_of(world), what="the case")
    wait_for(lambda: _open_chats(_state_path(bot)) == 1, what="the chat in the store")
    out = tmp_path / "backup-python.sqlite3"
    r = subprocess.run(f"{PYTHON_BACKUP} {shlex.quote(str(_state_path(bot)))} {shlex.quote(str(out))}",
                       shell=True, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    backups = [out]
    if shutil.which("sqlite3"):
        out2 = tmp_path / "backup-cli.sqlite3"
        command = SQLITE3_BACKUP.replace("STATE", shlex.quote(str(_state_path(bot)))).replace("OUT", str(out2))
        r = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        backups.append(out2)
    assert bot.healthy()  # the bot never noticed
    for backup in backups:
        assert _open_chats(backup) == 1, backup
    assert bot.stop() == 0


def test_an_older_store_is_migrated_at_start(world: World, tmp_path: Path) -> None:
    path = world.write_config(tmp_path)
    conn = sqlite3.connect(tmp_path / "state.sqlite3")
    migrate(conn, target=1)  # as the first release left it
    conn.close()
    assert latest_version() > 1
    r = cli("status", "-c", str(path))
    assert r.returncode == 0, r.stderr
    conn = sqlite3.connect(tmp_path / "state.sqlite3")
    try:
        assert current_version(conn) == latest_version()
    finally:
        conn.close()


@pytest.mark.parametrize("command", [["run"], ["status"]])
def test_a_store_from_a_newer_bot_is_refused_in_one_line(world: World, tmp_path: Path, command: list[str]) -> None:
    path = world.write_config(tmp_path)
    conn = sqlite3.connect(tmp_path / "state.sqlite3")
    conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
    conn.close()
    r = cli(*command, "-c", str(path))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if "newer" in ln]
    assert line.endswith(f"config error: state.path: cannot {'open' if command == ['run'] else 'read'} "
                         f"{tmp_path / 'state.sqlite3'}: state store schema version {latest_version() + 1} "
                         f"is newer than this bot knows ({latest_version()}); upgrade deskie-mm-bot")
    conn = sqlite3.connect(tmp_path / "state.sqlite3")
    try:
        assert current_version(conn) == latest_version() + 1  # left as it was
    finally:
        conn.close()
