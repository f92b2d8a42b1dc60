"""The bot as an operating-system process: the pid file, `start --detach` with its ready pipe, stop-and-wait.

The click commands in cli.py call into this module; a failure here is an `errors.Fatal` carrying the exit
code and the one line the command prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Settings
from .errors import EXIT_CONFIG, EXIT_RUNTIME, Fatal
from .sdnotify import announce

if TYPE_CHECKING:
    from .app import BotApp

# `start --detach` hands the bot the write end of a pipe; the bot writes one byte once it has started.
READY_FD_ENV = "DESKIE_MM_BOT_READY_FD"
START_PATIENCE = 90.0  # login alone waits up to a minute for a restarting Mattermost
DRAIN_PATIENCE = 30.0


def pid_path(settings: Settings) -> Path:
    return Path(settings.state.path + ".pid")


def read_pid(settings: Settings) -> int | None:
    """The pid of the bot running with this state file, or None."""
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


def run_bot(settings: Settings) -> int:
    """Run the bot in this process until it stops; returns its exit code.

    Raises Fatal before starting when another bot holds the state file or the pid file cannot be written.
    """
    from .app import BotApp
    from .logs import setup_logging

    setup_logging(settings.log.level, settings.log.format, settings.secrets())
    pidfile = pid_path(settings)
    other = read_pid(settings)
    if other is not None and other != os.getpid():
        raise Fatal(EXIT_RUNTIME, f"another deskie-mm-bot (pid {other}) is running with this state file")
    try:
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(str(os.getpid()))
    except OSError as e:
        raise Fatal(EXIT_CONFIG, f"config error: state.path: cannot write {pidfile}: {e.strerror or e}") \
            from None
    ready_fd = _take_ready_fd()

    async def _main() -> int:
        app = BotApp(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, app.request_stop)
        systemd = asyncio.create_task(_announce_when_relaying(app))  # Type=notify units
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


async def _announce_when_relaying(app: BotApp, patience: float = 15.0) -> None:
    """systemd's READY=1 once the bot has started and its websocket is up (or, past `patience`, once it
    has started at all: a websocket that takes long is /healthz's news, not a failed start)."""
    relaying = asyncio.Event()

    async def watch() -> None:
        await app.started.wait()
        deadline = time.monotonic() + patience
        while not app.any_connected() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        relaying.set()

    watcher = asyncio.ensure_future(watch())
    try:
        await announce(relaying, app.stopping)
    finally:
        watcher.cancel()


def _take_ready_fd() -> int | None:
    value = os.environ.pop(READY_FD_ENV, "")
    return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class Detached:
    pid: int
    log_path: str
    started: bool  # False: still starting after START_PATIENCE seconds


def start_detached(settings: Settings, config_path: str) -> Detached:
    """Launch `run` in the background and wait until it has started (or failed, raising Fatal)."""
    running = read_pid(settings)
    if running is not None:
        raise Fatal(EXIT_RUNTIME, f"already running (pid {running})")
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
        raise Fatal(EXIT_CONFIG, f"config error: state.path: cannot write {log_path}: {e.strerror or e}") \
            from None
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
            raise Fatal(EXIT_RUNTIME, f"the bot (pid {proc.pid}) failed to start and has not exited; "
                                             f"see {log_path}") from None
        raise Fatal(code if code in (EXIT_RUNTIME, EXIT_CONFIG) else EXIT_RUNTIME,
                           f"the bot exited at start with code {code}; see {log_path}")
    return Detached(proc.pid, log_path, started=answer is not None)


def stop_and_wait(settings: Settings, timeout: float) -> str:
    """Signal the running bot and wait until it has drained and exited; returns the line to print."""
    pid = read_pid(settings)
    if pid is None:
        raise Fatal(EXIT_RUNTIME, "not running")
    try:
        os.kill(pid, signal.SIGTERM)
    except PermissionError:
        raise Fatal(EXIT_RUNTIME, f"not allowed to stop pid {pid} (another user's process); "
                                         f"run stop as its user") from None
    except ProcessLookupError:
        return f"stopped (pid {pid})"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"stopped (pid {pid}){_left_behind(settings)}"
        time.sleep(0.1)
    raise Fatal(EXIT_RUNTIME, f"pid {pid} did not exit within {timeout:.0f} s")


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
