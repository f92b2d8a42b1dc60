"""`check --online` with `workspaces:`: every workspace's token, team and groups, each named by its key."""

from __future__ import annotations

from pathlib import Path

import yaml

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import cli


def test_check_online_checks_every_workspace_and_names_it(world: World, tmp_path: Path) -> None:
    path = world.write_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    single = data.pop("mattermost")
    _, other_token = world.mm.add_bot("otherbot", "Other Bot")  # a bot in no team
    data = {"workspaces": [
        {"name": "acme", **single, "routes": {"support": world.group["group_title"]}},
        {"name": "globex", "url": single["url"], "bot_token": other_token, "default_group": "Globex"},
    ], **data}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    r = cli("check", "--online", "-c", str(path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "workspaces[acme]: token ok, bot @helpbot" in r.stdout
    assert "workspaces[globex]: token ok, bot @otherbot" in r.stdout
    assert "deskie: chats started in ~support go to group 'Support'" in r.stdout
    problems = [line.split(": ")[1] for line in r.stderr.splitlines() if line.startswith("problem: ")]
    assert problems == ["workspaces[globex]", "workspaces[globex].default_group"]
    assert world.bot_token not in r.stdout + r.stderr and other_token not in r.stdout + r.stderr
