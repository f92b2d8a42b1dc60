"""One Mattermost workspace as the core sees it (the Chat port): posts, files, reactions, people.

Errors come out sorted: a `errors.ChatRefused` subclass when Mattermost will never take (or give)
this, anything else is transient and the core retries it. The post limit and splitting are the core's
plan (`relay/outbound.plan_posts`); what a post looks like on the wire is here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .. import errors
from ..model import ChannelMark, ChatPost, Person, Place
from .events import post_from_dict
from .rest import MattermostRejected, MattermostRest, MattermostUnavailable

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_SIZE = 104857600  # Mattermost's FileSettings.MaxFileSize default (100 MiB)


class AnswerFile(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def mime_type(self) -> str: ...


# (attachment, max bytes) -> the file; raises errors.TooLarge, errors.Rejected (never comes) or anything
# else (transient). An answer's files come from the helpdesk: the wiring hands this in.
AnswerFiles = Callable[[dict[str, Any], int], Awaitable[AnswerFile]]


class MattermostChat:
    def __init__(self, rest: MattermostRest, answer_files: AnswerFiles | None = None) -> None:
        self.rest = rest
        self.answer_files = answer_files
        self._limits: tuple[int, bool] | None = None
        self._listed: dict[str, dict[str, Any]] = {}  # the last listing's channels not read yet

    @property
    def bot_id(self) -> str:
        return str(self.rest.me.get("id", ""))

    def _logged_in(self) -> None:
        """Posting needs the bot's own id (a post in flight at a crash is found by it): a workspace not
        logged in yet (several workspaces, one still connecting) is one to try later."""
        if not self.rest.me.get("id"):
            raise errors.Unavailable("this workspace is not connected yet")

    async def create_post(
        self, channel_id: str, message: str, *, root_id: str, props: dict[str, Any], pending_post_id: str,
        file_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        self._logged_in()
        try:
            return await self.rest.create_post(
                channel_id, message, root_id=root_id, props=props, pending_post_id=pending_post_id,
                file_ids=file_ids,
            )
        except MattermostRejected as e:
            if e.status in (400, 403, 404):
                raise errors.PostRefused(str(e)) from None
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
        """Fetch an answer's file and upload it to the channel: its Mattermost file id."""
        if self.answer_files is None:
            raise errors.FileNotBrought("files are not brought across")
        max_size, enabled = await self.file_limits()
        if not enabled:
            raise errors.FileNotBrought("file attachments are turned off in Mattermost")
        limit_text = f"over Mattermost's {_size_text(max_size)} limit"
        try:
            f = await self.answer_files(attachment, max_size)
        except errors.TooLarge:
            raise errors.FileNotBrought(limit_text) from None
        except errors.Rejected as e:
            raise errors.FileNotBrought(f"no longer available in Deskie: {e}") from None
        try:
            info = await self.rest.upload_file(channel_id, f.name, f.data, f.mime_type)
        except MattermostRejected as e:
            if e.status == 413:
                self._limits = None  # the server's limit may have changed: read it again next time
                raise errors.FileNotBrought(limit_text) from None
            if e.error_id == "api.file.attachments.disabled.app_error":
                self._limits = None
                raise errors.FileNotBrought("file attachments are turned off in Mattermost") from None
            raise errors.FileNotBrought(f"Mattermost refused the upload: HTTP {e.status}") from None
        return str(info["id"])

    async def fetch_file(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        """A customer's file: (its info, its bytes)."""
        try:
            return await self.rest.get_file(file_id)
        except MattermostRejected as e:
            raise errors.FileUnavailable(f"HTTP {e.status}") from None
        except errors.CredentialsRejected as e:
            raise _later(e) from None

    async def react(self, post_id: str, emoji_name: str) -> None:
        try:
            await self.rest.add_reaction(post_id, emoji_name)
        except MattermostRejected as e:
            raise errors.ReactionRefused(f"HTTP {e.status} {e.error_id}") from None

    async def recent_bot_posts(self, channel_id: str, since_ms: int) -> list[dict[str, Any]]:
        self._logged_in()
        posts = await self.rest.posts_since(channel_id, max(0, since_ms))
        # Edit-history copies carry the old props too: only the posts themselves count.
        return [p for p in posts if p.get("user_id") == self.bot_id and not p.get("original_id")]

    # ---- the directory (cached by the REST client) ------------------------------------------------
    async def person(self, user_id: str) -> Person:
        return person_of(await self.rest.get_user(user_id))

    async def place(self, channel_id: str) -> Place:
        return place_of(await self.rest.get_channel(channel_id))

    # ---- the catch-up listing ------------------------------------------------------------------
    async def listed_channels(self, team_id: str = "") -> dict[str, ChannelMark] | None:
        """The bot's channels (of one team, or of all) with their newest post's time: a few calls
        however many channels. None when the server will not list them."""
        listed: dict[str, ChannelMark] = {}
        self._listed = {}
        try:
            for team in await self.rest.teams():
                if team_id and team["id"] != team_id:
                    continue
                for ch in await self.rest.my_channels(team["id"]):
                    listed.setdefault(str(ch["id"]), _mark(ch))
                    self._listed[str(ch["id"])] = ch
        except MattermostRejected as e:
            log.info("cannot list the bot's channels (%s)", e)
            return None
        return listed

    async def channel_mark(self, channel_id: str) -> ChannelMark | None:
        """One channel read afresh (the cached one is stale); None when the bot cannot see it."""
        try:
            return _mark(await self.rest.get_channel(channel_id, fresh=True))
        except MattermostRejected:
            return None

    async def posts_since(self, channel: ChannelMark, since_ms: int, *, first_read: bool) -> list[ChatPost] | None:
        """The channel's posts changed since `since_ms`, oldest first, decoded; on a `first_read` of a
        public or private channel only those after the bot joined. None when the server refuses (the
        bot left the channel, or it is gone)."""
        try:
            raw = await self.rest.posts_since(channel.id, since_ms)
        except MattermostRejected as e:
            log.info("catch-up skips channel %s: %s", channel.id, e)
            return None
        listed = self._listed.pop(channel.id, None)
        if listed is not None:
            # The listing may hold more channels than the client's cache: keep this one for its posts.
            self.rest.remember_channel(listed)
        me = self.rest.me
        if first_read and channel.type in ("O", "P"):
            raw = _since_bot_joined(raw, str(me["id"]))
        return [post_from_dict(p, channel_type=channel.type, team_id=channel.team_id, bot_id=me["id"],
                               bot_username=me["username"]) for p in raw]

    async def channel_kind(self, channel_id: str) -> tuple[str, str]:
        """(type, URL name) of a channel: routes go by the name, only for public and private channels."""
        try:
            channel = await self.rest.get_channel(channel_id)
        except errors.CredentialsRejected as e:
            raise _later(e) from None
        return str(channel.get("type") or ""), str(channel.get("name") or "")


def person_of(user: dict[str, Any]) -> Person:
    return Person(id=str(user.get("id") or ""), username=str(user.get("username") or ""),
                  first_name=str(user.get("first_name") or ""), last_name=str(user.get("last_name") or ""),
                  is_bot=bool(user.get("is_bot")))


def place_of(channel: dict[str, Any]) -> Place:
    return Place(id=str(channel.get("id") or ""), type=str(channel.get("type") or ""),
                 team_id=str(channel.get("team_id") or ""), name=str(channel.get("name") or ""),
                 display_name=str(channel.get("display_name") or ""))


def person_name(user: dict[str, Any]) -> str:
    return person_of(user).full_name


def channel_name(channel: dict[str, Any]) -> str:
    return place_of(channel).full_name


def _mark(channel: dict[str, Any]) -> ChannelMark:
    last = channel.get("last_post_at")
    return ChannelMark(id=str(channel["id"]), type=str(channel.get("type") or ""),
                       team_id=str(channel.get("team_id") or ""),
                       last_post_at=None if "last_post_at" not in channel else int(last or 0))


def _since_bot_joined(posts: list[dict[str, Any]], bot_id: str) -> list[dict[str, Any]]:
    """A channel met for the first time: its history from before the bot joined is not a chat."""
    joined = -1
    for i, p in enumerate(posts):
        props = p.get("props") or {}
        if p.get("type") in ("system_join_channel", "system_add_to_channel") and bot_id in (
            p.get("user_id") if p.get("type") == "system_join_channel" else None,
            props.get("addedUserId"),
        ):
            joined = i
    return posts[joined + 1:]


def _later(e: errors.CredentialsRejected) -> errors.Unavailable:
    """A refused token met while relaying a message: the message waits (the websocket reports the
    token and, with one workspace, stops the bot); it is never a Deskie credentials problem."""
    return errors.Unavailable(f"Mattermost refused the bot token: {e}")


def _size_text(n: int) -> str:
    if n >= 1048576:
        return f"{n / 1048576:.0f} MB"
    return f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} bytes"
