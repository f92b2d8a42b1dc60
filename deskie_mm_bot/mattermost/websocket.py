"""The bot's own Mattermost websocket client, on `websockets`.

What the Python drivers do not do, and a support bot needs:
- authenticate with `Authorization: Bearer` at upgrade, so the server lets us resume;
- track the per-connection `seq`, resume with `connection_id` + `sequence_number` after a drop;
- notice when events were lost (a new `connection_id` in `hello`) and ask for a REST catch-up;
- detect a dead connection with an application ping, and reconnect with jittered backoff, never spinning;
- treat a rejected token as fatal instead of retrying forever. The upgrade succeeds whatever the token
  (HTTP 101): a bad one shows only as a socket that stays silent and is dropped, so a silent drop is
  followed by a REST check of the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..health import LinkState
from ..retry import Backoff
from .rest import MattermostAuthError, MattermostUnavailable

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
ResyncHandler = Callable[[], Awaitable[None]]


class SequenceGap(Exception):
    pass


class MattermostWebsocket:
    def __init__(
        self,
        base_url: str,
        token: str,
        on_event: EventHandler,
        on_resync: ResyncHandler,
        *,
        ssl_ctx: ssl.SSLContext | None = None,
        ping_interval: float = 30.0,
        ping_timeout: float = 10.0,
        backoff: Backoff | None = None,
        check_token: ResyncHandler | None = None,
        token_key: str = "mattermost.bot_token",
    ) -> None:
        self.token_key = token_key
        scheme = "wss" if base_url.startswith("https://") else "ws"
        self._url = scheme + "://" + base_url.split("://", 1)[1].rstrip("/") + "/api/v4/websocket"
        self._token = token
        self._on_event = on_event
        self._on_resync = on_resync
        # A header token the server does not accept leaves the socket waiting for a challenge and
        # then dropped, without a 401: a REST call tells a revoked token from a sick server.
        self._check_token = check_token
        self._ssl = ssl_ctx if scheme == "wss" else None
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._backoff = backoff or Backoff(base=0.5, cap=30.0)
        self.connection_id: str | None = None
        self._next_seq = 0
        self._action_seq = 0
        self._pongs: dict[int, asyncio.Future[None]] = {}
        self._stopping = asyncio.Event()
        self._ws: ClientConnection | None = None
        self.connected = asyncio.Event()
        # Set once a server dropped us without a word although the token is good: the Bearer header is
        # not reaching it (a proxy strips it), so each connection also authenticates by challenge.
        self.challenge_on_connect = False
        self.reconnects = 0
        self.resyncs = 0

    def state(self) -> LinkState:
        return LinkState.CONNECTED if self.connected.is_set() else LinkState.DISCONNECTED

    async def stop(self) -> None:
        self._stopping.set()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def run(self) -> None:
        """Connect and dispatch events until stop(); raises MattermostAuthError on a rejected token."""
        while not self._stopping.is_set():
            try:
                await self._session()
            except MattermostAuthError:
                raise
            except (OSError, ConnectionClosed, InvalidStatus, TimeoutError, SequenceGap, MattermostUnavailable,
                    websockets.exceptions.InvalidHandshake, asyncio.TimeoutError) as e:
                # MattermostUnavailable: a REST call behind an event or the catch-up failed. The event was
                # not counted, so the resume (or the next catch-up) brings it again.
                if self._stopping.is_set():
                    break
                log.warning("Mattermost websocket lost (%s); reconnecting", _describe(e))
            finally:
                self.connected.clear()
                self._ws = None
                for fut in self._pongs.values():
                    fut.cancel()
                self._pongs.clear()
            if self._stopping.is_set():
                break
            self.reconnects += 1
            delay = self._backoff.next_delay()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    def _connect_url(self) -> str:
        if self.connection_id:
            q = urlencode({"connection_id": self.connection_id, "sequence_number": self._next_seq})
            return f"{self._url}?{q}"
        return self._url

    async def _session(self) -> None:
        try:
            ws = await connect(
                self._connect_url(),
                additional_headers={"Authorization": f"Bearer {self._token}"},
                ssl=self._ssl,
                open_timeout=15,
                # Control pings catch a dead TCP path; the app-level ping below catches a stuck server.
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                max_size=2**24,
                proxy=None,
                user_agent_header="deskie-mm-bot",
            )
        except InvalidStatus as e:
            if e.response.status_code == 401:
                raise MattermostAuthError(
                    f"Mattermost rejected the bot token on the websocket (HTTP 401): check {self.token_key}"
                ) from None
            raise
        self._ws = ws
        pinger = asyncio.create_task(self._ping_loop(ws))
        resumed = self.connection_id is not None
        heard: list[bool] = []  # set once the server has answered as to an authenticated client
        got_anything = False
        challenged = False
        try:
            if self.challenge_on_connect:
                challenged = True
                # Ignored, without a reply, by a server that took the header (the resume still works).
                await ws.send(json.dumps(self._challenge()))
            async for raw in _frames(ws, heard, self._check_token):
                msg = json.loads(raw)
                if "seq_reply" in msg:
                    fut = self._pongs.pop(int(msg["seq_reply"]), None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                    if msg.get("status") == "FAIL" and "not_authenticated" in str((msg.get("error") or {}).get("id")):
                        # The upgrade's Bearer header was not taken: authenticate the old way (no resume
                        # for such a connection, but events flow).
                        if not challenged:
                            challenged = True
                            await ws.send(json.dumps(self._challenge()))
                        continue
                if not got_anything:
                    got_anything = True
                    heard.append(True)
                    self.connected.set()
                    self._backoff.reset()
                if "seq_reply" in msg:
                    continue
                await self._handle_event(msg, resumed)
        except ConnectionClosed:
            if not got_anything and not self._stopping.is_set():
                self._dropped_without_a_word()  # the token was checked, and is good
            raise
        finally:
            await _stop_task(pinger)
            # Left by an error in a handler: do not keep a second, unread connection open.
            ws.transport.abort()
        if not got_anything and not self._stopping.is_set():
            if self._check_token is not None:
                await self._check_token()
            self._dropped_without_a_word()
            raise ConnectionResetError("connection closed before hello")

    def _dropped_without_a_word(self) -> None:
        if not self.challenge_on_connect:
            self.challenge_on_connect = True
            log.warning("Mattermost closed the websocket before a word although the token is good; "
                        "authenticating by authentication_challenge too from now on")

    async def _handle_event(self, msg: dict[str, Any], resumed: bool) -> None:
        event = msg.get("event")
        seq = msg.get("seq")
        if event == "hello":
            new_id = (msg.get("data") or {}).get("connection_id")
            lost = self.connection_id != new_id
            self.connection_id = new_id
            self._next_seq = 1
            self.connected.set()
            if lost:
                # A fresh connection: whatever was posted while we were away must be fetched.
                self.resyncs += 1
                try:
                    await self._on_resync()
                except BaseException:
                    # Not caught up: resuming this connection later would skip the catch-up for good.
                    # The next connection is a fresh one, whose hello asks for the catch-up again.
                    self.connection_id = None
                    raise
            return
        if isinstance(seq, int) and seq != self._next_seq:
            log.warning("websocket sequence gap: expected %s, got %s", self._next_seq, seq)
            if self._ws is not None:
                await self._ws.close(code=4001, reason="sequence mismatch")
            raise SequenceGap(f"expected {self._next_seq}, got {seq}")
        await self._on_event(msg)
        if isinstance(seq, int):
            # Counted only once handled: a resume asks again for anything we did not finish.
            self._next_seq = seq + 1

    def _challenge(self) -> dict[str, Any]:
        self._action_seq += 1
        return {"seq": self._action_seq, "action": "authentication_challenge", "data": {"token": self._token}}

    async def _ping_loop(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        first = True
        while True:
            # The first ping goes at once: a resumed connection gets no hello, and its answer is
            # what tells that the connection works.
            if not first:
                await asyncio.sleep(self.ping_interval)
            first = False
            self._action_seq += 1
            seq = self._action_seq
            fut: asyncio.Future[None] = loop.create_future()
            self._pongs[seq] = fut
            try:
                await ws.send(json.dumps({"action": "ping", "seq": seq}))
                await asyncio.wait_for(fut, timeout=self.ping_timeout)
            except (asyncio.TimeoutError, ConnectionClosed):
                log.warning("Mattermost did not answer a ping within %.0f s; reconnecting", self.ping_timeout)
                # Abort the TCP connection: a polite close would wait on a server that is not listening.
                ws.transport.abort()
                return


async def _stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel and wait, but never for long: on Python < 3.12 `wait_for` can swallow a cancellation
    that lands as its future completes, and the task would go on to its next sleep."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    with contextlib.suppress(BaseException):
        task.result()


async def _frames(
    ws: ClientConnection, heard: list[bool], check_token: ResyncHandler | None
) -> Any:
    """The socket's messages; a drop before any message first checks the token over REST."""
    try:
        async for raw in ws:
            yield raw
    except ConnectionClosed:
        if not heard and check_token is not None:
            await check_token()  # raises MattermostAuthError for a rejected token
        raise


def _describe(e: BaseException) -> str:
    if isinstance(e, ConnectionClosed):
        rcvd = e.rcvd
        return f"closed, code {rcvd.code}" if rcvd else "connection dropped"
    if isinstance(e, InvalidStatus):
        return f"HTTP {e.response.status_code}"
    return type(e).__name__ + (f": {e}" if str(e) else "")
