"""Wiring and lifecycle: named start and stop steps, one event loop, no zombie.

Start: open the store -> log in to Mattermost -> serve HTTP -> start the relay loops and the scheduler
-> connect the websocket. Stop (SIGTERM/SIGINT): stop intake -> let in-flight work finish or park it
(within a deadline) -> close clients -> close the store. A loop that dies, or a credential that is
rejected, stops the whole process with a non-zero exit code rather than leaving it idle.

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

from . import errors
from .blocking import off_loop
from .config import Settings
from .deskie.client import (
    DeskieAuthError,
    DeskieClient,
    DeskieError,
    DeskieRejected,
    DeskieUnavailable,
    Stopping,
)
from .deskie.files import FileFetcher, FileGone, FileTooLarge
from .deskie.helpdesk import DeskieHelpdesk
from .deskie.ratebudget import BudgetClosed, RateBudget
from .deskie.staff import StaffNames
from .deskie.webhook import WebhookEvent
from .errors import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME, Fatal
from .health import Health, LinkState, ServiceState
from .mattermost.events import post_from_event
from .mattermost.rest import (
    MattermostAuthError,
    MattermostRejected,
    MattermostRest,
    MattermostUnavailable,
    ssl_context,
)
from .mattermost.websocket import MattermostWebsocket
from .metrics import Metrics
from .model import CaseSummary, ChatPost, ConvKey, Customer, CustomerKind
from .relay.catchup import CatchUp
from .relay.inbound import FileUnavailable, InboundRelay
from .relay.intake import Intake, IntakeRules, channel_name, person_name
from .relay.lifecycle import IdleSweeper
from .relay.outbound import FileNotBrought, OutboundRelay, PermanentPostError, WebhookRefused
from .relay.reactions import ReactionRefused, StatusReactions
from .relay.reconcile import Reconciler
from .retry import Backoff
from .server import build_app
from .store import Conversation, Store

log = logging.getLogger(__name__)

DRAIN_DEADLINE = 10.0
CATCHUP_FLOOR = "mm.catchup_floor_ms"
LOGIN_PATIENCE = 60.0
FIRST_POLL_PATIENCE = 10.0


class StartAborted(errors.Stopping):
    """A stop was requested while the bot was still starting."""


DEFAULT_MAX_FILE_SIZE = 104857600  # Mattermost's FileSettings.MaxFileSize default (100 MiB)


class MattermostPoster:
    """What the outbound relay needs from Mattermost, with errors sorted into retry-or-give-up."""

    def __init__(self, rest: MattermostRest, files: FileFetcher | None = None, pool: Any = None) -> None:
        self.rest = rest
        self.files = files
        self.pool = pool
        self._limits: tuple[int, bool] | None = None

    @property
    def bot_id(self) -> str:
        return str(self.rest.me.get("id", ""))

    async def create_post(
        self, channel_id: str, message: str, *, root_id: str, props: dict[str, Any], pending_post_id: str,
        file_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        try:
            return await self.rest.create_post(
                channel_id, message, root_id=root_id, props=props, pending_post_id=pending_post_id,
                file_ids=file_ids,
            )
        except MattermostRejected as e:
            if e.status in (400, 403, 404):
                raise PermanentPostError(str(e)) from None
            raise

    async def file_limits(self) -> tuple[int, bool]:
        """(MaxFileSize, EnableFileAttachments) from the server's client config; defaults if unreadable."""
        if self._limits is None:
            try:
                cfg = await self.rest.client_config()
            except (MattermostRejected, MattermostUnavailable) as e:
                log.info("cannot read Mattermost's file limits (%s); assuming its defaults", e)
                return DEFAULT_MAX_FILE_SIZE, True
            size = str(cfg.get("MaxFileSize") or "")
            self._limits = (int(size) if size.isdigit() and int(size) > 0 else DEFAULT_MAX_FILE_SIZE,
                            str(cfg.get("EnableFileAttachments", "true")).lower() != "false")
        return self._limits

    async def bring_file(self, channel_id: str, attachment: dict[str, Any]) -> str:
        if self.files is None:
            raise FileNotBrought("files are not brought across")
        max_size, enabled = await self.file_limits()
        if not enabled:
            raise FileNotBrought("file attachments are turned off in Mattermost")
        limit_text = f"over Mattermost's {_size_text(max_size)} limit"
        try:
            f = await off_loop(self.pool, self.files.fetch, attachment, max_size)
        except FileTooLarge:
            raise FileNotBrought(limit_text) from None
        except FileGone as e:
            raise FileNotBrought(f"no longer available in Deskie: {e}") from None
        try:
            info = await self.rest.upload_file(channel_id, f.name, f.data, f.mime_type)
        except MattermostRejected as e:
            if e.status == 413:
                self._limits = None  # the server's limit may have changed: read it again next time
                raise FileNotBrought(limit_text) from None
            if e.error_id == "api.file.attachments.disabled.app_error":
                self._limits = None
                raise FileNotBrought("file attachments are turned off in Mattermost") from None
            raise FileNotBrought(f"Mattermost refused the upload: HTTP {e.status}") from None
        return str(info["id"])

    async def react(self, post_id: str, emoji_name: str) -> None:
        try:
            await self.rest.add_reaction(post_id, emoji_name)
        except MattermostRejected as e:
            raise ReactionRefused(f"HTTP {e.status} {e.error_id}") from None

    async def recent_bot_posts(self, channel_id: str, since_ms: int) -> list[dict[str, Any]]:
        posts = await self.rest.posts_since(channel_id, max(0, since_ms))
        # Edit-history copies carry the old props too: only the posts themselves count.
        return [p for p in posts if p.get("user_id") == self.bot_id and not p.get("original_id")]


