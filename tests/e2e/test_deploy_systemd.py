"""The systemd unit: it passes `systemd-analyze verify`, and the installed console script, started the way
the unit starts it (its arguments, its environment file, its state directory, $NOTIFY_SOCKET), says
READY=1, serves a healthy /healthz, relays, says STOPPING=1 on SIGTERM and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from deskie_mm_bot.sandbox_runner import DESKIE_KEY, STAFF_EMAIL, WEBHOOK_SECRET, World
from deskie_mm_bot.sdnotify import announce, sd_notify
from tests.support.harness import NETGUARD, REPO, cases_of, wait_for

UNIT_DIR = REPO / "deploy" / "systemd"
UNIT = UNIT_DIR / "deskie-mm-bot.service"
BACKOFF = UNIT_DIR / "deskie-mm-bot.service.d" / "backoff.conf"
ENV_EXAMPLE = UNIT_DIR / "deskie-mm-bot.env.example"


def unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values, as systemd reads a unit (comments, repeated keys, `\\` continuations)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def environment_file(path: Path) -> dict[str, str]:
    """What systemd's EnvironmentFile= (and docker's --env-file) take from the file: NAME=value lines."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip()[0] in "#;":
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), f"not NAME=value: {line!r}"
        env[name] = value
    return env


def console_script() -> str:
    """The `deskie-mm-bot` that `pip install` put beside this Python (what ExecStart= runs)."""
    beside = Path(sys.executable).with_name("deskie-mm-bot")
    found = str(beside) if beside.exists() else shutil.which("deskie-mm-bot")
    assert found, "the deskie-mm-bot console script is not installed (pip install -e '.[test]')"
    return found


def _verify(path: Path) -> str:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd; .ci/run installs it)")
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    # verify exits 0 even for keys it ignores: every line it prints is a finding.
    return f"exit {r.returncode}\n{r.stdout}{r.stderr}".strip()


def _systemd_version() -> int:
    out = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True, timeout=30).stdout
    return int(re.match(r"systemd (\d+)", out).group(1))  # type: ignore[union-attr]


def _unit_copy(folder: Path) -> Path:
    """The unit with ExecStart='s program pointed at this install: verify insists it exists."""
    (service,) = unit_settings(UNIT)["Service"]["ExecStart"]
    program = service.split()[0]
    copy = folder / UNIT.name
    copy.write_text(UNIT.read_text().replace(f"ExecStart={program} ", f"ExecStart={console_script()} "))
    return copy


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert _verify(_unit_copy(tmp_path)) == "exit 0"


def test_backoff_drop_in_is_clean_where_systemd_knows_its_keys(tmp_path: Path) -> None:
    copy = _unit_copy(tmp_path)
    (tmp_path / f"{UNIT.name}.d").mkdir()
    shutil.copy(BACKOFF, tmp_path / f"{UNIT.name}.d" / BACKOFF.name)
    found = _verify(copy)
    if _systemd_version() >= 254:
        assert found == "exit 0"
    else:  # older systemd skips exactly these two keys, nothing else, and the unit still loads
        ignored = re.findall(r"Unknown key '(\w+)' in section \[Service\], ignoring", found)
        assert ignored == ["RestartSteps", "RestartMaxDelaySec"], found
        assert len(found.splitlines()) == 3, found


def test_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt value is a finding."""
    copy = _unit_copy(tmp_path)
    copy.write_text(copy.read_text().replace("ProtectHome=yes", "ProtectHome=yess"))
    assert "ignoring: yess" in _verify(copy)


def test_unit_is_hardened_and_restarts_with_backoff() -> None:
    s = unit_settings(UNIT)["Service"]
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify" and one["Restart"] == "on-failure" and one["RestartSec"]
    assert one["DynamicUser"] == "yes" and one["StateDirectory"] == "deskie-mm-bot"
    assert one["EnvironmentFile"] == "/etc/deskie-mm-bot/env"
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "PrivateDevices": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
                       "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX"}.items():
        assert one[key] == value, key
    assert "@system-service" in s["SystemCallFilter"]
    assert unit_settings(BACKOFF)["Service"]["RestartSteps"] and unit_settings(BACKOFF)["Service"]["RestartMaxDelaySec"]


# --------------------------------------------------------------------------------------------------
# Started as the unit starts it


class NotifyListener:
    """The service manager's end of $NOTIFY_SOCKET."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.seen: list[str] = []

    def wait_for(self, state: str, timeout: float) -> list[str]:
        def arrived() -> bool:
            with contextlib.suppress(TimeoutError):
                self.seen.extend(self.sock.recv(4096).decode().splitlines())
            return state in self.seen

        wait_for(arrived, timeout, f"{state} on NOTIFY_SOCKET (seen: {self.seen})")
        return self.seen

    def drain(self) -> list[str]:
        self.sock.settimeout(0.0)
        try:
            while True:
                self.seen.extend(self.sock.recv(4096).decode().splitlines())
        except BlockingIOError:
            return self.seen


