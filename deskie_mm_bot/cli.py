"""The `deskie-mm-bot` command line.

Exit codes: 0 ok; 1 runtime failure; 2 bad configuration or usage (one line naming the key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from .config import ConfigError, Settings, load_config, redact
from .sdnotify import announce

EXIT_RUNTIME, EXIT_CONFIG = 1, 2
# `start --detach` hands the bot the write end of a pipe; the bot writes one byte once it has started.
READY_FD_ENV = "DESKIE_MM_BOT_READY_FD"
START_PATIENCE = 90.0  # login alone waits up to a minute for a restarting Mattermost
DRAIN_PATIENCE = 30.0


def _die(code: int, message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _load(path: str) -> Settings:
    try:
        return load_config(path)
    except ConfigError as e:
        _die(EXIT_CONFIG, f"config error: {e}")


def _quiet_logging(settings: Settings) -> None:
    """One-shot commands talk to the services too: library warnings in the configured format, redacted."""
    from .logs import setup_logging

    setup_logging("warning", settings.log.format, settings.secrets())


def pid_path(settings: Settings) -> Path:
    return Path(settings.state.path + ".pid")


def _read_pid(settings: Settings) -> int | None:
    p = pid_path(settings)
    try:
        pid = int(p.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive but another user's: a bot only if its command line says so
    # A stale pid file whose number now belongs to another program is not a running bot.
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and not _is_bot_command(cmdline.read_bytes().split(b"\0")):
        return None
    return pid


def _is_bot_command(argv: list[bytes]) -> bool:
    """`python -m deskie_mm_bot ...` or the `deskie-mm-bot` console script."""
    return any(a == b"deskie_mm_bot" or a == b"deskie-mm-bot" or a.endswith(b"/deskie-mm-bot") for a in argv)


config_option = click.option(
    "-c", "--config", "config_path", default="bot_config.yaml", show_default=True,
    type=click.Path(dir_okay=False), help="The YAML config file.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deskie-mm-bot")
def main() -> None:
    """Relay between a Mattermost workspace and the Deskie helpdesk."""


def _warn_insecure(settings: Settings) -> None:
    for name, section in (("mattermost", settings.mattermost), ("deskie", settings.deskie)):
        if section.insecure:
            click.echo(f"warning: {name}.insecure is true: TLS certificates are NOT verified", err=True)
    if settings.webhook.weak_secret:
        click.echo("warning: webhook.secret is shorter than 16 characters: the webhook URL is easy to guess",
                   err=True)


def run_bot(settings: Settings) -> int:
    from .app import BotApp
    from .logs import setup_logging

    setup_logging(settings.log.level, settings.log.format, settings.secrets())
    _warn_insecure(settings)
    pidfile = pid_path(settings)
    other = _read_pid(settings)
    if other is not None and other != os.getpid():
        click.echo(f"another deskie-mm-bot (pid {other}) is running with this state file", err=True)
        return EXIT_RUNTIME
    try:
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(str(os.getpid()))
    except OSError as e:
        click.echo(f"config error: state.path: cannot write {pidfile}: {e.strerror or e}", err=True)
        return EXIT_CONFIG
    ready_fd = _take_ready_fd()

    async def _main() -> int:
        app = BotApp(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, app.request_stop)
        systemd = asyncio.create_task(announce(app.started, app.stopping))  # Type=notify units
        if ready_fd is None:
            try:
                return await app.run()
            finally:
                systemd.cancel()

        async def tell_started() -> None:
            await app.started.wait()
            with contextlib.suppress(OSError):
                os.write(ready_fd, b"1")

        notifier = asyncio.create_task(tell_started())
        try:
            return await app.run()
        finally:
            notifier.cancel()
            systemd.cancel()
            with contextlib.suppress(OSError):
                os.close(ready_fd)

    try:
        code = asyncio.run(_main())
    finally:
        try:
            if pidfile.read_text().strip() == str(os.getpid()):
                pidfile.unlink()
        except OSError:
            pass
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        # A request still hanging past the stop deadline (a read timeout is 30 s) would hold the exit:
        # the store is closed and that write is recorded in flight, checked at the next start.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _take_ready_fd() -> int | None:
    value = os.environ.pop(READY_FD_ENV, "")
    return int(value) if value.isdigit() else None


@main.command()
@config_option
def run(config_path: str) -> None:
    """Run the bot in the foreground until SIGTERM/SIGINT."""
    sys.exit(run_bot(_load(config_path)))


@main.command()
@config_option
@click.option("--detach", is_flag=True, help="Run in the background; the pid file sits next to the state file.")
def start(config_path: str, detach: bool) -> None:
    """Start the bot (same as `run`; `--detach` runs it in the background)."""
    settings = _load(config_path)
    if not detach:
        sys.exit(run_bot(settings))
    if _read_pid(settings) is not None:
        _die(EXIT_RUNTIME, f"already running (pid {_read_pid(settings)})")
    log_path = settings.state.path + ".log"
    ready_r, ready_w = os.pipe()
    try:
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "deskie_mm_bot", "run", "-c", os.path.abspath(config_path)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True,
                env={**os.environ, READY_FD_ENV: str(ready_w)}, pass_fds=(ready_w,),
            )
    except OSError as e:
        os.close(ready_r)
        _die(EXIT_CONFIG, f"config error: state.path: cannot write {log_path}: {e.strerror or e}")
    finally:
        os.close(ready_w)
    # Started means logged in and serving, not merely launched: a bot that fails at start (port in
    # use, token rejected) is reported here, with its exit code, instead of "started".
    answer: bytes | None = None
    deadline = time.time() + START_PATIENCE
    try:
        while answer is None and time.time() < deadline:
            if select.select([ready_r], [], [], 0.2)[0]:
                answer = os.read(ready_r, 1)  # b"" once the bot has exited without starting
    finally:
        os.close(ready_r)
    if answer == b"":
        try:
            code = proc.wait(timeout=DRAIN_PATIENCE)
        except subprocess.TimeoutExpired:
            _die(EXIT_RUNTIME, f"the bot (pid {proc.pid}) failed to start and has not exited; see {log_path}")
        _die(code if code in (EXIT_RUNTIME, EXIT_CONFIG) else EXIT_RUNTIME,
             f"the bot exited at start with code {code}; see {log_path}")
    if answer is None:
        click.echo(f"still starting after {START_PATIENCE:.0f} s (pid {proc.pid}); log: {log_path}")
        return
    click.echo(f"started (pid {proc.pid}); log: {log_path}")


@main.command()
@config_option
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the bot to drain and exit.")
def stop(config_path: str, timeout: float) -> None:
    """Stop the running bot and wait until it has drained and exited."""
    settings = _load(config_path)
    pid = _read_pid(settings)
    if pid is None:
        _die(EXIT_RUNTIME, "not running")
    try:
        os.kill(pid, signal.SIGTERM)
    except PermissionError:
        _die(EXIT_RUNTIME, f"not allowed to stop pid {pid} (another user's process); run stop as its user")
    except ProcessLookupError:
        click.echo(f"stopped (pid {pid})")
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            click.echo(f"stopped (pid {pid}){_left_behind(settings)}")
            return
        time.sleep(0.1)
    _die(EXIT_RUNTIME, f"pid {pid} did not exit within {timeout:.0f} s")


def _left_behind(settings: Settings) -> str:
    """What the drain could not deliver (a service that failed): it waits in the store for the next start."""
    from .store import Store

    if not Path(settings.state.path).exists():
        return ""
    try:
        store = Store(settings.state.path)
    except (sqlite3.Error, OSError):
        return ""
    try:
        to_deskie = store.count_outbox("pending") + store.count_outbox("inflight")
        to_mm = store.count_replies("pending") + store.count_replies("posting")
    finally:
        store.close()
    return f"; waiting for the next start: {to_deskie} to Deskie, {to_mm} to Mattermost"


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: str, as_json: bool) -> None:
    """Running or not, open chats, queued messages, last errors."""
    from .store import Store

    settings = _load(config_path)
    pid = _read_pid(settings)
    info: dict[str, Any] = {"running": pid is not None, "pid": pid}
    if Path(settings.state.path).exists():
        try:
            store = Store(settings.state.path)
        except (sqlite3.Error, OSError) as e:
            _die(EXIT_CONFIG, f"config error: state.path: cannot read {settings.state.path}: {e}")
        try:
            info.update(
                open_chats=store.count_conversations("active"),
                ended_chats=store.count_conversations("ended"),
                queued_to_deskie=store.count_outbox("pending") + store.count_outbox("inflight"),
                queued_to_mattermost=store.count_replies("pending") + store.count_replies("posting"),
                failed_to_deskie=store.count_outbox("failed"),
                last_errors=[
                    {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e["at"])), "source": e["source"],
                     "message": redact(e["message"], settings.secrets())}
                    for e in store.last_errors(5)
                ],
            )
        finally:
            store.close()
    else:
        info.update(open_chats=0, ended_chats=0, queued_to_deskie=0, queued_to_mattermost=0,
                    failed_to_deskie=0, last_errors=[])
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"running: {f'yes (pid {pid})' if pid else 'no'}")
    click.echo(f"open chats: {info['open_chats']} (ended, not closed: {info['ended_chats']})")
    click.echo(f"queued to Deskie: {info['queued_to_deskie']}; to Mattermost: {info['queued_to_mattermost']}")
    if info["failed_to_deskie"]:
        click.echo(f"refused by Deskie: {info['failed_to_deskie']}")
    for e in info["last_errors"]:
        click.echo(f"error {e['at']} [{e['source']}] {e['message']}")


@main.command()
@config_option
@click.option("--online", is_flag=True, help="Also prove both credentials and permissions.")
def check(config_path: str, online: bool) -> None:
    """Validate the config (offline); `--online` also checks Mattermost and Deskie."""
    from .placeholders import placeholders_in_file

    placeholders = placeholders_in_file(config_path, os.environ)
    unset = [p for p in placeholders if ": environment variable " in p]
    if unset or (placeholders and online):
        # Every one at once (a fresh `init` file has several); online, a made-up host can only fail.
        for p in placeholders:
            click.echo(f"config error: {p}", err=True)
        sys.exit(EXIT_CONFIG)
    settings = _load(config_path)
    for p in placeholders:
        # Offline, a made-up value is not invalid YAML: pointed at, but the file passes.
        click.echo(f"warning: {p}", err=True)
    _warn_insecure(settings)
    if not online:
        click.echo(f"config ok: {config_path}")
        return
    from .checks import online_check

    _quiet_logging(settings)
    problems = asyncio.run(online_check(settings, click.echo))
    if problems:
        for p in problems:
            click.echo(f"problem: {redact(p, settings.secrets())}", err=True)
        sys.exit(EXIT_RUNTIME)
    click.echo("online check ok")


@main.command()
@config_option
@click.argument("query")
def find(config_path: str, query: str) -> None:
    """Search Mattermost members and channels for outgoing chats."""
    from .checks import find_targets

    settings = _load(config_path)
    _quiet_logging(settings)
    try:
        for line in asyncio.run(find_targets(settings, query)):
            click.echo(line)
    except Exception as e:
        _die(EXIT_RUNTIME, redact(f"find failed: {e}", settings.secrets()))


@main.command()
@config_option
@click.option("--to", "to", required=True, help="@username or ~channel")
@click.option("--subject", default=None, help="Case subject (default: the first line of TEXT).")
@click.argument("text")
def send(config_path: str, to: str, subject: str | None, text: str) -> None:
    """Start an outgoing chat with a member or a channel."""
    from .checks import ConfigProblem, TargetNotFound, send_outgoing

    settings = _load(config_path)
    if not (to.startswith("@") or to.startswith("~")) or len(to) < 2:
        _die(EXIT_CONFIG, "usage error: --to: must be @username or ~channel")
    _quiet_logging(settings)
    try:
        click.echo(asyncio.run(send_outgoing(settings, to, subject, text)))
    except ConfigProblem as e:
        _die(EXIT_CONFIG, f"config error: {e}")
    except TargetNotFound as e:  # not any LookupError: a KeyError is a failure, not the user's mistake
        _die(EXIT_CONFIG, f"usage error: --to: {e}")
    except Exception as e:
        _die(EXIT_RUNTIME, redact(f"send failed: {e}", settings.secrets()))


@main.command()
@config_option
def init(config_path: str) -> None:
    """Write the commented example config to -c FILE; never overwrites."""
    from .placeholders import example_text

    path = Path(config_path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as out:  # "x": an existing file (or symlink) is kept
            try:
                out.write(example_text())
            except OSError:
                path.unlink()  # a half-written example would block the next `init`
                raise
    except FileExistsError:
        _die(EXIT_CONFIG, f"usage error: {config_path} already exists; not overwritten")
    except OSError as e:
        _die(EXIT_CONFIG, f"usage error: cannot write {config_path}: {e.strerror or e}")
    click.echo(f"wrote {config_path}: fill in your values (secrets stay in the environment), "
               f"then run: deskie-mm-bot check -c {config_path}")


@main.command()
@click.option("--demo", is_flag=True, help="Play a scripted conversation, print the transcript, and exit.")
@click.option("--reply-mode", type=click.Choice(["group_chat", "thread"]), default="group_chat", show_default=True)
@click.option("--mention-only/--all-posts", default=True, show_default=True,
              help="In channels, relay only posts that @mention the bot.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where the sandbox keeps its config and state (default: a temporary folder).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port of the console page on 127.0.0.1 (default 8765, or a free one if that is taken).")
@click.option("--no-browser", is_flag=True, help="Do not open the console in a browser.")
def sandbox(demo: bool, reply_mode: str, mention_only: bool, workdir: str | None, port: int | None,
            no_browser: bool) -> None:
    """Start local Mattermost and Deskie emulators, the bot wired to them, and a console page in the
    browser where you play the customers and the agents."""
    from .sandbox_runner import run_sandbox

    sys.exit(run_sandbox(demo=demo, reply_mode=reply_mode, mention_only=mention_only, workdir=workdir,
                         port=port, open_browser=not no_browser))


if __name__ == "__main__":
    main()