class BotApp:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = Metrics()
        self.stopping = asyncio.Event()
        self.exit_code = EXIT_OK
        self.exit_message = ""
        self.started = asyncio.Event()
        self._declined_cases: set[int] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self.store: Store | None = None
        self.rest: MattermostRest | None = None
        self.ws: MattermostWebsocket | None = None
        self.catchup: CatchUp | None = None
        self._cursor_marks: dict[str, int] = {}
        self.deskie: DeskieClient | None = None
        # Calls waiting for rate budget hold a thread each: room enough that a customer's write
        # never queues behind them for a thread (the budget, not the pool, decides who goes first).
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="deskie")
        self._runner: web.AppRunner | None = None
        self.scheduler: AsyncIOScheduler | None = None

    # ---- lifecycle ------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stopping.set()

    def fail(self, code: int, message: str) -> None:
        if self.exit_code == EXIT_OK:
            self.exit_code, self.exit_message = code, message
            log.error("%s", message)
        self.stopping.set()

    async def run(self) -> int:
        try:
            await self._start()
            self.started.set()
            await self.stopping.wait()
        except StartAborted:
            log.info("stop requested during start-up")
        except MattermostUnavailable as e:
            self.fail(EXIT_RUNTIME, f"cannot reach Mattermost at {self.settings.mattermost.url}: {e}")
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
            self.store = Store(s.state.path, clock=self.clock)
        except (sqlite3.Error, OSError) as e:
            raise Fatal(EXIT_CONFIG, f"config error: state.path: cannot open {s.state.path}: {e}") from None
        if self.store.get_cursor(CATCHUP_FLOOR) is None:
            # History from before the bot's first start is not relayed.
            self.store.set_cursor(CATCHUP_FLOOR, str(int(self.clock() * 1000)))
        # 2. Mattermost identity
        mm = s.mattermost
        self.rest = MattermostRest(mm.scheme, mm.host, mm.port, mm.bot_token, ca_file=mm.ca_file, insecure=mm.insecure)
        me = await self._login()
        team_id = ""
        if mm.team:
            named = [t for t in await self.rest.teams() if t.get("name") == mm.team]
            if not named:
                raise Fatal(EXIT_CONFIG, f"config error: mattermost.team: the bot is not in a team named '{mm.team}'")
            team_id = str(named[0]["id"])
        log.info("logged in to Mattermost as @%s", me.get("username"))
        # 3. Deskie client and relays
        d = s.deskie
        verify: bool | str = False if d.insecure else (d.ca_file or True)
        self.deskie = DeskieClient(d.url, d.staff_email, d.api_key, budget=RateBudget(d.rate_limit_per_minute), verify=verify)
        self.helpdesk = DeskieHelpdesk(self.deskie, d.channel, self.pool,
                                       get_setting=self.store.get_cursor, set_setting=self.store.set_cursor,
                                       default_group=d.default_group)
        self.intake = Intake(
            self.store,
            self.rest,
            IntakeRules(bot_id=str(me["id"]), reply_mode=s.chats.reply_mode, mention_only=s.chats.mention_only,
                        team_id=team_id),
        )
        self.team_id = team_id
        self.catchup = CatchUp(
            self.store, self.rest, lambda post: self._take(post, advance=False), team_id=team_id,
            floor=lambda: int(self.store.get_cursor(CATCHUP_FLOOR) or 0) if self.store else 0,
            on_fatal=self._catch_up_failed, before_plan=self.flush_cursors,
        )
        self.inbound = InboundRelay(
            self.store, self.helpdesk, self._fetch_file, clock=self.clock,
            route_of=self._route_of if mm.routes else None,
        )
        poster = MattermostPoster(self.rest, FileFetcher(d.url, d.staff_email, d.api_key, verify=verify), self.pool)
        self.reactions = StatusReactions(self.store, poster, enabled=s.chats.reactions, clock=self.clock)
        self.outbound = OutboundRelay(self.store, poster, clock=self.clock,
                                       open_outgoing=self.open_outgoing, on_note=self.inbound.wake,
                                       names=StaffNames(self.deskie, self.pool) if s.chats.agent_name else None,
                                       after_drain=self.reactions.settle)
        self.reconciler = Reconciler(self.store, self.helpdesk, on_new_replies=self.outbound.wake, clock=self.clock,
                                     adopt_unknown=self.adopt_unknown_case)
        self.sweeper = IdleSweeper(self.store, self.helpdesk, s.chats.idle_timeout, clock=self.clock)
        self.metrics.read_totals_from(self.metric_totals)
        # 4. HTTP
        app = build_app(s.webhook.secret, self.outbound, self.health, self.metrics, self.refresh_metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.webhook.host, s.webhook.port)
        try:
            await site.start()
        except OSError as e:
            raise Fatal(EXIT_RUNTIME, f"cannot listen on {s.webhook.listen} (webhook.listen): {e.strerror or e}") from None
        # 5. loops
        self._spawn("inbound", self.inbound.run(self.stopping))
        self._spawn("outbound", self._outbound_after_first_poll())
        self._spawn("group", self._resolve_group_soon())
        self.scheduler = AsyncIOScheduler()
        self.scheduler.add_job(self._job(self.reconciler.poll), "interval", seconds=s.chats.poll_interval,
                               id="reconcile", max_instances=1, coalesce=True)
        sweep_every = max(0.5, min(30.0, s.chats.idle_timeout / 10))
        self.scheduler.add_job(self._job(self.sweeper.sweep), "interval", seconds=sweep_every,
                               id="idle-sweep", max_instances=1, coalesce=True)
        self.scheduler.add_job(self._job(self._wake_relays), "interval", seconds=5, id="outbox-retry",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self._job(self._flush_cursors_job), "interval", seconds=1, id="cursor-flush",
                               max_instances=1, coalesce=True)
        self.scheduler.start()
        # 6. websocket (intake)
        self.ws = MattermostWebsocket(
            mm.url, mm.bot_token, self.on_event, self.catch_up,
            ssl_ctx=ssl_context(mm.ca_file, mm.insecure) if mm.scheme == "https" else None,
            ping_interval=mm.ping_interval,
            ping_timeout=max(1.0, mm.ping_interval / 3),
            check_token=self._check_token,
        )
        self._spawn("websocket", self.ws.run())
        log.info("deskie-mm-bot running; webhook on http://%s/deskie/webhook/<secret>", s.webhook.listen)

    async def _outbound_after_first_poll(self) -> None:
        """A reconciliation at once, and answers wait for it (a few seconds at most): answers given
        while the bot was away come by poll, while their webhooks may be retried at once; the ledger
        then posts them in Deskie's order."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._job(self.reconciler.poll)(), timeout=FIRST_POLL_PATIENCE)
        await self.outbound.run(self.stopping)

    async def _login(self) -> dict[str, Any]:
        """Log in, waiting out a Mattermost that is restarting (up to a minute) before giving up."""
        assert self.rest is not None
        backoff = Backoff(base=1.0, cap=15.0)
        deadline = self.clock() + LOGIN_PATIENCE
        while True:
            try:
                return await self._unless_stopping(self.rest.login())
            except MattermostUnavailable as e:
                if self.stopping.is_set():
                    raise StartAborted() from None
                if self.clock() > deadline:
                    raise
                delay = backoff.next_delay()
                log.warning("Mattermost not reachable yet (%s); retrying in %.0f s", e, delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=delay)

    async def _unless_stopping(self, coro: Any) -> Any:
        """Await ``coro``, but give it up (StartAborted) as soon as a stop is requested: a SIGTERM
        must not wait for a hanging server's timeouts and retries."""
        work = asyncio.ensure_future(coro)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if work.cancelled():
            raise StartAborted()
        return work.result()

    async def _stop(self) -> None:
        log.info("stopping: intake first, then what is queued (up to %.0f s)", DRAIN_DEADLINE)
        deadline = time.monotonic() + DRAIN_DEADLINE
        if self.ws is not None:
            await self.ws.stop()
        if self.catchup is not None:
            await self.catchup.stop()
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
        if self.rest is not None:
            self.rest.stop_retrying()
        pending = [t for t in self._tasks if not t.done()]
        if pending:  # the relay loops finish the pass they are in
            _, still = await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
            for t in still:
                t.cancel()
            await asyncio.gather(*still, return_exceptions=True)
            drain = drain and not still
        if drain:
            with contextlib.suppress(Exception):
                await self._drain_queues(deadline)
        if self.deskie is not None:
            self.deskie.stop_retrying()
        if self.store is not None:
            to_deskie, to_mm = self.queued()
            if to_deskie or to_mm:
                log.info("left for the next start: %d message(s) to Deskie, %d to Mattermost", to_deskie, to_mm)
        if self.deskie is not None:
            self.deskie.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.rest is not None:
            with contextlib.suppress(Exception):
                await self.rest.close()
        if self.store is not None:
            with contextlib.suppress(sqlite3.Error):
                self.flush_cursors()
            self.store.close()
        log.info("stopped")

    def queued(self) -> tuple[int, int]:
        """Messages waiting (to Deskie, to Mattermost)."""
        assert self.store is not None
        return (self.store.count_outbox("pending") + self.store.count_outbox("inflight"),
                self.store.count_replies("pending") + self.store.count_replies("posting"))

    async def _drain_queues(self, deadline: float) -> None:
        """Deliver what is queued while both services answer, until `deadline`. A direction whose
        service fails is left as it is (its messages stay in the store): no retry is waited for."""
        self.inbound.flushing = self.outbound.flushing = True

        async def side(count: Callable[[], int], drain: Callable[[], Any], failures: Callable[[], int]) -> None:
            failed_before = failures()
            while count() and time.monotonic() < deadline:
                before = count()
                try:
                    await drain()
                except (Stopping, BudgetClosed):
                    return
                if count() < before:
                    continue
                if failures() > failed_before:
                    return  # the service failed during this drain: the rest waits for the next start
                # Nothing failed, nothing went: waiting for rate budget, or a write the other side holds.
                await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

        sides = [
            side(lambda: self.queued()[0], self.inbound.drain, lambda: self.inbound.failures),
            side(lambda: self.queued()[1], self.outbound.drain, lambda: self.outbound.failures),
        ]
        tasks = [asyncio.ensure_future(c) for c in sides]
        _, late = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        for t in late:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, name: str, coro: Any) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            if not self.stopping.is_set() and task.get_name() not in ("group",):
                self.fail(EXIT_RUNTIME, f"internal error: the {task.get_name()} loop ended unexpectedly")
            return
        if isinstance(exc, errors.Stopping) and self.stopping.is_set():
            return
        if isinstance(exc, (errors.Fatal, errors.CredentialsRejected, errors.ConfigError)):
            self._ended_by(exc)
        else:
            log.error("the %s loop died", task.get_name(), exc_info=exc)
            self.fail(EXIT_RUNTIME, f"internal error: the {task.get_name()} loop died: {type(exc).__name__}: {exc}")

    def _ended_by(self, exc: BaseException) -> None:
        """An error the bot cannot work past: the exit code and the line come from the error itself."""
        self.fail(errors.exit_code_for(exc), errors.describe(exc))

    def _job(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        async def job() -> None:
            if self.stopping.is_set():
                return
            try:
                await fn()
            except errors.Stopping:
                return
            except (errors.Fatal, errors.CredentialsRejected, errors.ConfigError) as e:
                self._ended_by(e)
            except Exception as e:  # one failing run must not stop the schedule
                log.warning("%s failed: %s: %s", getattr(fn, "__name__", "job"), type(e).__name__, e)
                if self.store is not None:
                    self.store.record_error("scheduler", f"{type(e).__name__}: {e}")

        return job

    async def _fetch_file(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        assert self.rest is not None
        try:
            return await self.rest.get_file(file_id)
        except MattermostRejected as e:
            raise FileUnavailable(f"HTTP {e.status}") from None

    async def _check_token(self) -> None:
        assert self.rest is not None
        with contextlib.suppress(MattermostUnavailable):
            await self.rest.login()

    async def _wake_relays(self) -> None:
        self.inbound.wake()
        self.outbound.wake()

    # ---- Deskie default group ----------------------------------------------------------------------
    async def group_id(self) -> int:
        group = await self.helpdesk.default_group_id()
        for channel, wanted in self.settings.mattermost.routes:
            await self.helpdesk.group_id(wanted, f"mattermost.routes.{channel}")
        return group

    async def _route_of(self, channel_id: str) -> str | None:
        """The group a chat started in this channel goes to (`mattermost.routes`, by the channel's URL
        name); None for DMs, group messages and unrouted channels: the default group."""
        assert self.rest is not None
        channel = await self.rest.get_channel(channel_id)
        if channel.get("type") not in ("O", "P"):
            return None
        return self.settings.mattermost.route_for(str(channel.get("name") or ""))

    async def _resolve_group_soon(self) -> None:
        # Checked at start so that a wrong group stops the bot at once, not at the first customer.
        while not self.stopping.is_set():
            try:
                await self.group_id()
                return
            except DeskieError as e:
                if isinstance(e, (DeskieAuthError, Stopping)):
                    raise
                log.warning("cannot read Deskie groups yet (%s); will retry", e)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=5)

    # ---- Mattermost intake -------------------------------------------------------------------------
    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind not in ("posted", "post_edited", "post_deleted"):
            return
        assert self.rest is not None
        post = post_from_event(event, bot_id=self.rest.me["id"], bot_username=self.rest.me["username"])
        if post is None:
            return
        if self.catchup is not None:
            try:
                await self.catchup.before_live(post.channel_id)
            except MattermostUnavailable as e:
                # Not handled, so not counted: reconnecting resumes from this very event.
                raise ConnectionResetError(f"Mattermost REST unavailable during catch-up: {e}") from None
        await self._take(post)

    async def _take(self, post: ChatPost, *, advance: bool = True) -> None:
        assert self.store is not None
        try:
            if await self.intake.accept(post):
                self.metrics.posts_recorded.inc()
                self.inbound.wake()
        except MattermostUnavailable as e:
            # Not recorded, so not counted as handled: reconnecting resumes from this very event.
            raise ConnectionResetError(f"Mattermost REST unavailable during intake: {e}") from None
        except MattermostRejected as e:
            log.warning("post %s skipped: %s", post.post_id, e)
        except Exception as e:  # one bad event must not stop intake; the next catch-up retries it
            log.exception("post %s could not be taken in", post.post_id)
            self.store.record_error("intake", f"post {post.post_id}: {type(e).__name__}: {e}")
            return
        if advance:
            # Kept here and written about once a second (a commit per post would cap intake): a cursor
            # that lags after a crash only makes the next catch-up re-read a second of posts.
            mark = max(post.update_at_ms, post.create_at_ms)
            if mark > self._cursor_marks.get(post.channel_id, 0):
                self._cursor_marks[post.channel_id] = mark

    def flush_cursors(self) -> None:
        """Write the channel cursors live intake has moved (every post before them is recorded)."""
        marks, self._cursor_marks = self._cursor_marks, {}
        if marks and self.store is not None:
            self.store.advance_cursors({f"mm.channel.{ch}": v for ch, v in marks.items()}, refetchable=True)

    async def _flush_cursors_job(self) -> None:
        self.flush_cursors()

    async def catch_up(self) -> None:
        """Posts made while the websocket was away: the listing tells which channels changed (a few
        calls, here in the hello); reading them runs beside live intake (relay/catchup.py)."""
        assert self.catchup is not None
        try:
            await self.catchup.plan()
        except MattermostUnavailable as e:
            # Forget the connection so the next one is fresh and this catch-up runs again.
            if self.ws is not None:
                self.ws.connection_id = None
            raise ConnectionResetError(f"catch-up failed: {e}") from None
        self.catchup.start()

    def _catch_up_failed(self, exc: BaseException) -> None:
        if isinstance(exc, MattermostAuthError):
            self.fail(EXIT_RUNTIME, str(exc))
        else:
            self.fail(EXIT_RUNTIME, f"internal error: the catch-up died: {type(exc).__name__}: {exc}")

    # ---- outgoing chats ---------------------------------------------------------------------------
    async def open_outgoing(self, event: WebhookEvent) -> Conversation | None:
        """An agent started a case for a Mattermost member or channel: open the chat for it."""
        assert self.store is not None
        if self.store.creating_case_for(event.custom_user_id or ""):
            # Most likely the case this bot is creating right now, answered before Deskie's reply to
            # the create arrived. Not an outgoing chat: refuse for now; reconciliation brings it.
            raise WebhookRefused(503, "case is being created; not accepted yet")
        return await self._open_chat_for_case(event.case_id, event.custom_user_id or "")

    async def adopt_unknown_case(self, case: CaseSummary) -> Conversation | None:
        """Reconciliation met a case of our channel the bot has no chat for: an outgoing chat whose
        webhook was missed, if it was started after the bot's first start and names a member or channel."""
        assert self.store is not None and self.deskie is not None
        case_id = case.case_id
        if not case_id or case_id in self._declined_cases:
            return None
        created = case.created_at
        floor = int(self.store.get_cursor(CATCHUP_FLOOR) or 0) / 1000
        # Deskie's times are whole seconds: a case of the very second the bot first started counts.
        if created is None or created < floor - 1:
            self._declined_cases.add(case_id)
            return None
        try:
            user = await off_loop(self.pool, self.deskie.get_user, case.user_id)
        except DeskieRejected as e:
            log.info("case %s: its Deskie user cannot be read (%s); not opened as a chat", case_id, e)
            self._declined_cases.add(case_id)
            return None
        custom = str(user.get("user_custom_id") or "")
        if self.store.creating_case_for(custom):
            return None  # ours, still being created: the next poll sees it recorded
        conv = await self._open_chat_for_case(case_id, custom)
        if conv is None:
            self._declined_cases.add(case_id)
        return conv

    async def _open_chat_for_case(self, case_id: int, custom: str) -> Conversation | None:
        assert self.rest is not None and self.store is not None and self.deskie is not None
        who = Customer.parse(custom)
        if who is None:
            return None
        try:
            if who.kind is CustomerKind.PERSON:
                user = await self.rest.get_user(who.id)
                channel = await self.rest.direct_channel(who.id)
                full_name = person_name(user)
            else:
                channel = await self.rest.get_channel(who.id, fresh=True)
                if not await self.rest.is_member(who.id, self.rest.me["id"]):
                    return None
                full_name = channel_name(channel)
        except MattermostRejected:
            return None
        try:
            case = await off_loop(self.pool, self.deskie.get_case, case_id)
        except DeskieRejected:
            return None
        except DeskieUnavailable as e:
            raise WebhookRefused(503, f"Deskie unavailable: {e}") from None
        existing = self.store.conversation_by_case(case_id)
        if existing is not None:  # recorded meanwhile through the other door
            return existing
        thread_mode = self.settings.chats.reply_mode == "thread"
        key = ConvKey.outgoing(case_id) if thread_mode else ConvKey.channel(channel["id"])
        current = self.store.current_conversation(key)
        if current is not None:
            self.store.set_conversation_state(current.id, "closed")
        log.info("agent started case %s with %s: opening the chat", case_id, full_name)
        return self.store.create_conversation(
            conv_key=key,
            channel_id=channel["id"],
            reply_root_id="",
            user_custom_id=custom,
            user_full_name=full_name,
            case_id=case_id,
            case_number=str(case.get("case_number") or ""),
            deskie_user_id=int(case.get("user_id") or 0) or None,
            last_message_id=0,
            case_updated_at=None,
            last_speaker="agent",
        )

    # ---- health and metrics -----------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        state = Health(
            websocket=self.ws.state() if self.ws is not None else LinkState.DISCONNECTED,
            reconnects=self.ws.reconnects if self.ws is not None else 0,
            deskie=self.deskie.state() if self.deskie is not None else ServiceState.UNKNOWN,
            deskie_last_error=self.deskie.last_error if self.deskie is not None else None,
            stopping=self.stopping.is_set(),
        )
        return state.ok, state.as_json()

    def metric_totals(self) -> dict[str, float]:
        ws = self.ws
        return {
            "deskie_mm_websocket_reconnects": ws.reconnects if ws else 0,
            "deskie_mm_websocket_resyncs": ws.resyncs if ws else 0,
            "deskie_mm_deskie_writes": self.inbound.sent_batches,
            "deskie_mm_answers_posted": self.outbound.posted,
            "deskie_mm_reconcile_polls": self.reconciler.polls,
        }

    def refresh_metrics(self) -> None:
        if self.store is None:
            return
        m = self.metrics
        m.outbox_pending.set(self.store.count_outbox("pending") + self.store.count_outbox("inflight"))
        m.replies_pending.set(self.store.count_replies("pending") + self.store.count_replies("posting"))
        m.open_chats.set(self.store.count_conversations("active"))
        if self.deskie:
            m.budget_available.set(self.deskie.budget.available())


def _size_text(n: int) -> str:
    if n >= 1048576:
        return f"{n / 1048576:.0f} MB"
    return f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} bytes"


__all__ = ["BotApp", "Fatal", "EXIT_OK", "EXIT_RUNTIME", "EXIT_CONFIG", "DeskieRejected"]
