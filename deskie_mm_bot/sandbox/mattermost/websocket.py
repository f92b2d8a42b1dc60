"""The websocket hub: per-connection seq, dead queue, resume, pings, and fault injection.

Everything here runs on the emulator's event loop thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

from .models import Event
from .state import State
from .util import ID_ALPHABET, dumps, new_id, now_ms

DEAD_QUEUE_SIZE = 128
SEND_QUEUE_SIZE = 256
AUTH_TIMEOUT = 5.0


class Session:
    """One live websocket (TCP connection) attached to a :class:`WebConn`."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        self.ws = ws
        self.transport = transport
        self.out: asyncio.Queue[str] = asyncio.Queue()
        self.last_pong = time.monotonic()
        self.closed = False
        # The client's side is gone but the server has not noticed (a half-open TCP connection): the
        # connection still counts as active, and whatever is written to it is lost.
        self.half_open = False
        self.posted_ack = False
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        while True:
            text = await self.out.get()
            try:
                await self.ws.send_str(text)
            except Exception:
                self.abort()
                return

    def send(self, text: str) -> None:
        if not self.closed and not self.half_open:
            self.out.put_nowait(text)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class WebConn:
    """Server-side state of a websocket connection; survives the TCP connection for resume."""

    def __init__(self, user_id: str, token: str) -> None:
        self.connection_id = new_id()
        self.user_id = user_id
        self.token = token
        self.seq = 0
        self.dead: deque[dict[str, Any]] = deque(maxlen=DEAD_QUEUE_SIZE)
        self.pending: deque[dict[str, Any]] = deque()
        self.session: Session | None = None
        self.inactive_since: float | None = None


