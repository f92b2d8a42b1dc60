"""One Mattermost workspace's edge, wired: REST client, websocket, Chat port, intake rules, catch-up
and the channel cursors live intake moves.

The bot serves one workspace (`mattermost:`) or several (`workspaces:`) around one Deskie account.
With one, a workspace that cannot work ends the process (exit 1), as before. With several, a workspace
that is unreachable or rejects its token is reported (`problem`, `/healthz`, `status`) and retried with
backoff while the others go on; the app stops only when none of them can work any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import errors
from .config import ChatsSettings, WorkspaceSettings
from .health import LinkState, WorkspaceHealth
from .mattermost.chat import AnswerFiles, MattermostChat, channel_name, person_name
from .mattermost.events import post_from_event
from .mattermost.rest import (
    MattermostAuthError,
    MattermostRejected,
    MattermostRest,
    MattermostUnavailable,
    ssl_context,
)
from .mattermost.websocket import MattermostWebsocket
from .model import ChatPost, Customer, CustomerKind, named
from .relay.catchup import CatchUp
from .relay.intake import Intake, IntakeRules
from .retry import Backoff
from .store import Store, catchup_floor_name, channel_cursor_prefix

log = logging.getLogger(__name__)

RETRY_CAP = 300.0  # a failed workspace (several form) is tried again at least every five minutes


class StartAborted(errors.Stopping):
    """A stop was requested while the bot was still starting."""


async def unless_stopping(coro: Awaitable[Any], stopping: asyncio.Event) -> Any:
    """Await ``coro``, but give it up (StartAborted) as soon as a stop is requested: a SIGTERM must not
    wait for a hanging server's timeouts and retries."""
    work = asyncio.ensure_future(coro)
    stop = asyncio.ensure_future(stopping.wait())
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


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)


