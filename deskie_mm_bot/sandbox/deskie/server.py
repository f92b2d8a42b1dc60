"""DeskieEmulator: the aiohttp server in a background thread, plus the Python control API."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from ..changes import ChangeFeed
from . import api, control_http
from .faults import Fault, FaultPlan
from .forms import MAX_TOTAL_BYTES, BodyError
from .ratelimit import Decision, RateLimiter, request_cost
from .state import AccountState, ApiError, Query
from .webhook import WebhookDispatcher

log = logging.getLogger(__name__)
T = TypeVar("T")


def _json(status: int, body: dict[str, Any] | list[Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


class DeskieEmulator:
    """A faithful in-process Deskie/Omnidesk API (see shared/reference/deskie-api.md)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rate_limit_per_minute: int = 1500,
        window_seconds: float = 60.0,
        utc_offset_minutes: int = 180,
        rate_limit_style: str = "429",
    ) -> None:
        if rate_limit_style not in ("429", "403"):
            raise ValueError("rate_limit_style must be '429' or '403'")
        self.host = host
        self.port = port
        self.rate_limit_style = rate_limit_style
        self.state = AccountState(utc_offset_minutes)
        self.limiter = RateLimiter(rate_limit_per_minute, window_seconds)
        self.faults = FaultPlan()
        self.webhooks = WebhookDispatcher()
        # Opt-in behaviours where the reference leaves room (see variants.py); shared by all parts.
        self.variants = self.state.variants
        self.webhooks.variants = self.variants
        self.state.webhook_sink = self.webhooks.submit
        self._log_lock = threading.Lock()
        self._request_log: list[dict[str, Any]] = []
        self._count_429 = 0
        self._file_downloads: list[int] = []
        self.changes = ChangeFeed()  # bumped by every write: what the sandbox console waits on
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DeskieEmulator:
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._setup())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="deskie-emulator", daemon=True)
        self._thread.start()
        ready.wait(timeout=15)
        if errors:
            self._thread = None
            raise errors[0]
        self.webhooks.start()
        return self

    async def _setup(self) -> None:
        app = web.Application(client_max_size=MAX_TOTAL_BYTES + 16 * 1024 * 1024)
        app.router.add_route("*", "/api/{tail:.*}", self._handle_api)
        app.router.add_get("/files/{file_id}/{name}", self._handle_file)
        control_http.register(app, self)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addr = self._runner.addresses[0]
        self.port = int(addr[1])
        self.state.base_url = self.url
        self.changes.bind(asyncio.get_running_loop())

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
            try:
                fut.result(timeout=10)
            except Exception:  # noqa: BLE001
                log.exception("emulator cleanup failed")

        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_rest(), loop).result(timeout=5)
        except Exception:  # noqa: BLE001
            log.exception("emulator task cancel failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None
        self._runner = None
        self.webhooks.stop()

    def __enter__(self) -> DeskieEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------- HTTP: /api
    def _rate_headers(self, d: Decision, refused: bool = False) -> dict[str, str]:
        v = self.variants
        headers: dict[str, str] = {}
        if v.rate_headers == "full":
            headers = {"rate_limit_per_minute": str(d.limit), "api_calls_left": str(d.left)}
        if d.retry_after is not None and (refused or v.rate_headers == "full"):
            headers[v.retry_after_header] = str(d.retry_after)
        return headers

    def _rate_refusal(self, kind: str, d: Decision) -> web.Response:
        with self._log_lock:
            self._count_429 += 1
        headers = self._rate_headers(d, refused=True)
        if kind == "403rate" or (kind == "throttle" and self.rate_limit_style == "403"):
            return _json(403, {"error": "Rate limit exceeded"}, headers)
        return _json(429, {"error": "rate_limit_exceeded"}, headers)

    def _authenticate(self, request: web.Request) -> tuple[Any, int]:
        """The staff member, or None with the refusal: 401 for a wrong API key, 403 for a staff
        e-mail the account does not know (how live code reads them, reference §3)."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None, 401
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, 401
        email, sep, key = decoded.partition(":")
        if not sep:
            return None, 401
        staff = self.state.authenticate(email, key)
        return staff, 0 if staff is not None else self.state.auth_failure_status(email)

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        query: Query = {k: request.query.getall(k) for k in request.query}
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": {k: (v[0] if len(v) == 1 else list(v)) for k, v in query.items()},
            "status": 0,
            "cost": 0,
            "t": time.time(),
            "case_id": None,
        }
        with self._log_lock:
            self._request_log.append(entry)
        resp = await self._api_response(request, query, entry)
        entry["status"] = resp.status
        if request.method != "GET":
            self.changes.bump()
        return resp

    async def _api_response(self, request: web.Request, query: Query, entry: dict[str, Any]) -> web.Response:
        fault = self.faults.next_fault(write=request.method != "GET")
        if fault is not None and fault.kind != "slow":
            return await self._apply_fault(fault)
        resp = await self._serve(request, query, entry)
        if fault is not None:
            # Done, but the answer comes late: what a client sees as a timeout after the fact.
            await asyncio.sleep(fault.seconds)
        return resp

    async def _serve(self, request: web.Request, query: Query, entry: dict[str, Any]) -> web.Response:
        staff, refusal = self._authenticate(request)
        if staff is None:
            return _json(refusal, {"error": "unauthorized" if refusal == 401 else "wrong_login"})
        cost = request_cost(request.method)
        decision = self.limiter.try_consume(cost)
        if not decision.allowed:
            return self._rate_refusal("throttle", decision)
        entry["cost"] = cost
        headers = self._rate_headers(decision)
        try:
            handler, params = api.resolve(request.method, request.path)
            ctx = api.Ctx(self.state, request, staff, query, params)
            status, body, case_id = await handler(ctx)
            entry["case_id"] = case_id
            if set(body) == {"total_count"} and self.variants.empty_list != "object":
                root = api.list_root(request.path)
                empty: Any = [] if self.variants.empty_list == "array" else {root: []}
                return _json(status, empty, headers)
            return _json(status, body, headers)
        except ApiError as exc:
            return _json(exc.status, {"error": exc.code}, headers)
        except BodyError as exc:
            return _json(400, {"error": exc.code}, headers)
        except web.HTTPRequestEntityTooLarge:
            return _json(400, {"error": "files_too_large"}, headers)
        except Exception:  # noqa: BLE001
            log.exception("emulator handler crashed")
            return _json(500, {"error": "internal_error"}, headers)

    async def _apply_fault(self, fault: Fault) -> web.Response:
        if fault.kind == "fail":
            return _json(fault.status, {"error": "internal_error"})
        if fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
            return _json(504, {"error": "gateway_timeout"})
        d = self.limiter.peek()
        return self._rate_refusal(fault.kind, Decision(False, d.limit, d.left, fault.retry_after))

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        try:
            fid = int(request.match_info["file_id"])
        except ValueError:
            raise web.HTTPNotFound() from None
        if self.variants.file_urls_need_auth:
            staff, refusal = self._authenticate(request)
            if staff is None:
                return _json(refusal, {"error": "unauthorized"})
        with self.state.lock:
            att = self.state.files.get(fid)
        if att is None or att.data is None:
            raise web.HTTPNotFound()
        with self._log_lock:
            self._file_downloads.append(fid)
        return web.Response(body=att.data, content_type=att.mime_type)

    # ------------------------------------------------------ control: setup
    def add_staff(self, email: str, full_name: str, api_key: str | None = None) -> dict[str, Any]:
        return self.state.add_staff(email, full_name, api_key)

    def add_group(self, title: str) -> dict[str, Any]:
        return self.state.add_group(title)

    def add_custom_channel(
        self,
        api_key: str = "cch12",
        title: str = "Mattermost",
        webhook_url: str | None = None,
        channel_type: str = "sync",
    ) -> dict[str, Any]:
        return self.state.add_channel(api_key, title, webhook_url, channel_type)

    def set_webhook_url(self, channel_api_key: str, url: str | None) -> None:
        self.state.set_webhook_url(channel_api_key, url)

    def set_channel_active(self, channel_api_key: str, active: bool) -> None:
        """Switch a custom channel off (or on) as an admin can in Deskie's channel settings."""
        with self.state.lock:
            self.state.channels[channel_api_key].active = active

    def set_webhook_enabled(self, enabled: bool) -> None:
        self.webhooks.enabled = bool(enabled)

    @property
    def webhook_format(self) -> str:
        return self.webhooks.format

    @webhook_format.setter
    def webhook_format(self, value: str) -> None:
        if value not in ("form", "json"):
            raise ValueError("webhook_format must be 'form' or 'json'")
        self.webhooks.format = value

    @property
    def webhook_retries(self) -> int:
        return self.webhooks.retries

    @webhook_retries.setter
    def webhook_retries(self, value: int) -> None:
        self.webhooks.retries = int(value)

    def advance_clock(self, seconds: float) -> None:
        """Shift the account clock (timestamps of new objects) forward; rate windows are unaffected."""
        with self.state.lock:
            self.state.clock_offset += seconds

    # ---------------------------------------------------- control: actions
    def agent_reply(
        self,
        case_id: int | str,
        content: str | None = None,
        html: str | None = None,
        note: bool = False,
        staff_id: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        message = self.state.agent_reply(case_id, content, html, note, staff_id, attachments)
        self.changes.bump()
        return message

    def create_outgoing_case(
        self,
        channel: str,
        user_custom_id: str,
        user_full_name: str,
        content: str,
        staff_id: int | None = None,
        subject: str | None = None,
    ) -> dict[str, Any]:
        case = self.state.create_outgoing_case(
            channel, user_custom_id, user_full_name, content, staff_id, subject
        )
        self.changes.bump()
        return case

    def close_case(self, case_id: int | str) -> dict[str, Any]:
        return self.set_status(case_id, "closed")

    def set_staff_email(self, old: str, new: str) -> None:
        """Change an agent's login e-mail: a client still using the old one gets 403 (wrong login)."""
        with self.state.lock:
            for st in self.state.staff.values():
                if st.email.lower() == old.lower():
                    st.email = new
                    return
            raise KeyError(old)

    def end_chat(self, case_id: int | str) -> dict[str, Any]:
        """An agent's "end chat" on an active chat: it joins the case lists; its status stays."""
        case = self.state.end_chat(case_id)
        self.changes.bump()
        return case

    def chat_active(self, case_id: int | str) -> bool:
        return self.state.chat_active(case_id)

    @property
    def chat_timeout(self) -> float:
        """The account's chat inactivity timeout in seconds (Deskie's default: 10 minutes)."""
        return self.state.chat_timeout

    @chat_timeout.setter
    def chat_timeout(self, seconds: float) -> None:
        with self.state.lock:
            self.state.chat_timeout = float(seconds)

    def set_status(self, case_id: int | str, status: str) -> dict[str, Any]:
        case = self.state.set_status(case_id, status)
        self.changes.bump()
        return case

    def cases(self, channel: str | None = None) -> list[dict[str, Any]]:
        return self.state.cases_list(channel)

    def get_case(self, case_id: int | str) -> dict[str, Any]:
        with self.state.lock:
            self.state.expire_chats()
            return self.state.control_case(case_id).to_api(self.state.fmt)

    def messages(self, case_id: int | str) -> list[dict[str, Any]]:
        return self.state.messages_list(case_id)

    def user(self, user_id: int) -> dict[str, Any]:
        return self.state.user_dict(user_id)

    def rule_message(self, case_id: int | str, content: str) -> dict[str, Any]:
        """A message a rule sends to the customer: no agent behind it (staff_id 0, sent_via_rule)."""
        return self.state.agent_reply(case_id, content, None, False, 0, None)

    def delete_file(self, file_id: int) -> None:
        """The file behind an attachment URL is gone: its URL answers 404 from now on."""
        with self.state.lock:
            self.state.files.pop(int(file_id), None)

    @property
    def file_downloads(self) -> list[int]:
        """Ids of the files served at their attachment URLs, one entry per download."""
        with self._log_lock:
            return list(self._file_downloads)

    # ----------------------------------------------------- control: faults
    def fail_next(self, n: int, status: int = 500) -> None:
        self.faults.push(Fault("fail", status=status), n)

    def hang_next(self, n: int, seconds: float = 30.0) -> None:
        self.faults.push(Fault("hang", seconds=seconds), n)

    def slow_next_write(self, n: int, seconds: float = 5.0) -> None:
        """The next n writes are applied, but answered only after `seconds`."""
        self.faults.push(Fault("slow", seconds=seconds), n)

    def throttle_next(self, n: int, retry_after: int = 5) -> None:
        self.faults.push(Fault("throttle", retry_after=retry_after), n)

    def outage(self, seconds: float, kind: str = "5xx") -> None:
        self.faults.outage(seconds, kind)

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_rate_limit(self, rpm: int, window_seconds: float | None = None) -> None:
        self.limiter.configure(rpm, window_seconds)

    def outage_left(self) -> float:
        """Seconds left of the current outage (0 when none)."""
        return self.faults.outage_left()

    # --------------------------------------------------- control: counters
    @property
    def request_log(self) -> list[dict[str, Any]]:
        with self._log_lock:
            return [dict(e) for e in self._request_log]

    @property
    def count_429(self) -> int:
        with self._log_lock:
            return self._count_429

    def writes(self, case_id: int | None = None) -> int:
        """Successful POST/PUT API requests on ``/api/cases/{case_id}...`` (all API writes if None)."""
        n = 0
        for e in self.request_log:
            if e["method"] not in ("POST", "PUT") or not 200 <= e["status"] < 300:
                continue
            if case_id is None or (e["case_id"] == case_id and e["path"].startswith("/api/cases/")):
                n += 1
        return n

    @property
    def webhook_deliveries(self) -> list[dict[str, Any]]:
        return self.webhooks.deliveries

    def clear_request_log(self) -> None:
        with self._log_lock:
            self._request_log.clear()
            self._count_429 = 0

    def counters(self) -> dict[str, Any]:
        d = self.limiter.peek()
        return {
            "requests": len(self.request_log),
            "count_429": self.count_429,
            "writes": self.writes(),
            "webhook_deliveries": len(self.webhook_deliveries),
            "rate_limit_per_minute": d.limit,
            "api_calls_left": d.left,
            "outage_left": round(self.outage_left(), 1),
        }

    @staticmethod
    def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(interval)
