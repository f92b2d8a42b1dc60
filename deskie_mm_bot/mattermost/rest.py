"""Mattermost REST through mattermostautodriver (async), with the few calls the bot needs.

The driver retries 429 and idempotent 5xx itself and maps errors to typed exceptions; this wrapper
adds explicit timeouts, caches users and channels (they rarely change, and every post needs them), and
turns a rejected token into one clear, fatal error.
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from typing import Any

import httpx
from mattermostautodriver import AsyncTypedDriver
from mattermostautodriver.exceptions import (
    InvalidMattermostError,
    MattermostError,
    NoAccessTokenProvided,
)

from ..errors import CredentialsRejected, Rejected, Unavailable

REQUEST_TIMEOUT = 30.0


CACHE_SIZE = 5000


class LruCache(OrderedDict[str, dict[str, Any]]):
    """Users and channels seen lately: every post needs them, few change, memory stays bounded."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __getitem__(self, key: str) -> dict[str, Any]:
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class MattermostAuthError(CredentialsRejected):
    """The bot token was rejected (401): the bot cannot work on."""


class MattermostUnavailable(Unavailable):
    """Timeouts, connection errors, 5xx: try again later."""


class MattermostRejected(Rejected):
    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(f"Mattermost refused: HTTP {status} {error_id}")
        self.status = status
        self.error_id = error_id
        self.detail = message


def _is_json(response: httpx.Response) -> bool:
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower() == "application/json"


