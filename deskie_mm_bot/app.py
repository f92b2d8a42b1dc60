"""Wiring and lifecycle: named start and stop steps, one event loop, no zombie.

Start: open the store -> log in to Mattermost (each workspace) -> serve HTTP -> start the relay loops
and the scheduler -> connect the websockets. Stop (SIGTERM/SIGINT): stop intake -> let in-flight work
finish or park it (within a deadline) -> close clients -> close the store. A loop that dies, or a
credential that is rejected, stops the whole process with a non-zero exit code rather than leaving it
idle; with several workspaces, one that cannot work is reported and retried while the others go on,
and the process stops only when none of them can work (workspace.py).

Exit codes: 0 stopped on request; 1 runtime failure (credentials rejected, a loop died, cannot bind);
2 configuration that the services reject (for example an unknown default group).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from . import errors, observe
from .blocking import off_loop
from .config import Settings
from .deskie.client import DeskieClient, DeskieError
from .deskie.files import AnswerFile, FileFetcher
from .deskie.helpdesk import DeskieHelpdesk
from .deskie.ratebudget import RateBudget
from .deskie.staff import StaffNames
from .errors import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME, Fatal
from .mattermost.rest import MattermostUnavailable
from .mattermost.websocket import MattermostWebsocket
from .metrics import Metrics
from .relay.relay import Relay, queued
from .server import build_app
from .store import Store
from .store.cursors import catchup_floor_name
from .supervise import Supervisor
from .workspace import StartAborted, Workspace, pause

log = logging.getLogger(__name__)

DRAIN_DEADLINE = 10.0
CATCHUP_FLOOR = catchup_floor_name()  # the single form's (tests and the benchmark set it)
LOGIN_PATIENCE = 60.0
FIRST_POLL_PATIENCE = 10.0


class BotApp:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = Metrics()
        self.stopping = asyncio.Event()
        self.started = asyncio.Event()
        self.store: Store | None = None
        self.supervisor = Supervisor(self.stopping, self._record_error)
        self.fail, self._ended_by, self._spawn, self._job = (
            self.supervisor.fail, self.supervisor.ended_by, self.supervisor.spawn, self.supervisor.job)
        self.workspaces: list[Workspace] = []
        self.deskie: DeskieClient | None = None
        # Calls waiting for rate budget hold a thread each: room enough that a customer's write
        # never queues behind them for a thread (the budget, not the pool, decides who goes first).
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="deskie")
        self._runner: web.AppRunner | None = None
        self.scheduler: AsyncIOScheduler | None = None

    @property
    def several(self) -> bool:
        return self.settings.several

    @property
    def ws(self) -> MattermostWebsocket | None:
        """The first workspace's websocket (the only one in the single form)."""
        return self.workspaces[0].ws if self.workspaces else None

    @property
    def rest(self) -> Any:
        return self.workspaces[0].rest if self.workspaces else None

    def any_connected(self) -> bool:
        return any(w.ws is not None and w.ws.connected.is_set() for w in self.workspaces)

    def workspace(self, name: str) -> Workspace:
        return next(w for w in self.workspaces if w.name == name)

    # ---- lifecycle ------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stopping.set()

    @property
    def exit_code(self) -> int:
        return self.supervisor.exit_code

    @property
    def exit_message(self) -> str:
        return self.supervisor.exit_message

    def _record_error(self, source: str, message: str) -> None:
        if self.store is not None:
            self.store.record_error(source, message)

    async def run(self) -> int:
        try:
            await self._start()
            self.started.set()
            await self.stopping.wait()
        except StartAborted:
            log.info("stop requested during start-up")
        except MattermostUnavailable as e:
            self.fail(EXIT_RUNTIME, f"cannot reach Mattermost at {self.settings.workspaces[0].url}: {e}")
        except OSError as e:
            self.fail(EXIT_RUNTIME, f"start-up failed: {e}")
        except (errors.Fatal, errors.CredentialsRejected, errors.ConfigError) as e:
            self._ended_by(e)
        except Exception as e:
            log.exception("start-up failed")
            self.fail(EXIT_RUNTIME, f"internal error at start-up: {type(e).__name__}: {e}")
        finally:
            await self._stop()
        return self.exit_code

    async def _start(self) -> None:
        s = self.settings
        # 1. store
        try:
            self.store = store = Store(s.state.path, clock=self.clock)
        except (sqlite3.Error, OSError) as e:
            raise Fatal(EXIT_CONFIG, f"config error: state.path: cannot open {s.state.path}: {e}") from None
        # 2. Mattermost: each workspace's edge; the single one must log in before anything else starts
        d = s.deskie
        verify: bool | str = False if d.insecure else (d.ca_file or True)
        files = FileFetcher(d.url, d.staff_email, d.api_key, verify=verify)

        async def answer_file(attachment: dict[str, Any], max_bytes: int) -> AnswerFile:
            return await off_loop(self.pool, files.fetch, attachment, max_bytes)

        self.workspaces = [Workspace(ws, s.chats, store, stopping=self.stopping, answer_files=answer_file,
                                     on_recorded=self._recorded, on_catch_up_failed=self._catch_up_failed,
                                     clock=self.clock) for ws in s.workspaces]
        if not self.several:
            await self.workspaces[0].connect(LOGIN_PATIENCE)
        # 3. Deskie client and relays
        self.deskie = DeskieClient(d.url, d.staff_email, d.api_key, budget=RateBudget(d.rate_limit_per_minute),
                                   verify=verify)
        self.helpdesk = DeskieHelpdesk(self.deskie, d.channel, self.pool,
                                       get_setting=store.get_cursor, set_setting=store.set_cursor,
                                       default_group=d.default_group)
        self.relay = relay = Relay(
            store, self.helpdesk, self.workspaces, thread_mode=s.chats.reply_mode == "thread",
            reactions=s.chats.reactions, idle_timeout=s.chats.idle_timeout,
            names=StaffNames(self.deskie, self.pool) if s.chats.agent_name else None, clock=self.clock,
        )
        # The parts tests and the scheduler reach for by name.
        self.inbound, self.outbound, self.reconciler, self.sweeper = (
            relay.inbound, relay.outbound, relay.reconciler, relay.sweeper)
        self.metrics.read_totals_from(self.metric_totals)
        # 4. HTTP
        app = build_app(s.webhook.secret, relay.answers, self.health, self.metrics, self.refresh_metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.webhook.host, s.webhook.port)
        try:
            await site.start()
        except OSError as e:
            raise Fatal(EXIT_RUNTIME, f"cannot listen on {s.webhook.listen} (webhook.listen): {e.strerror or e}") from None
        # 5. loops
        self._spawn("inbound", self.inbound.run(self.stopping))
        self._spawn("outbound", relay.run_outbound(self.stopping, self._job(self.reconciler.poll), FIRST_POLL_PATIENCE))
        self._spawn("group", self._check_groups_soon(), may_end=True)
        self.scheduler = AsyncIOScheduler()
        jobs = (("reconcile", self.reconciler.poll, s.chats.poll_interval),
                ("idle-sweep", self.sweeper.sweep, max(0.5, min(30.0, s.chats.idle_timeout / 10))),
                ("outbox-retry", self._wake_relays, 5.0), ("cursor-flush", self._flush_cursors_job, 1.0))
        for name, fn, every in jobs:
            self.scheduler.add_job(self._job(fn), "interval", seconds=every, id=name, max_instances=1, coalesce=True)
        self.scheduler.start()
        # 6. websockets (intake)
        for w in self.workspaces:
            if self.several:
                self._spawn(f"workspace {w.name}", w.serve(on_rejected=self._check_any_workspace_works))
            else:
                self._spawn("websocket", w.run())
        log.info("deskie-mm-bot running; webhook on http://%s/deskie/webhook/<secret>", s.webhook.listen)

    def _recorded(self) -> None:
        self.metrics.posts_recorded.inc()
        self.inbound.wake()

    def _check_any_workspace_works(self) -> None:
        """Several workspaces: a refused token is that workspace's problem, until every one is refused."""
        if all(w.rejected for w in self.workspaces):
            self.fail(EXIT_RUNTIME, "every workspace's bot token is rejected: "
                      + "; ".join(f"{w.name}: {w.problem}" for w in self.workspaces))

    def _catch_up_failed(self, w: Workspace, exc: BaseException) -> None:
        if isinstance(exc, errors.CredentialsRejected):
            if not self.several:
                self.fail(EXIT_RUNTIME, str(exc))
                return
            w.problem, w.rejected = str(exc), True
            self._check_any_workspace_works()
        else:
            self.fail(EXIT_RUNTIME, f"internal error: the catch-up{f' of {w.name}' if w.name else ''} died: "
                      f"{type(exc).__name__}: {exc}")

    async def _stop(self) -> None:
        log.info("stopping: intake first, then what is queued (up to %.0f s)", DRAIN_DEADLINE)
        deadline = time.monotonic() + DRAIN_DEADLINE
        for w in self.workspaces:
            await w.stop()
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                self.scheduler.shutdown(wait=False)
        if self._runner is not None:
            await self._runner.cleanup()
        drain = self.exit_code == EXIT_OK and self.started.is_set()
        if self.deskie is not None:
            if drain:
                # Requests still go out, but a failing Deskie is not retried: what it will not take
                # now stays in the store for the next start.
                self.deskie.fail_fast()
            else:
                self.deskie.stop_retrying()
        for w in self.workspaces:
            w.rest.stop_retrying()
        # The relay loops finish the pass they are in.
        drain = await self.supervisor.finish(deadline, time.monotonic) and drain
        if drain:
            with contextlib.suppress(Exception):
                await self.relay.drain(deadline)
        if self.deskie is not None:
            self.deskie.stop_retrying()
        if self.store is not None:
            to_deskie, to_mm = self.queued()
            if to_deskie or to_mm:
                log.info("left for the next start: %d message(s) to Deskie, %d to Mattermost", to_deskie, to_mm)
        if self.deskie is not None:
            self.deskie.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        for w in self.workspaces:
            await w.close()
        if self.store is not None:
            with contextlib.suppress(sqlite3.Error):
                self.flush_cursors()
            self.store.close()
        log.info("stopped")

    def queued(self) -> tuple[int, int]:
        """Messages waiting (to Deskie, to Mattermost)."""
        assert self.store is not None
        return queued(self.store)

    async def _wake_relays(self) -> None:
        self.relay.wake()

    def flush_cursors(self) -> None:
        for w in self.workspaces:
            w.flush_cursors()

    async def _flush_cursors_job(self) -> None:
        self.flush_cursors()

    async def _check_groups_soon(self) -> None:
        # Checked at start so that a wrong group stops the bot at once, not at the first customer.
        while not self.stopping.is_set():
            try:
                await self.helpdesk.check_groups(self.settings.named_groups())
                return
            except DeskieError as e:
                if isinstance(e, (errors.CredentialsRejected, errors.Stopping)):
                    raise
                log.warning("cannot read Deskie groups yet (%s); will retry", e)
                await pause(self.stopping, 5)

    # ---- health and metrics (observe.py) -----------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        return observe.health(self.workspaces, self.deskie, self.stopping.is_set())

    def metric_totals(self) -> dict[str, float]:
        return observe.totals(self.workspaces, self.relay)

    def refresh_metrics(self) -> None:
        if self.store is not None:
            observe.refresh(self.metrics, self.store, self.workspaces, self.deskie)


__all__ = ["BotApp", "Fatal", "EXIT_OK", "EXIT_RUNTIME", "EXIT_CONFIG"]
