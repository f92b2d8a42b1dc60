"""First run: `init` writes the commented example shipped in the package and never overwrites; `check`
names every key that still holds one of the example's placeholders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deskie_mm_bot.placeholders import EXAMPLE_NAME, example_text, find_placeholders
from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import NETGUARD, REPO

SECRETS = ("MM_BOT_TOKEN", "DESKIE_API_KEY", "DESKIE_WEBHOOK_SECRET")


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    base["PYTHONPATH"] = os.pathsep.join([str(NETGUARD), str(REPO)])
    return subprocess.run([sys.executable, "-m", "deskie_mm_bot", *args], capture_output=True, text=True,
                          timeout=60, env={**base, **env}, cwd=str(REPO))


def test_init_writes_the_commented_example(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "deskie-mm-bot" / "bot_config.yaml"  # folders made as needed
    r = cli("init", "-c", str(path))
    assert r.returncode == 0, r.stderr
    assert path.read_text() == (REPO / EXAMPLE_NAME).read_text()
    assert str(path) in r.stdout and "check" in r.stdout
    comments = [ln for ln in path.read_text().splitlines() if ln.strip().startswith("#")]
    assert len(comments) > 30  # the explanations came along, not only the keys


def test_init_refuses_to_overwrite_with_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bot_config.yaml"
    path.write_text("mine: true\n")
    r = cli("init", "-c", str(path))
    assert r.returncode == 2
    assert r.stderr.strip() == f"usage error: {path} already exists; not overwritten"
    assert path.read_text() == "mine: true\n"
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "nowhere.yaml")  # not followed into a new file either
    assert cli("init", "-c", str(link)).returncode == 2
    assert not (tmp_path / "nowhere.yaml").exists()


def test_init_default_file_is_bot_config_yaml_in_the_current_folder(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(NETGUARD), str(REPO)]))
    r = subprocess.run([sys.executable, "-m", "deskie_mm_bot", "init"], capture_output=True, text=True,
                       timeout=60, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "bot_config.yaml").read_text() == example_text()


def test_the_package_example_is_the_repo_root_example() -> None:
    shipped = REPO / "deskie_mm_bot" / "data" / EXAMPLE_NAME
    assert shipped.read_bytes() == (REPO / EXAMPLE_NAME).read_bytes(), (
        f"the two examples differ: after editing one, cp it over the other ({EXAMPLE_NAME}, {shipped})")


def test_a_built_package_carries_the_example(tmp_path: Path) -> None:
    """What a wheel gets: setuptools' build_py (bdist_wheel's first step) on a copy of the project."""
    pytest.importorskip("setuptools", reason="setuptools (the build backend) is not in this environment")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", EXAMPLE_NAME):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "deskie_mm_bot", src / "deskie_mm_bot", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "lib"
    r = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "-d", str(out)],
                       capture_output=True, text=True, timeout=120, cwd=str(src))
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-c", "from deskie_mm_bot.placeholders import example_text as t; "
                        "import deskie_mm_bot, sys; sys.stdout.write(deskie_mm_bot.__file__ + '\\n' + t())"],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(out)), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    where, _, text = r.stdout.partition("\n")
    assert where.startswith(str(out)) and text == (REPO / EXAMPLE_NAME).read_text()


def test_check_names_every_placeholder_of_a_fresh_init(tmp_path: Path) -> None:
    path = tmp_path / "bot_config.yaml"
    assert cli("init", "-c", str(path)).returncode == 0
    r = cli("check", "-c", str(path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert all(line.startswith("config error: ") for line in lines)
    keys = [line.removeprefix("config error: ").split(":")[0] for line in lines]
    assert keys == ["mattermost.url", "mattermost.bot_token", "deskie.url", "deskie.staff_email",
                    "deskie.api_key", "deskie.channel", "webhook.secret"]
    assert "config error: mattermost.bot_token: environment variable MM_BOT_TOKEN is not set" in lines
    assert any(line.startswith("config error: deskie.channel: 'cch12' is the example's placeholder") for line in lines)

    secrets = {"MM_BOT_TOKEN": "tok", "DESKIE_API_KEY": "key", "DESKIE_WEBHOOK_SECRET": "s" * 32}
    r = cli("check", "-c", str(path), **secrets)  # offline, made-up values are pointed at, not refused
    assert r.returncode == 0 and "config ok" in r.stdout
    warned = [line.removeprefix("warning: ").split(":")[0] for line in r.stderr.strip().splitlines()]
    assert warned == ["mattermost.url", "deskie.url", "deskie.staff_email", "deskie.channel"]
    r = cli("check", "--online", "-c", str(path), **secrets)  # stops before any connection
    assert r.returncode == 2
    keys = [line.removeprefix("config error: ").split(":")[0] for line in r.stderr.strip().splitlines()]
    assert keys == ["mattermost.url", "deskie.url", "deskie.staff_email", "deskie.channel"]
    for value in secrets.values():
        assert value not in r.stderr


def test_check_passes_a_filled_in_example(tmp_path: Path) -> None:
    path = tmp_path / "bot_config.yaml"
    assert cli("init", "-c", str(path)).returncode == 0
    cfg = yaml.safe_load(path.read_text())
    cfg["mattermost"]["url"] = "https://chat.acme-corp.net"
    cfg["deskie"].update(url="https://acme-corp.deskie.io", staff_email="bot@acme-corp.net")  # channel stays cch12
    path.write_text(yaml.safe_dump(cfg))
    r = cli("check", "-c", str(path), MM_BOT_TOKEN="tok", DESKIE_API_KEY="key", DESKIE_WEBHOOK_SECRET="s" * 32)
    assert (r.returncode, r.stderr) == (0, "")


def test_check_of_a_working_config_finds_no_placeholder(world: World, tmp_path: Path) -> None:
    r = cli("check", "-c", str(world.write_config(tmp_path)))  # its channel is cch12 in a real account
    assert r.returncode == 0, r.stderr


def test_placeholders_in_any_url_key_and_only_reserved_hosts() -> None:
    data = {
        "workspaces": [{"name": "a", "url": "chat.example.org"}, {"name": "b", "url": "https://mm.example"}],
        "deskie": {"url": "https://acme-corp.deskie.io", "channel": "cch12", "staff_email": "bot-agent@acme.com",
                   "api_key": "${KEY:-fallback}"},
        "webhook": {"public_url": "https://hooks.example.net/x", "secret": "${SECRET}"},
        "other": {"url": "https://example.company.com", "second": "https://chat.example.com.au"},
    }
    found = find_placeholders(data, env={"SECRET": "set"})
    assert [line.split(":")[0] for line in found] == ["workspaces[a].url", "workspaces[b].url", "webhook.public_url"]