def ssl_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class MattermostRest:
    def __init__(
        self, scheme: str, host: str, port: int, token: str, *, ca_file: str | None = None, insecure: bool = False,
        token_key: str = "mattermost.bot_token",
    ) -> None:
        self.token_key = token_key  # the config key a rejected token's message names
        self._driver = AsyncTypedDriver(
            {
                "scheme": scheme,
                "url": host,
                "port": port,
                "token": token,
                "verify": ssl_context(ca_file, insecure) if scheme == "https" else True,
                "request_timeout": REQUEST_TIMEOUT,
                "max_retries": 3,
                "retry_max_sleep": 30,
            }
        )
        self._driver.client.token = token
        self._users: LruCache = LruCache(CACHE_SIZE)
        self._channels: LruCache = LruCache(CACHE_SIZE)
        self.me: dict[str, Any] = {}

    async def close(self) -> None:
        await self._driver.client.close()

    async def _call(self, coro: Any, *, raw: bool = False) -> Any:
        try:
            result = await coro
            # The driver decodes a GET only when Content-Type is exactly "application/json"; a server or
            # proxy that adds "; charset=utf-8" would hand back the bare response.
            if not raw and isinstance(result, httpx.Response) and _is_json(result):
                return result.json()
            return result
        except NoAccessTokenProvided:
            raise MattermostAuthError(
                f"Mattermost rejected the bot token (HTTP 401): check {self.token_key}"
            ) from None
        except MattermostError as e:
            if e.status_code >= 500 or e.status_code == 429:
                raise MattermostUnavailable(f"Mattermost answered HTTP {e.status_code}") from None
            raise MattermostRejected(e.status_code, e.error_id, str(e)) from None
        except InvalidMattermostError as e:
            if e.status_code >= 500 or e.status_code == 429:
                raise MattermostUnavailable(f"Mattermost answered HTTP {e.status_code}") from None
            raise MattermostRejected(e.status_code, "invalid_error_body", "") from None
        except (httpx.TransportError, OSError) as e:
            raise MattermostUnavailable(f"Mattermost unreachable: {type(e).__name__}") from None

    @property
    def client(self) -> Any:
        return self._driver.client

    async def login(self) -> dict[str, Any]:
        self.me = await self._call(self._driver.users.get_user("me"))
        self._users[self.me["id"]] = self.me
        return self.me

    async def get_user(self, user_id: str) -> dict[str, Any]:
        if user_id not in self._users:
            self._users[user_id] = await self._call(self._driver.users.get_user(user_id))
        return self._users[user_id]

    async def get_channel(self, channel_id: str, *, fresh: bool = False) -> dict[str, Any]:
        if fresh or channel_id not in self._channels:
            self._channels[channel_id] = await self._call(self._driver.channels.get_channel(channel_id))
        return self._channels[channel_id]

    def remember_channel(self, channel: dict[str, Any]) -> None:
        """A channel object just read elsewhere (a listing): its posts' intake needs no lookup."""
        self._channels[channel["id"]] = channel

    async def teams(self) -> list[dict[str, Any]]:
        return list(await self._call(self._driver.teams.get_teams_for_user(self.me["id"])))

    async def my_channels(self, team_id: str) -> list[dict[str, Any]]:
        chans = list(await self._call(self._driver.channels.get_channels_for_team_for_user(self.me["id"], team_id)))
        for c in chans:
            self._channels[c["id"]] = c
        return chans

    async def direct_channel(self, user_id: str) -> dict[str, Any]:
        ch = dict(await self._call(self._driver.channels.create_direct_channel([self.me["id"], user_id])))
        self._channels[ch["id"]] = ch
        return ch

    async def is_member(self, channel_id: str, user_id: str) -> bool:
        try:
            await self._call(self._driver.channels.get_channel_member(channel_id, user_id))
            return True
        except MattermostRejected as e:
            if e.status in (403, 404):
                return False
            raise

    async def create_post(
        self,
        channel_id: str,
        message: str,
        *,
        root_id: str = "",
        props: dict[str, Any] | None = None,
        pending_post_id: str | None = None,
        file_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"channel_id": channel_id, "message": message, "root_id": root_id}
        if props:
            body["props"] = props
        if pending_post_id:
            # Lets the server drop a repeat of this very post (Mattermost's own create dedup).
            body["pending_post_id"] = pending_post_id
        if file_ids:
            body["file_ids"] = file_ids
        return dict(await self._call(self.client.post("/api/v4/posts", options=body)))

    async def posts_since(self, channel_id: str, since_ms: int) -> list[dict[str, Any]]:
        """Posts created or changed after `since_ms`, oldest first."""
        data = await self._call(self._driver.posts.get_posts_for_channel(channel_id, since=since_ms))
        posts = list((data.get("posts") or {}).values())
        posts.sort(key=lambda p: (p.get("create_at", 0), p.get("id", "")))
        return posts

    async def get_file(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        info = await self._call(self._driver.files.get_file_info(file_id))
        resp = await self._call(self.client.make_request("get", f"/api/v4/files/{file_id}"), raw=True)
        return dict(info), resp.content

    async def upload_file(
        self, channel_id: str, name: str, data: bytes, mime_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        # httpx writes the data fields before the files: channel_id first, so the server streams.
        result = await self._call(
            self.client.post(
                "/api/v4/files", data={"channel_id": channel_id}, files={"files": (name, data, mime_type)}
            )
        )
        return dict(result["file_infos"][0])

    async def client_config(self) -> dict[str, Any]:
        """The server's client config (`format=old`): MaxFileSize, EnableFileAttachments, as strings."""
        return dict(await self._call(self.client.get("/api/v4/config/client", params={"format": "old"})))

    async def add_reaction(self, post_id: str, emoji_name: str) -> dict[str, Any]:
        """Saved as an upsert by the server: repeating it is harmless."""
        body = {"user_id": self.me["id"], "post_id": post_id, "emoji_name": emoji_name}
        return dict(await self._call(self.client.post("/api/v4/reactions", options=body)))

    def stop_retrying(self) -> None:
        """Shutting down: a failing server is not waited for, its 5xx and 429 come back at once."""
        # The driver reads its retry allowance on every request; it has no public setter.
        self._driver.client._max_retries = 0

    async def search_users(self, term: str, team_id: str = "") -> list[dict[str, Any]]:
        body: dict[str, Any] = {"term": term, "limit": 50}
        if team_id:
            body["team_id"] = team_id
        return list(await self._call(self.client.post("/api/v4/users/search", options=body)))

    async def search_team_channels(self, team_id: str, term: str) -> list[dict[str, Any]]:
        return list(await self._call(self._driver.channels.search_channels(team_id, term)))