class Installed:
    """A folder laid out like the host the unit runs on: /etc/deskie-mm-bot, /var/lib/deskie-mm-bot."""

    def __init__(self, root: Path, world: World) -> None:
        self.root, self.world = root, world
        self.service = unit_settings(UNIT)["Service"]
        self.state_dir = self.host("/var/lib/" + self.service["StateDirectory"][-1])
        (self.exec_start,) = self.service["ExecStart"]
        config = self.exec_start.split()[self.exec_start.split().index("-c") + 1]
        self.config = self.host(config)
        self.env_file = self.host(self.service["EnvironmentFile"][-1])

    def host(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def set_up(self) -> None:
        """What README's operations section has the admin do."""
        r = subprocess.run([console_script(), "init", "-c", str(self.config)], capture_output=True, text=True,
                           timeout=60, env=self.env({}))
        assert r.returncode == 0, r.stderr
        w = self.world
        cfg = yaml.safe_load(self.config.read_text())
        cfg["mattermost"]["url"] = w.mm.url
        cfg["deskie"].update(url=w.dk.url, staff_email=STAFF_EMAIL, default_group=w.group["group_title"])
        cfg["webhook"]["listen"] = f"127.0.0.1:{w.webhook_port}"
        cfg["chats"]["poll_interval"] = "1s"
        cfg["state"]["path"] = str(self.state_dir / "deskie-mm-bot.sqlite3")
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        secrets = {"MM_BOT_TOKEN": w.bot_token, "DESKIE_API_KEY": DESKIE_KEY, "DESKIE_WEBHOOK_SECRET": WEBHOOK_SECRET}
        lines = [f"{ln}{secrets[ln[:-1]]}" if ln.endswith("=") and ln[:-1] in secrets else ln
                 for ln in ENV_EXAMPLE.read_text().splitlines()]
        self.env_file.write_text("\n".join(lines) + "\n")
        self.env_file.chmod(0o600)
        assert set(secrets) <= set(environment_file(self.env_file)), "the env example lacks a secret"
        self.state_dir.mkdir(parents=True, mode=0o700)  # StateDirectory=, before the start

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        """A service's environment: nothing inherited but PATH, plus Environment= and the env file."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "PYTHONPATH": os.pathsep.join([str(NETGUARD), str(REPO)])}  # this checkout's code
        for assignment in self.service.get("Environment", []):
            env.update(a.split("=", 1) for a in assignment.split())  # type: ignore[misc]
        if self.env_file.exists():
            env.update(environment_file(self.env_file))
        return {**env, "STATE_DIRECTORY": str(self.state_dir), **extra}

    def start(self, notify: NotifyListener) -> subprocess.Popen[bytes]:
        argv = self.exec_start.split()
        argv = [console_script()] + [str(self.host(a)) if a.startswith("/etc/") else a for a in argv[1:]]
        cwd = self.host(self.service["WorkingDirectory"][-1])
        with open(self.root / "journal.log", "ab") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=self.env({"NOTIFY_SOCKET": str(notify.path)}), start_new_session=True)

    def journal(self) -> str:
        return (self.root / "journal.log").read_text(errors="replace")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: a unix socket's path is limited to 107 bytes."""
    root = Path(tempfile.mkdtemp(prefix="unit-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def notify(short_dir: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(short_dir)
    yield listener
    listener.sock.close()


@pytest.fixture
def installed(world: World, short_dir: Path) -> Installed:
    host = Installed(short_dir, world)
    host.set_up()
    return host


def _stop_timeout(service: dict[str, list[str]]) -> float:
    return float(service["TimeoutStopSec"][-1].rstrip("s"))


def test_unit_start_says_ready_serves_health_and_stops_cleanly(installed: Installed, notify: NotifyListener) -> None:
    world = installed.world
    r = subprocess.run([console_script(), "check", "-c", str(installed.config)], capture_output=True, text=True,
                       timeout=60, env=installed.env({}))
    assert r.returncode == 0, r.stderr  # no placeholder left once the admin has filled it in
    proc = installed.start(notify)
    try:
        notify.wait_for("READY=1", timeout=30)
        health = requests.get(f"http://127.0.0.1:{world.webhook_port}/healthz", timeout=5)
        assert health.status_code == 200, health.text
        assert health.json()["mattermost"]["websocket"] == "connected"
        world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello from a systemd-style start")
        wait_for(lambda: cases_of(world), what="the customer's case in Deskie")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=_stop_timeout(installed.service)) == 0, installed.journal()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    seen = notify.drain()
    assert seen.index("READY=1") < seen.index("STOPPING=1"), seen
    assert (installed.state_dir / "deskie-mm-bot.sqlite3").exists()
    assert not (installed.state_dir / "deskie-mm-bot.sqlite3.pid").exists()
    for secret in (world.bot_token, DESKIE_KEY, WEBHOOK_SECRET):
        assert secret not in installed.journal()


def test_unit_start_that_fails_never_says_ready_and_is_restarted(installed: Installed, notify: NotifyListener) -> None:
    installed.world.mm.revoke_token(installed.world.bot_token)
    proc = installed.start(notify)
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "READY=1" not in notify.drain()
    assert code == 1, installed.journal()
    # Restart=on-failure restarts it: 1 is not among the codes the unit gives up on.
    prevent = " ".join(installed.service.get("RestartPreventExitStatus", [])).split()
    assert str(code) not in prevent and "2" in prevent


# --------------------------------------------------------------------------------------------------
# The protocol itself


def test_sd_notify_speaks_to_a_path_or_an_abstract_socket(notify: NotifyListener) -> None:
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(notify.path)})
    assert notify.wait_for("READY=1", timeout=2)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        name = f"deskie-mm-bot-test-{os.getpid()}"
        abstract.bind("\0" + name)
        assert sd_notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert abstract.recv(100) == b"STOPPING=1"


def test_sd_notify_without_a_service_manager_does_nothing(tmp_path: Path) -> None:
    assert sd_notify("READY=1", {}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False  # logged, not raised


def test_announce_says_stopping_but_not_ready_when_stopped_during_start(
    notify: NotifyListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))

    async def scenario() -> None:
        started, stopping = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(announce(started, stopping))
        await asyncio.sleep(0.05)
        stopping.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert notify.wait_for("STOPPING=1", timeout=2) and "READY=1" not in notify.seen
