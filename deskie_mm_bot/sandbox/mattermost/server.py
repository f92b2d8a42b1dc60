"""``MattermostEmulator``: an aiohttp Mattermost server in a background thread, plus its control API."""

from __future__ import annotations

import asyncio
import copy
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

from ..changes import ChangeFeed
from . import control, rest_channels, rest_posts, rest_reactions, rest_users
from .faults import RestFault, RestFaults
from .models import Event
from .routing import METHOD_NOT_ALLOWED, NOT_FOUND, Ctx, Result, Router, error_response, json_response
from .state import State
from .util import AppError, new_id, unauthorized
from .variants import MattermostVariants
from .websocket import Hub

T = TypeVar("T")
WEBSOCKET_PATHS = ("/api/v4/websocket", "/api/v4/websocket/")
_USER_TEAM_CHANNELS = re.compile(r"^/api/v4/users/[^/]+/teams/[^/]+/channels/?$")


class MattermostEmulator:
    """A faithful-enough Mattermost server for tests and the sandbox demo (REST, websocket, faults)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ping_interval: float = 60.0,
        server_version: str = "10.11.0",
        reap_after: float = 300.0,
        auth_timeout: float = 5.0,
        pending_post_ttl: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.server_version = server_version
        self.state = State()
        # Opt-in behaviours of other servers (see variants.py).
        self.variants: MattermostVariants = self.state.variants
        self.hub = Hub(self.state, server_version, ping_interval, reap_after)
        # Settings the real server hard-codes, shortened by tests: authCheckInterval (an upgrade not
        # authenticated by then is closed) and pendingPostIDsCacheTTL (how long pending_post_id dedups).
        self.hub.auth_timeout = auth_timeout
        self.state.pending_post_ttl = pending_post_ttl
        self.changes = ChangeFeed()  # bumped with every event: what the sandbox console waits on
        self.router = Router()
        rest_users.register(self.router, self.state)
        rest_channels.register(self.router, self.state)
        rest_posts.register(self.router, self.state)
        rest_reactions.register(self.router, self.state, lambda: self.server_version)
        control.register(self.router, self)
        self.router.add("GET", "/api/v4/system/ping", self._system_ping, auth=False)
        self._log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._rest_faults = RestFaults()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._reaper: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MattermostEmulator:
        if self._thread is not None:
            return self
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="mattermost-emulator", daemon=True
        )
        self._thread.start()
        ready.result(timeout=15)
        return self

    def _run(self, ready: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # pragma: no cover - startup failure
            if not ready.done():
                ready.set_exception(exc)
            loop.close()
            return
        self.state.publish = self._publish
        ready.set_result(None)
        loop.run_forever()
        loop.close()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]
        self._reaper = asyncio.get_running_loop().create_task(self.hub.reaper())
        self.changes.bind(asyncio.get_running_loop())

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            self.hub.drop(resumable=False)
            if self._reaper is not None:
                self._reaper.cancel()
            if self._runner is not None:
                await self._runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._loop = None
            self._thread = None
            self.state.publish = lambda event: None

    def __enter__(self) -> MattermostEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _publish(self, event: Event) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.hub.deliver, event)
        self.changes.bump()

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the emulator loop and return its result (directly if already there)."""
        loop = self._loop
        if loop is None:
            return fn()
        if self._thread is threading.current_thread():
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=10)

    # ------------------------------------------------------------------ HTTP dispatch
    async def _system_ping(self, ctx: Ctx) -> Any:
        return {"status": "OK", "ActiveSearchBackend": "database"}

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in WEBSOCKET_PATHS and request.method == "GET":
            if self.hub.reject:
                err = AppError(503, "api.web_socket.unavailable.app_error", "Service unavailable.")
                return error_response(err, new_id(), self.hub.version_string, "GET")
            return await self.hub.handle(request)
        fault = self._rest_faults.take(request.method, path) if path.startswith("/api/v4") else None
        if fault is not None and fault.kind == "applied":
            # Done, but the client never hears so (a proxy timed out, the connection broke).
            await self._handle_http(request)
            if fault.seconds:
                await asyncio.sleep(fault.seconds)
            response = await self._fault_response(RestFault("5xx", status=fault.status))
        elif fault is not None and fault.kind == "late":
            # Done at once, answered only after a while: a client that dies meanwhile never learns of it.
            response = await self._handle_http(request)
            until = time.monotonic() + fault.seconds
            transport = request.transport
            while time.monotonic() < until and transport is not None and not transport.is_closing():
                await asyncio.sleep(0.05)
        else:
            response = await (self._fault_response(fault) if fault else self._handle_http(request))
        ctype = self.variants.json_content_type
        if ctype != "application/json" and response.headers.get("Content-Type") == "application/json":
            response.headers["Content-Type"] = ctype
        if path.startswith("/api/v4"):
            entry = {
                "method": request.method,
                "path": path,
                "query": dict(request.query),
                "status": response.status,
            }
            with self._log_lock:
                self._log.append(entry)
        return response

    async def _fault_response(self, fault: RestFault) -> web.Response:
        if fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
            fault = RestFault("5xx", status=504)
        if fault.kind == "429":
            # What the real rate limiter answers: plain text, not an AppError.
            return web.Response(
                status=429,
                text="limit exceeded\n",
                headers={
                    "Content-Type": "text/plain; charset=utf-8",
                    "X-RateLimit-Limit": "10",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(fault.retry_after),
                    "Retry-After": str(fault.retry_after),
                },
            )
        err = AppError(fault.status, "api.emulator.fault.app_error", "Injected server error.")
        return error_response(err, new_id(), self.hub.version_string, "GET")

    # ------------------------------------------------------------------ REST faults
    def fail_rest_next(self, n: int, status: int = 500, match: str = "") -> None:
        """The next n REST requests (those whose "METHOD /path" starts with `match`) answer `status`
        (an AppError) and do nothing."""
        self._rest_faults.push(RestFault("5xx", status=status, match=match), n)

    def hang_rest_next(self, n: int, seconds: float = 30.0, match: str = "") -> None:
        """The next n REST requests (matching `match`) hang for `seconds`, then answer 504 without
        doing anything."""
        self._rest_faults.push(RestFault("hang", seconds=seconds, match=match), n)

    def throttle_rest_next(self, n: int, retry_after: int = 1) -> None:
        """The next n REST requests are refused by the rate limiter (429, plain text, Retry-After)."""
        self._rest_faults.push(RestFault("429", retry_after=retry_after), n)

    def rest_outage(self, seconds: float, kind: str = "5xx") -> None:
        """Every REST request during the next `seconds` fails the same way (5xx, hang or 429)."""
        self._rest_faults.outage(seconds, kind)

    def fail_rest_after_apply_next(self, n: int, status: int = 504, match: str = "", seconds: float = 0.0) -> None:
        """The next n REST requests (those whose "METHOD /path" starts with `match`) are carried out,
        but answered `status` as if they failed (after `seconds`): what a client sees when a proxy
        times out."""
        self._rest_faults.push(RestFault("applied", status=status, match=match, seconds=seconds), n)

    def slow_rest_after_apply_next(self, n: int, seconds: float, match: str = "") -> None:
        """The next n REST requests (those whose "METHOD /path" starts with `match`) are carried out at
        once but answered only after `seconds`."""
        self._rest_faults.push(RestFault("late", seconds=seconds, match=match), n)

    def slow_post_save_next(self, n: int, seconds: float) -> None:
        """The next n POST /posts take `seconds` to be saved after their pending_post_id is claimed: a
        repeat meanwhile gets 500 api.post.deduplicate_create_post.pending."""
        with self.state.lock:
            self.state.save_delays.extend([seconds] * n)

    @property
    def auth_timeout(self) -> float:
        """How long an upgraded websocket may stay unauthenticated before it is dropped (5 s real)."""
        return self.hub.auth_timeout

    @auth_timeout.setter
    def auth_timeout(self, seconds: float) -> None:
        self.hub.auth_timeout = seconds

    @property
    def pending_post_ttl(self) -> float:
        """How long a pending_post_id deduplicates (30 s on a real server)."""
        return self.state.pending_post_ttl

    @pending_post_ttl.setter
    def pending_post_ttl(self, seconds: float) -> None:
        self.state.pending_post_ttl = seconds

    def clear_rest_faults(self) -> None:
        self._rest_faults.clear()

    async def _handle_http(self, request: web.Request) -> web.Response:
        version = self.hub.version_string
        method = request.method
        matched = self.router.match(method, request.path)
        if not self.variants.user_team_channels and _USER_TEAM_CHANNELS.match(request.path):
            matched = "404"
        request_id = new_id()
        if isinstance(matched, str):
            err = NOT_FOUND if matched == "404" else METHOD_NOT_ALLOWED
            return error_response(err, request_id, version, method)
        handler, params, auth = matched
        ctx = Ctx(request, params, request_id=request_id)
        try:
            if auth:
                user_id = self.state.user_for_token(self.hub._header_token(request))
                if user_id is None:
                    raise unauthorized()
                ctx.user_id = user_id
            result = await handler(ctx)
        except AppError as err:
            return error_response(err, request_id, version, method)
        except (KeyError, TypeError, IndexError) as exc:
            err = AppError(
                400, "api.context.invalid_body_param.app_error", f"Invalid or missing parameter: {exc}"
            )
            return error_response(err, request_id, version, method)
        except Exception as exc:  # pragma: no cover - emulator bug
            err = AppError(500, "app.emulator.internal.app_error", f"{type(exc).__name__}: {exc}")
            return error_response(err, request_id, version, method)
        if isinstance(result, Result):
            if result.raw is not None:
                headers = {"X-Request-Id": request_id, "X-Version-Id": version, **result.headers}
                if method == "GET":
                    headers["Expires"] = "0"
                return web.Response(body=result.raw, status=result.status, headers=headers)
            return json_response(result.body, result.status, request_id, version, method)
        return json_response(result, 200, request_id, version, method)

    # ------------------------------------------------------------------ control API: data
    def add_team(self, name: str, display_name: str | None = None) -> dict[str, Any]:
        return self.state.add_team(name, display_name)

    def add_user(
        self,
        username: str,
        first_name: str = "",
        last_name: str = "",
        email: str | None = None,
        is_bot: bool = False,
    ) -> dict[str, Any]:
        return self.state.add_user(username, first_name, last_name, email, is_bot)

    def add_bot(self, username: str, display_name: str = "") -> tuple[dict[str, Any], str]:
        user = self.state.add_user(username, display_name, "", None, True)
        return user, self.state.create_token(user["id"])

    def create_token(self, user_id: str) -> str:
        return self.state.create_token(user_id)

    def revoke_token(self, token: str) -> None:
        self.state.revoke_token(token)
        if self._loop is not None:
            self._on_loop(lambda: self.hub.revoke(token))

    def add_team_member(self, team_id: str, user_id: str) -> None:
        self.state.add_team_member(team_id, user_id)

    def add_channel(
        self, team_id: str, name: str, display_name: str | None = None, type: str = "O"
    ) -> dict[str, Any]:
        return self.state.add_channel(team_id, name, display_name, type)

    def add_channel_member(self, channel_id: str, user_id: str) -> None:
        self.state.add_channel_member(channel_id, user_id)

    def remove_channel_member(self, channel_id: str, user_id: str) -> None:
        self.state.remove_channel_member(channel_id, user_id)

    def direct_channel(self, user_a: str, user_b: str) -> dict[str, Any]:
        return self.state.direct_channel(user_a, user_b)

    def group_channel(self, user_ids: list[str]) -> dict[str, Any]:
        return self.state.group_channel(list(user_ids))

    def post_as(
        self,
        user_id: str,
        channel_id: str,
        message: str,
        root_id: str = "",
        props: dict[str, Any] | None = None,
        file_ids: list[str] | None = None,
        type: str = "",
    ) -> dict[str, Any]:
        return self.state.create_post(user_id, channel_id, message, root_id, props, file_ids, type)

    def edit_post(self, post_id: str, message: str) -> dict[str, Any]:
        return self.state.patch_post(post_id, message=message)

    def delete_post(self, post_id: str) -> dict[str, Any]:
        return self.state.delete_post(post_id)

    def add_reaction(self, user_id: str, post_id: str, emoji_name: str) -> dict[str, Any]:
        return self.state.add_reaction(user_id, post_id, emoji_name)

    def remove_reaction(self, user_id: str, post_id: str, emoji_name: str) -> None:
        self.state.remove_reaction(user_id, post_id, emoji_name)

    def upload_file(
        self, user_id: str, channel_id: str, name: str, data: bytes, mime_type: str | None = None
    ) -> dict[str, Any]:
        return self.state.upload_file(user_id, channel_id, name, data, mime_type)

    def reactions_on(self, post_id: str) -> list[dict[str, Any]]:
        """The reactions on a post, oldest first."""
        return sorted(self.state.reactions_of(post_id), key=lambda r: r["create_at"])

    @property
    def settings(self) -> Any:
        """Server settings (max_file_size, enable_file_attachments, ...), changeable while running."""
        return self.state.settings

    def files_of(self, post_id: str) -> list[dict[str, Any]]:
        """FileInfos attached to a post."""
        with self.state.lock:
            return [copy.deepcopy(info) for info, _ in self.state.files.values() if info["post_id"] == post_id]

    def posts_in(self, channel_id: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        return self.state.channel_posts(channel_id, include_deleted=include_deleted)

    def get_user(self, user_id: str) -> dict[str, Any]:
        with self.state.lock:
            return copy.deepcopy(self.state.user(user_id))

    def get_channel(self, channel_id: str) -> dict[str, Any]:
        with self.state.lock:
            return copy.deepcopy(self.state.channel(channel_id))

    # ------------------------------------------------------------------ control API: faults and observation
    def drop_connections(self, resumable: bool = True, noticed: bool = True) -> None:
        """Cut every websocket's TCP connection (the client sees 1006). `resumable=False`: the server
        forgets them too (a restart). `noticed=False`: the server does not notice the drop (a half-open
        connection; the client noticed first): it keeps them active, their events are lost, and a
        reconnect with their connection_id gets a new one, until `notice_drops()` or the read deadline."""
        self._on_loop(lambda: self.hub.drop(resumable, noticed))

    def notice_drops(self) -> None:
        self._on_loop(self.hub.notice_drops)

    def set_silent(self, flag: bool) -> None:
        self.hub.silent = bool(flag)

    def set_header_auth(self, flag: bool) -> None:
        """Whether the websocket upgrade's Bearer header authenticates (off: only the challenge does)."""
        self.hub.header_auth = flag

    def set_reject_websocket(self, flag: bool) -> None:
        self.hub.reject = bool(flag)

    @property
    def request_log(self) -> list[dict[str, Any]]:
        with self._log_lock:
            return copy.deepcopy(self._log)

    def clear_request_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def connection_count(self, include_unnoticed: bool = False) -> int:
        """Live websocket connections (`include_unnoticed`: also the half-open ones the server still counts)."""
        return self._on_loop(lambda: self.hub.connection_count(include_unnoticed))

    @staticmethod
    def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(interval)