class Workspace:
    def __init__(
        self,
        settings: WorkspaceSettings,
        chats: ChatsSettings,
        store: Store,
        *,
        stopping: asyncio.Event,
        answer_files: AnswerFiles | None,
        on_recorded: Callable[[], None],
        on_catch_up_failed: Callable[[Workspace, BaseException], None] = lambda ws, exc: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.chats = chats
        self.store = store
        self.stopping = stopping
        self.on_recorded = on_recorded  # a post was recorded: wake the inbound relay, count it
        self.clock = clock
        mm = settings
        self.rest = MattermostRest(mm.scheme, mm.host, mm.port, mm.bot_token, ca_file=mm.ca_file,
                                   insecure=mm.insecure, token_key=f"{mm.config_key}.bot_token")
        self.chat = MattermostChat(self.rest, answer_files)
        self.ws: MattermostWebsocket | None = None
        self.intake: Intake | None = None
        self.catchup: CatchUp | None = None
        self.team_id = ""
        self.problem: str | None = None  # why it is not working now (several form), for status and /healthz
        self.rejected = False  # its token was refused the last time it was tried
        self._cursor_marks: dict[str, int] = {}
        self.floor_name = catchup_floor_name(self.name)
        # The catch-up beside live intake died: the app decides what that means.
        self.on_catch_up_failed = on_catch_up_failed
        if store.get_cursor(self.floor_name) is None:
            # History from before the workspace's first start is not relayed (set at start, not at the
            # first login: a workspace down at its first start has its first start all the same).
            store.set_cursor(self.floor_name, str(int(clock() * 1000)))

    @property
    def label(self) -> str:
        return self.name or "mattermost"

    # ---- start ------------------------------------------------------------------------------------
    async def connect(self, patience: float) -> None:
        """Log in (waiting out a restarting server for up to `patience` seconds), find the team, and
        set up intake and the websocket. Raises what stops this workspace from working."""
        me = await self._login(patience)
        mm = self.settings
        if mm.team:
            named_teams = [t for t in await self.rest.teams() if t.get("name") == mm.team]
            if not named_teams:
                raise errors.ConfigError(f"the bot is not in a team named '{mm.team}'", f"{mm.config_key}.team")
            self.team_id = str(named_teams[0]["id"])
        log.info("logged in to Mattermost%s as @%s", f" ({self.name})" if self.name else "", me.get("username"))
        self.intake = Intake(self.store, self.chat, IntakeRules(
            bot_id=str(me["id"]), reply_mode=self.chats.reply_mode, mention_only=self.chats.mention_only,
            team_id=self.team_id, workspace=self.name,
        ))
        self.catchup = CatchUp(
            self.store, self.chat, lambda post: self._take(post, advance=False), team_id=self.team_id,
            floor=self.floor, on_fatal=self._catch_up_failed, before_plan=self.flush_cursors,
            workspace=self.name,
        )
        self.ws = MattermostWebsocket(
            mm.url, mm.bot_token, self.on_event, self.catch_up,
            ssl_ctx=ssl_context(mm.ca_file, mm.insecure) if mm.scheme == "https" else None,
            ping_interval=mm.ping_interval,
            ping_timeout=max(1.0, mm.ping_interval / 3),
            check_token=self._check_token,
            token_key=f"{mm.config_key}.bot_token",
        )

    async def _login(self, patience: float) -> dict[str, Any]:
        backoff = Backoff(base=1.0, cap=15.0)
        deadline = self.clock() + patience
        while True:
            try:
                me: dict[str, Any] = await unless_stopping(self.rest.login(), self.stopping)
                return me
            except MattermostUnavailable as e:
                if self.stopping.is_set():
                    raise StartAborted() from None
                if self.clock() > deadline:
                    raise
                delay = backoff.next_delay()
                log.warning("Mattermost%s not reachable yet (%s); retrying in %.0f s",
                            f" {self.name}" if self.name else "", e, delay)
                await pause(self.stopping, delay)

    def floor(self) -> int:
        return int(self.store.get_cursor(self.floor_name) or 0)

    async def run(self) -> None:
        """The websocket until stop (one workspace: a rejected token ends the process)."""
        assert self.ws is not None
        await self.ws.run()

    async def serve(self, on_rejected: Callable[[], None]) -> None:
        """Several workspaces: connect and relay until stop; what stops this workspace is reported and
        retried with backoff, never the end of the process (`on_rejected` lets the app decide whether
        any workspace still works)."""
        backoff = Backoff(base=2.0, cap=RETRY_CAP)
        while not self.stopping.is_set():
            try:
                if self.ws is None:
                    await self.connect(patience=0)
                else:
                    await self.rest.login()  # is the token taken again? (raises when not)
                # Logged in: whatever stopped this workspace is over.
                self.problem, self.rejected = None, False
                backoff.reset()
                await self.run()
                return
            except errors.Stopping:
                return
            except MattermostAuthError as e:
                self.problem, self.rejected = str(e), True
                on_rejected()
            except (errors.Unavailable, errors.Rejected, errors.ConfigError, OSError) as e:
                self.problem = f"{type(e).__name__}: {e}" if isinstance(e, OSError) else str(e)
            delay = backoff.next_delay()
            log.warning("workspace %s is not working (%s); trying again in %.0f s", self.name, self.problem, delay)
            self.store.record_error(f"mattermost:{self.name}", self.problem or "")
            await pause(self.stopping, delay)

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.stop()
        if self.catchup is not None:
            await self.catchup.stop()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.rest.close()

    # ---- intake -----------------------------------------------------------------------------------
    async def on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") not in ("posted", "post_edited", "post_deleted"):
            return
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
        assert self.intake is not None
        try:
            if await self.intake.accept(post):
                self.on_recorded()
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
        if marks:
            prefix = channel_cursor_prefix(self.name)
            self.store.advance_cursors({prefix + ch: v for ch, v in marks.items()}, refetchable=True)

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
        self.on_catch_up_failed(self, exc)

    async def _check_token(self) -> None:
        with contextlib.suppress(MattermostUnavailable):
            await self.rest.login()

    # ---- what the core asks of this workspace -----------------------------------------------------
    async def fetch_file(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        return await self.chat.fetch_file(file_id)

    async def route_of(self, channel_id: str) -> str | None:
        """The group a chat started in this channel goes to: its route (by the channel's URL name) for
        public and private channels, else the workspace's default group; None: deskie.default_group."""
        if self.settings.routes:
            try:
                kind, name = await self.chat.channel_kind(channel_id)
            except errors.Rejected as e:
                # The message is not held for it: its case goes to the default group.
                log.warning("channel %s cannot be read for its route (%s): the default group it is", channel_id, e)
                kind, name = "", ""
            if kind in ("O", "P"):
                routed = self.settings.route_for(name)
                if routed is not None:
                    return routed
        return self.settings.default_group

    async def place_of(self, who: Customer) -> tuple[str, str] | None:
        """(channel id, full name) of the chat with this customer: the DM with the person, or the channel
        while the bot is in it. None when this workspace has no such place."""
        if not self.rest.me.get("id"):
            raise errors.Unavailable(f"workspace {self.label} is not connected yet")
        try:
            if who.kind is CustomerKind.PERSON:
                user = await self.rest.get_user(who.id)
                channel = await self.rest.direct_channel(who.id)
                return str(channel["id"]), named(person_name(user), self.name)
            channel = await self.rest.get_channel(who.id, fresh=True)
            if not await self.rest.is_member(who.id, self.rest.me["id"]):
                return None
            return str(channel["id"]), named(channel_name(channel), self.name)
        except MattermostRejected:
            return None

    def health(self) -> WorkspaceHealth:
        ws = self.ws
        return WorkspaceHealth(
            name=self.name,
            websocket=ws.state() if ws is not None else LinkState.DISCONNECTED,
            reconnects=ws.reconnects if ws is not None else 0,
            problem=self.problem,
        )
