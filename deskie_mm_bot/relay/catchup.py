"""Catch-up: posts made while the websocket was away, read over REST, without holding live posts back.

The bot's channel listing (one call per team) carries each channel's `last_post_at`: only a channel
whose newest post is newer than its cursor has its posts read, so a restart costs a few listing calls
plus the channels that changed, not calls per known chat. The reading runs beside live intake; a live
post for a channel still waiting for its catch-up first catches that channel up, so each channel's
posts are taken in order and its cursor never moves past a post that was not recorded.

`last_post_at` moves with new posts only: an edit or deletion made while the bot was away, in a chat
that gets no new post, is not seen until that chat's next post (the posts call then brings it too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..mattermost.events import post_from_dict
from ..mattermost.rest import MattermostAuthError, MattermostRejected, MattermostRest, MattermostUnavailable
from ..model import ChatPost
from ..retry import Backoff
from ..store import Store, channel_cursor_prefix

log = logging.getLogger(__name__)

# A second of overlap: posts sharing the cursor's millisecond are not skipped (dedup by post id).
OVERLAP_MS = 1000


def has_news(channel: dict[str, Any], cursor: int | None, floor: int) -> bool:
    """Whether the channel has a post the bot has not seen (a server without the field: assume so)."""
    if "last_post_at" not in channel:
        return True
    return int(channel.get("last_post_at") or 0) > (floor if cursor is None else cursor)


def changed_since(post: ChatPost, since_ms: int) -> bool:
    """Whether a post that `since=` returned was made, edited or deleted after `since_ms`. The list also
    holds posts that only look modified: a thread root a new reply bumped (even one from before the bot's
    first start), a post someone reacted to. Those were seen already, or are history: never a new message."""
    if post.original_id:
        return False  # an edit-history copy; the edited post itself is in the list too
    return max(post.create_at_ms, post.edit_at_ms, post.delete_at_ms) > since_ms


class CatchUp:
    def __init__(
        self,
        store: Store,
        rest: MattermostRest,
        take: Callable[[ChatPost], Awaitable[None]],
        *,
        team_id: str,
        floor: Callable[[], int],
        on_fatal: Callable[[BaseException], None],
        before_plan: Callable[[], None] = lambda: None,
        workspace: str = "",
    ) -> None:
        self.store = store
        self.workspace = workspace
        self.cursor_prefix = channel_cursor_prefix(workspace)
        self.rest = rest
        self.take = take  # records one post, never moves the channel's cursor
        self.team_id = team_id
        self.floor = floor
        self.on_fatal = on_fatal
        self.before_plan = before_plan  # writes the cursors live intake holds, so the plan sees them
        # Channels still to read: the listed channel, or None when it must be fetched first.
        self._pending: dict[str, dict[str, Any] | None] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()
        self.channels_read = 0
        self.posts_seen = 0

    # ---- planning (in the websocket's hello; a few calls) ----------------------------------------
    async def plan(self) -> int:
        """Mark the channels with posts the bot has not seen; returns how many. Raises
        MattermostUnavailable when the listing cannot be read (the next connection tries again)."""
        self.before_plan()
        listed: dict[str, dict[str, Any]] = {}
        listing_ok = True
        try:
            for team in await self.rest.teams():
                if self.team_id and team["id"] != self.team_id:
                    continue
                for ch in await self.rest.my_channels(team["id"]):
                    listed.setdefault(ch["id"], ch)
        except MattermostRejected as e:
            log.info("cannot list the bot's channels (%s); catching up the channels it knows", e)
            listing_ok = False
        cursors = self.store.channel_cursors(self.workspace)
        floor = self.floor()
        marked = 0
        for ch in listed.values():
            if has_news(ch, cursors.get(ch["id"]), floor):
                self._pending[ch["id"]] = ch
                marked += 1
        # Known channels the listing does not hold: the bot left them, or the server cannot list.
        # Without a listing every known channel is looked at; with one, only those with an open chat.
        ws = self.workspace
        wanted = self.store.known_channels(ws) if not listing_ok else self.store.chat_channels(ws)
        for channel_id in wanted:
            if channel_id not in listed and channel_id not in self._pending:
                self._pending[channel_id] = None
                marked += 1
        if self._pending:
            self.idle.clear()
        log.info("catch-up over REST: %d of %d listed channel(s) changed while the bot was away; %d to read",
                 sum(1 for c in self._pending.values() if c is not None), len(listed), len(self._pending))
        return marked

    def start(self) -> None:
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._drain(), name="catch-up")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # ---- live intake asks first ------------------------------------------------------------------
    async def before_live(self, channel_id: str) -> None:
        """A live post for a channel still waiting for its catch-up: catch that channel up first."""
        if channel_id in self._pending:
            await self._channel(channel_id)

    # ---- reading ---------------------------------------------------------------------------------
    async def _drain(self) -> None:
        backoff = Backoff(base=1.0, cap=30.0)
        try:
            while self._pending:
                channel_id = next(iter(self._pending))
                try:
                    await self._channel(channel_id)
                    backoff.reset()
                except (MattermostUnavailable, ConnectionResetError) as e:
                    # Left pending: tried again after a pause (or first by a live post of that channel).
                    delay = backoff.next_delay()
                    log.warning("catch-up of channel %s failed (%s); retrying in %.0f s", channel_id, e, delay)
                    await asyncio.sleep(delay)
            log.info("catch-up done: %d channel(s) read, %d post(s) looked at",
                     self.channels_read, self.posts_seen)
        except asyncio.CancelledError:
            raise
        except MattermostAuthError as e:
            self.on_fatal(e)
        except Exception as e:  # a defect must not leave the rest of the channels unread silently
            log.exception("catch-up failed")
            self.on_fatal(e)
        finally:
            if not self._pending:
                self.idle.set()

    async def _channel(self, channel_id: str) -> None:
        lock = self._locks.setdefault(channel_id, asyncio.Lock())
        try:
            async with lock:
                if channel_id not in self._pending:
                    return  # done meanwhile
                channel = self._pending[channel_id]
                cursor_text = self.store.get_cursor(self.cursor_prefix + channel_id)
                cursor = int(cursor_text) if cursor_text is not None else None
                if channel is None:
                    try:
                        channel = await self.rest.get_channel(channel_id, fresh=True)  # the cached one is stale
                    except MattermostRejected:
                        self._pending.pop(channel_id, None)
                        return
                    if not has_news(channel, cursor, self.floor()):
                        self._pending.pop(channel_id, None)
                        return
                await self._read(channel, cursor)
                self._pending.pop(channel_id, None)
        finally:
            if channel_id not in self._pending and not lock.locked():
                self._locks.pop(channel_id, None)
            if not self._pending:
                self.idle.set()

    async def _read(self, channel: dict[str, Any], cursor: int | None) -> None:
        since = (cursor if cursor is not None else self.floor()) - OVERLAP_MS
        try:
            posts = await self.rest.posts_since(channel["id"], since)
        except MattermostRejected as e:  # the bot left the channel, or it is gone
            log.info("catch-up skips channel %s: %s", channel["id"], e)
            return
        self.channels_read += 1
        # The listing may hold more channels than the client's cache: keep this one for its posts.
        self.rest.remember_channel(channel)
        if cursor is None and channel.get("type") in ("O", "P"):
            posts = self._since_bot_joined(posts)
        for raw in posts:
            self.posts_seen += 1
            post = post_from_dict(
                raw, channel_type=str(channel.get("type", "")), team_id=str(channel.get("team_id") or ""),
                bot_id=self.rest.me["id"], bot_username=self.rest.me["username"],
            )
            if changed_since(post, since):
                await self.take(post)
        if posts:
            # Posts come in creation order but an edited old one carries a late update time: the
            # cursor moves only once the whole list is in, or a crash could skip a post.
            newest = max(max(int(p.get("update_at") or 0), int(p.get("create_at") or 0)) for p in posts)
            self.store.advance_cursor(self.cursor_prefix + channel["id"], newest, refetchable=True)

    def _since_bot_joined(self, posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A channel met for the first time: its history from before the bot joined is not a chat."""
        bot = self.rest.me["id"]
        joined = -1
        for i, p in enumerate(posts):
            props = p.get("props") or {}
            if p.get("type") in ("system_join_channel", "system_add_to_channel") and bot in (
                p.get("user_id") if p.get("type") == "system_join_channel" else None,
                props.get("addedUserId"),
            ):
                joined = i
        return posts[joined + 1:]


__all__ = ["CatchUp", "changed_since", "has_news"]
