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
from typing import Protocol

from .. import errors
from ..model import ChannelMark, ChatPost
from ..retry import Backoff
from ..store import Store, channel_cursor_prefix

log = logging.getLogger(__name__)

# A second of overlap: posts sharing the cursor's millisecond are not skipped (dedup by post id).
OVERLAP_MS = 1000


class Listing(Protocol):
    """What a catch-up reads of one workspace's Mattermost (mattermost/chat.py)."""

    async def listed_channels(self, team_id: str = "") -> dict[str, ChannelMark] | None:
        """The bot's channels with their newest post's time; None when the server will not list them."""
        ...

    async def channel_mark(self, channel_id: str) -> ChannelMark | None:
        """One channel read afresh; None when the bot cannot see it."""
        ...

    async def posts_since(self, channel: ChannelMark, since_ms: int, *, first_read: bool) -> list[ChatPost] | None:
        """The channel's posts changed since `since_ms`, oldest first (on a first read of a channel,
        only those after the bot joined); None when the server refuses."""
        ...


def has_news(channel: ChannelMark, cursor: int | None, floor: int) -> bool:
    """Whether the channel has a post the bot has not seen (a server without the field: assume so)."""
    if channel.last_post_at is None:
        return True
    return channel.last_post_at > (floor if cursor is None else cursor)


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
        chat: Listing,
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
        self.chat = chat
        self.take = take  # records one post, never moves the channel's cursor
        self.team_id = team_id
        self.floor = floor
        self.on_fatal = on_fatal
        self.before_plan = before_plan  # writes the cursors live intake holds, so the plan sees them
        # Channels still to read: the listed channel, or None when it must be fetched first.
        self._pending: dict[str, ChannelMark | None] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()
        self.channels_read = 0
        self.posts_seen = 0

    # ---- planning (in the websocket's hello; a few calls) ----------------------------------------
    async def plan(self) -> int:
        """Mark the channels with posts the bot has not seen; returns how many. Raises
        errors.Unavailable when the listing cannot be read (the next connection tries again)."""
        self.before_plan()
        listing = await self.chat.listed_channels(self.team_id)
        listing_ok = listing is not None
        if listing is None:
            log.info("catching up the channels the bot knows instead")
        listed = listing or {}
        cursors = self.store.channel_cursors(self.workspace)
        floor = self.floor()
        marked = 0
        for ch in listed.values():
            if has_news(ch, cursors.get(ch.id), floor):
                self._pending[ch.id] = ch
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
                except (errors.Unavailable, ConnectionResetError) as e:
                    # Left pending: tried again after a pause (or first by a live post of that channel).
                    delay = backoff.next_delay()
                    log.warning("catch-up of channel %s failed (%s); retrying in %.0f s", channel_id, e, delay)
                    await asyncio.sleep(delay)
            log.info("catch-up done: %d channel(s) read, %d post(s) looked at",
                     self.channels_read, self.posts_seen)
        except asyncio.CancelledError:
            raise
        except errors.CredentialsRejected as e:
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
                    channel = await self.chat.channel_mark(channel_id)
                    if channel is None:
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

    async def _read(self, channel: ChannelMark, cursor: int | None) -> None:
        since = (cursor if cursor is not None else self.floor()) - OVERLAP_MS
        posts = await self.chat.posts_since(channel, since, first_read=cursor is None)
        if posts is None:
            return
        self.channels_read += 1
        for post in posts:
            self.posts_seen += 1
            if changed_since(post, since):
                await self.take(post)
        if posts:
            # Posts come in creation order but an edited old one carries a late update time: the
            # cursor moves only once the whole list is in, or a crash could skip a post.
            newest = max(max(p.update_at_ms, p.create_at_ms) for p in posts)
            self.store.advance_cursor(self.cursor_prefix + channel.id, newest, refetchable=True)


__all__ = ["CatchUp", "changed_since", "has_news"]
