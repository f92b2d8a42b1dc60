"""SIGTERM while the bot is still starting stops it soon; `stop` of a pid the bot cannot signal and a `send`
that fails inside are clean runtime errors (exit 1), not usage errors or tracebacks."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from deskie_mm_bot import cli as cli_module
from deskie_mm_bot.sandbox_runner import World, free_port
from tests.support.harness import BotProcess, wait_for


def _stop_during_login(bot: BotProcess) -> tuple[int, float]:
    bot.start(wait=False)
    assert bot.proc is not None
    wait_for(lambda: "Mattermost not reachable yet" in bot.log() or bot.proc.poll() is not None,  # type: ignore[union-attr]
             timeout=30, what="the bot waiting for Mattermost")
    assert bot.proc.poll() is None, bot.log()
    t0 = time.monotonic()
    bot.proc.send_signal(signal.SIGTERM)
    code = bot.proc.wait(timeout=60)
    return code, time.monotonic() - t0


def test_sigterm_while_mattermost_is_unreachable_at_start_stops_cleanly_and_soon(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot()
    cfg = yaml.safe_load(bot.config_path.read_text())
    cfg["mattermost"]["url"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    bot.config_path.write_text(yaml.safe_dump(cfg))
    code, took = _stop_during_login(bot)
    assert code == 0, bot.log()[-2000:]
    assert took < 3, f"took {took:.1f} s to stop"


def test_sigterm_while_the_login_request_hangs_stops_soon(world: World, make_bot: Callable[..., BotProcess]) -> None:
    world.mm.rest_outage(120, kind="hang")  # every REST request hangs, the login first
    bot = make_bot()
    bot.start(wait=False)
    assert bot.proc is not None
    time.sleep(3)  # well into its first login request (which would wait 30 s for an answer)
    assert bot.proc.poll() is None, bot.log()
    t0 = time.monotonic()
    bot.proc.send_signal(signal.SIGTERM)
    code = bot.proc.wait(timeout=150)
    assert time.monotonic() - t0 < 5, bot.log()[-2000:]
    assert code == 0, bot.log()[-2000:]


def test_stop_of_a_pid_it_may_not_signal_is_a_clean_runtime_error(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = world.write_config(tmp_path)
    foreign = 4_000_000  # above any pid_max: only the fake kill below knows it
    (tmp_path / "state.sqlite3.pid").write_text(str(foreign))
    real_kill = os.kill

    def kill(pid: int, sig: int) -> None:
        if pid == foreign:
            raise PermissionError(1, "Operation not permitted")
        real_kill(pid, sig)

    monkeypatch.setattr(cli_module.os, "kill", kill)
    result = CliRunner().invoke(cli_module.main, ["stop", "-c", str(path), "--timeout", "1"])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert str(foreign) in result.output


def test_send_failing_on_a_missing_field_is_a_runtime_failure_not_a_usage_error(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deskie_mm_bot import checks

    async def broken(*args: object) -> str:
        raise KeyError("case_id")  # e.g. an answer without the field the code reads

    monkeypatch.setattr(checks, "send_outgoing", broken)
    path = world.write_config(tmp_path)
    result = CliRunner().invoke(cli_module.main, ["send", "-c", str(path), "--to", "@jane", "hi"])
    assert result.exit_code == 1, result.output
    assert "usage error" not in result.output