class Hub:
    def __init__(self, state: State, server_version: str, ping_interval: float, reap_after: float) -> None:
        self.state = state
        self.server_version = server_version
        self.ping_interval = ping_interval
        self.reap_after = reap_after
        self.conns: dict[str, WebConn] = {}
        self.silent = False
        self.reject = False
        # Off: an upgrade's Bearer header is not taken (a proxy that strips it, say); only the
        # authentication_challenge authenticates.
        self.header_auth = True
        self.hostname = socket.gethostname()
        # authCheckInterval: an upgrade that has not authenticated by then is closed (1006).
        self.auth_timeout = AUTH_TIMEOUT
        # Half-open connections the server still thinks alive, until it notices (see drop()).
        self.unnoticed: dict[str, tuple[WebConn, Session]] = {}

    @property
    def version_string(self) -> str:
        v = self.server_version
        return f"{v}.{v}.emulator.false"

    # ------------------------------------------------------------------ event delivery
    def deliver(self, event: Event) -> None:
        for conn in list(self.conns.values()):
            if conn.user_id not in event.targets:
                continue
            if event.omit_users and conn.user_id in event.omit_users:
                continue
            data = dict(event.data)
            style = self.state.variants.mentions
            if style == "all" and event.mentions:
                data["mentions"] = dumps(list(event.mentions))
            elif style == "own" and event.mentions and conn.user_id in event.mentions:
                data["mentions"] = dumps([conn.user_id])
            self.write(conn, {"event": event.event, "data": data, "broadcast": event.broadcast()})

    def write(self, conn: WebConn, msg: dict[str, Any]) -> None:
        if conn.session is None:
            conn.pending.append(msg)
            if len(conn.pending) > SEND_QUEUE_SIZE:
                self.conns.pop(conn.connection_id, None)
            return
        if msg["event"] == "posted" and conn.session.posted_ack:
            msg = {**msg, "data": {**msg["data"], "should_ack": True}}
        msg = {**msg, "seq": conn.seq}
        conn.seq += 1
        conn.dead.append(msg)
        if not self.silent:
            conn.session.send(dumps(msg))

    def reply(self, conn: WebConn, payload: dict[str, Any]) -> None:
        if conn.session is not None and not self.silent:
            conn.session.send(dumps(payload))

    def hello(self, conn: WebConn) -> None:
        self.write(
            conn,
            {
                "event": "hello",
                "data": {
                    "server_version": self.version_string,
                    "connection_id": conn.connection_id,
                    **({"server_hostname": self.hostname} if self.state.variants.hello_hostname else {}),
                },
                "broadcast": Event("hello", {}, set(), user_id=conn.user_id).broadcast(),
            },
        )

    def attach(self, conn: WebConn, session: Session) -> None:
        if conn.session is not None and conn.session is not session:
            conn.session.abort()
        conn.session = session
        conn.inactive_since = None

    def flush_pending(self, conn: WebConn) -> None:
        while conn.pending and conn.session is not None:
            self.write(conn, conn.pending.popleft())

    def detach(self, conn: WebConn, session: Session) -> None:
        if conn.session is session:
            conn.session = None
            conn.inactive_since = time.monotonic()
            conn.pending.clear()  # what went into a half-open socket is not resent

    # ------------------------------------------------------------------ control
    def drop(self, resumable: bool, noticed: bool = True) -> None:
        """Cut every live TCP connection (the client sees 1006). `noticed=False`: the server does not
        notice (a half-open connection, the client noticed first): the connection stays active, its
        events are written into the void, and a reconnect with its connection_id is "not found"."""
        for conn in list(self.conns.values()):
            session = conn.session
            if session is None or session.half_open:
                continue
            if noticed:
                self.detach(conn, session)
            else:
                session.half_open = True
                self.unnoticed[conn.connection_id] = (conn, session)
            session.abort()
        if not resumable:
            for cid, conn in list(self.conns.items()):
                if conn.connection_id not in self.unnoticed:
                    del self.conns[cid]

    def notice_drops(self) -> None:
        """The server finally notices its half-open connections (a write fails, the read deadline
        passes): they become inactive, as after any drop."""
        for conn, session in list(self.unnoticed.values()):
            self.detach(conn, session)
        self.unnoticed.clear()

    def connection_count(self, include_unnoticed: bool = False) -> int:
        return sum(
            1
            for c in self.conns.values()
            if c.session is not None and (include_unnoticed or not c.session.half_open)
        )

    def revoke(self, token: str) -> None:
        for conn in list(self.conns.values()):
            if conn.token == token:
                if conn.session is not None:
                    conn.session.abort()
                self.conns.pop(conn.connection_id, None)
                self.unnoticed.pop(conn.connection_id, None)

    async def reaper(self) -> None:
        interval = max(0.05, min(self.reap_after / 4, self.ping_interval / 4, 10.0))
        while True:
            await asyncio.sleep(interval)
            # A half-open connection never pongs: the read deadline (pongWaitTime) tells the server.
            deadline = time.monotonic() - self.ping_interval * 10 / 6
            for cid, (conn, session) in list(self.unnoticed.items()):
                if session.last_pong < deadline or conn.session is not session:
                    self.detach(conn, session)
                    del self.unnoticed[cid]
            cutoff = time.monotonic() - self.reap_after
            for cid, conn in list(self.conns.items()):
                if conn.session is None and conn.inactive_since is not None and conn.inactive_since < cutoff:
                    del self.conns[cid]

    # ------------------------------------------------------------------ the handler
    def _header_token(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer " or auth[:6].lower() == "token ":
            return auth.split(" ", 1)[1].strip()
        return request.cookies.get("MMAUTHTOKEN")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        token = self._header_token(request) if self.header_auth else None
        user_id = self.state.user_for_token(token)
        # connectWebSocket upgrades first (always 101) and only then looks at the token and the query.
        ws = web.WebSocketResponse(autoping=False, max_msg_size=8 * 1024 * 1024)
        transport = request.transport
        await ws.prepare(request)
        session = Session(ws, transport)
        session.posted_ack = request.query.get("posted_ack") == "true"
        conn: WebConn | None = None
        pinger = asyncio.get_running_loop().create_task(self._ping_loop(session))
        try:
            resume = self._resume_request(request)
            if resume is None:
                # "invalid connection id" / "sequence number not present": closed at once, no close frame.
                session.abort()
                return ws
            if user_id is not None and token is not None:
                conn = self._connect_authenticated(resume, user_id, token, session)
            else:
                # A bad or missing Bearer token is no error: an unauthenticated socket, silent until a
                # valid authentication_challenge or the auth tick.
                conn = await self._challenge(ws, session)
                if conn is None:
                    session.abort()
                    return ws
            await self._read_loop(ws, session, conn)
        finally:
            pinger.cancel()
            session.writer.cancel()
            if conn is not None and not session.half_open:
                self.detach(conn, session)
            session.closed = True
        return ws

    @staticmethod
    def _resume_request(request: web.Request) -> tuple[str, int] | None:
        """PopulateWebConnConfig: ("", 0) for a fresh connect, (connection_id, sequence_number) for a
        resume, None when the query is refused."""
        cid = request.query.get("connection_id", "")
        if not cid:
            return "", 0
        if len(cid) != 26 or not set(cid) <= set(ID_ALPHABET):
            return None
        seq_raw = request.query.get("sequence_number", "")
        try:
            return cid, int(seq_raw)
        except ValueError:
            return None

    def _connect_authenticated(
        self, resume: tuple[str, int], user_id: str, token: str, session: Session
    ) -> WebConn:
        cid, requested = resume
        conn = self.conns.get(cid) if cid else None
        # RemoveInactiveByConnectionID: only a connection already marked inactive can be resumed. One the
        # server still thinks alive (it has not noticed the drop) is "not found".
        if conn is None or conn.user_id != user_id or conn.session is not None:
            return self._fresh(user_id, token, session)
        self.attach(conn, session)
        conn.token = token
        if requested == conn.seq:
            pass  # no loss: no hello, nothing replayed
        elif any(m["seq"] == requested for m in conn.dead):
            if not self.silent:
                for msg in conn.dead:
                    if msg["seq"] >= requested:
                        session.send(dumps(msg))
        else:
            del self.conns[conn.connection_id]
            conn.connection_id = new_id()
            self.conns[conn.connection_id] = conn
            conn.seq = 0
            conn.dead.clear()
            self.hello(conn)
        self.flush_pending(conn)
        return conn

    def _fresh(self, user_id: str, token: str, session: Session) -> WebConn:
        conn = WebConn(user_id, token)
        self.conns[conn.connection_id] = conn
        self.attach(conn, session)
        self.hello(conn)
        return conn

    async def _challenge(self, ws: web.WebSocketResponse, session: Session) -> WebConn | None:
        deadline = time.monotonic() + self.auth_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                msg = await asyncio.wait_for(ws.receive(), remaining)
            except asyncio.TimeoutError:
                return None
            if msg.type == WSMsgType.PING:
                if not self.silent:
                    await ws.pong(msg.data)
                continue
            if msg.type == WSMsgType.PONG:
                session.last_pong = time.monotonic()
                continue
            if msg.type != WSMsgType.TEXT:
                return None
            try:
                req = json.loads(msg.data)
            except ValueError:
                return None
            if not isinstance(req, dict):
                continue
            seq = req.get("seq")
            # The hub drops replies to sockets it has not registered: no not_authenticated, no bad_seq.
            if req.get("action") != "authentication_challenge":
                continue
            if not isinstance(seq, int) or seq <= 0:
                continue
            data = req.get("data") if isinstance(req.get("data"), dict) else {}
            token = data.get("token") if isinstance(data.get("token"), str) else None
            user_id = self.state.user_for_token(token)
            if user_id is None or token is None:
                return None
            conn = self._fresh(user_id, token, session)
            self.reply(conn, {"status": "OK", "seq_reply": seq})
            return conn

    @staticmethod
    def _error(seq: Any, error_id: str, status: int) -> dict[str, Any]:
        return {
            "status": "FAIL",
            "seq_reply": seq,
            "error": {"id": error_id, "message": error_id, "detailed_error": "", "status_code": status},
        }

    async def _read_loop(self, ws: web.WebSocketResponse, session: Session, conn: WebConn) -> None:
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.PING:
                if not self.silent:
                    with contextlib.suppress(Exception):
                        await ws.pong(msg.data)
                continue
            if msg.type == WSMsgType.PONG:
                session.last_pong = time.monotonic()
                continue
            if msg.type != WSMsgType.TEXT:
                return
            try:
                req = json.loads(msg.data)
            except ValueError:
                continue
            if isinstance(req, dict):
                self._action(conn, req)

    def _action(self, conn: WebConn, req: dict[str, Any]) -> None:
        action = req.get("action")
        seq = req.get("seq")
        data = req.get("data") if isinstance(req.get("data"), dict) else {}
        if action == "authentication_challenge":
            return  # already authenticated: ignored, no reply
        if self.silent:
            return
        if action == "ping":
            self.reply(
                conn,
                {
                    "status": "OK",
                    "seq_reply": seq,
                    "data": {
                        "text": "pong",
                        "version": self.server_version,
                        "server_time": now_ms(),
                        "node_id": "",
                    },
                },
            )
        elif action == "user_typing":
            channel_id = str(data.get("channel_id", ""))
            try:
                self.state.typing(conn.user_id, channel_id, str(data.get("parent_id", "")))
            except ValueError:
                self.reply(conn, self._error(seq, "api.websocket_handler.invalid_param.app_error", 400))
                return
            self.reply(conn, {"status": "OK", "seq_reply": seq})
        elif action == "posted_ack":
            self.reply(conn, {"status": "OK", "seq_reply": seq})
        elif action == "get_statuses":
            self.reply(conn, {"status": "OK", "seq_reply": seq, "data": {}})
        else:
            self.reply(conn, self._error(seq, "api.web_socket_router.bad_action.app_error", 501))

    async def _ping_loop(self, session: Session) -> None:
        timeout = self.ping_interval * 10 / 6
        while not session.closed:
            await asyncio.sleep(self.ping_interval)
            if self.silent:
                session.last_pong = time.monotonic()
                continue
            if time.monotonic() - session.last_pong > timeout:
                session.abort()
                return
            with contextlib.suppress(Exception):
                await session.ws.ping()
