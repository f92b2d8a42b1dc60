"""Deskie API client: one `requests.Session`, explicit timeouts, one rate budget, retries by meaning.

- Rate limiting (429; also a 403 whose body says "rate limit exceeded", a variant with no evidence
  behind it that costs nothing to tolerate) is never an error to the caller: the request was not
  done, so the client pauses every call for `retry_after` and sends it again.
- 401 (wrong API key), any other 403 (wrong staff login, or no permission) and `staff_not_active`
  are `DeskieAuthError`: configuration, not a refused message. Nothing is marked failed; the bot stops.
- Timeouts, connection errors and 5xx on reads are retried with capped backoff. On writes they are
  raised as `DeskieUnavailable(maybe_applied=...)`: Deskie has no idempotency key, so only the caller,
  who knows what it wrote, can check whether the write happened before repeating it.
- Permanent 4xx come back as `DeskieRejected` with Deskie's error code, to be handled by meaning.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from .. import errors
from ..health import ServiceState
from ..retry import Backoff
from .ratebudget import Priority, RateBudget

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0


class DeskieError(errors.BotError):
    """Base class; the message never contains credentials."""


class DeskieAuthError(DeskieError, errors.CredentialsRejected):
    """401, 403 or `staff_not_active`: the staff e-mail or API key is wrong, or that agent may not use
    the API. The bot cannot work on; the message names the key to fix."""


# Deskie's error codes that mean the API user itself is not usable (reference §3).
_AUTH_CODES = ("staff_not_active",)


class DeskieUnavailable(DeskieError, errors.Unavailable):
    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


class DeskieRejected(DeskieError, errors.Rejected):
    def __init__(self, status: int, code: str, path: str) -> None:
        super().__init__(f"Deskie refused {path}: HTTP {status} {code}")
        self.status = status
        self.code = code

    @property
    def not_found(self) -> bool:
        return self.status == 404 or self.code.endswith("not_found")


class Stopping(DeskieError, errors.Stopping):
    """The bot is shutting down; the call was not sent."""


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total_count: int


def parse_time(value: str | None) -> float | None:
    """RFC-2822 time as Deskie sends it ("Mon, 05 May 2014 00:15:17 +0300") -> epoch seconds."""
    if not value or value == "-":
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def unwrap_list(data: Mapping[str, Any], root: str) -> Page:
    """Deskie lists are objects keyed "0", "1", ... plus "total_count"."""
    keys = sorted((k for k in data if k.isdigit()), key=int)
    items = []
    for k in keys:
        entry = data[k]
        if isinstance(entry, dict):
            items.append(entry.get(root, entry))
    total = data.get("total_count", len(items))
    try:
        total_count = int(total)
    except (TypeError, ValueError):
        total_count = len(items)
    return Page(items, total_count)


def _is_rate_limited(status: int, body: str) -> bool:
    return status == 429 or (status == 403 and "rate limit exceeded" in body.lower())


class DeskieClient:
    def __init__(
        self,
        base_url: str,
        staff_email: str,
        api_key: str,
        *,
        budget: RateBudget | None = None,
        verify: bool | str = True,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
        max_read_attempts: int = 6,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = (staff_email, api_key)
        self.session.verify = verify
        self.session.headers["User-Agent"] = "deskie-mm-bot"
        self.budget = budget or RateBudget()
        self.timeout = timeout
        self.max_read_attempts = max_read_attempts
        self._stop = threading.Event()
        self._no_retries = False
        self._sleep = sleep or self._stop.wait
        self.last_ok_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    def fail_fast(self) -> None:
        """Draining before a stop: requests still go out, but a failure is final at once (no backoff
        waits on a server that fails; a rate limit is still waited for, within the caller's deadline)."""
        self._no_retries = True

    def state(self) -> ServiceState:
        """How Deskie has been answering: rate limited (waiting), failing since the last success, ok."""
        if self.budget.paused_for() > 0:
            return ServiceState.RATE_LIMITED
        if self.last_error_at is not None and (self.last_ok_at is None or self.last_error_at > self.last_ok_at):
            return ServiceState.FAILING
        return ServiceState.OK if self.last_ok_at is not None else ServiceState.UNKNOWN

    def stop_retrying(self) -> None:
        """Shutting down: a request on the wire finishes, but nothing new starts and no retry waits."""
        self._stop.set()
        self.budget.close()

    def close(self) -> None:
        self.stop_retrying()
        self.session.close()

    # ---- transport ------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
        priority: Priority = Priority.CUSTOMER,
    ) -> dict[str, Any]:
        write = method.upper() != "GET"
        cost = 2 if write else 1
        backoff = Backoff(base=1.0, cap=30.0)
        attempt = 0
        while True:
            if self._stop.is_set():
                raise Stopping("stopping")
            self.budget.acquire(cost, priority)
            attempt += 1
            try:
                resp = self.session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    json=json_body,
                    data=data,
                    files=files,
                    timeout=self.timeout,
                )
            except requests.RequestException as e:
                # Any transport failure (also a body cut mid-read, a bad redirect): the units taken for
                # it are settled, or the budget shrinks for good and callers end up waiting forever.
                self.budget.settle(cost, None)
                # A connect failure never reached Deskie; a read timeout may have been applied.
                maybe = write and not isinstance(e, requests.ConnectTimeout) and not _refused(e)
                self._note_error(f"{method} {path}: {type(e).__name__}")
                if write or attempt >= self.max_read_attempts or self._no_retries:
                    raise DeskieUnavailable(f"Deskie unreachable: {type(e).__name__}", maybe_applied=maybe) from None
                self._sleep(backoff.next_delay())
                continue
            body = resp.text
            if _is_rate_limited(resp.status_code, body):
                pause = self.budget.settle(cost, resp.headers, refused=True) or 5.0
                log.warning("Deskie rate limit reached; pausing all calls for %.0f s", pause)
                self._note_error(f"rate limited, paused {pause:.0f}s")
                attempt -= 1  # a refused call is not a failed attempt: keep the read retries for real failures
                continue
            self.budget.settle(cost, resp.headers)
            if resp.status_code >= 500:
                self._note_error(f"{method} {path}: HTTP {resp.status_code}")
                if write or attempt >= self.max_read_attempts or self._no_retries:
                    raise DeskieUnavailable(f"Deskie answered HTTP {resp.status_code}", maybe_applied=write)
                self._sleep(backoff.next_delay())
                continue
            if resp.status_code in (401, 403) or (resp.status_code >= 400 and _error_code(body) in _AUTH_CODES):
                self._note_error(f"HTTP {resp.status_code}")
                raise DeskieAuthError(_auth_problem(resp.status_code, _error_code(body)))
            if resp.status_code >= 400:
                raise DeskieRejected(resp.status_code, _error_code(body), path)
            self.last_ok_at = time.time()
            if not body.strip():
                return {}
            try:
                parsed = resp.json()
            except ValueError:
                raise DeskieUnavailable(f"Deskie sent a non-JSON answer to {path}") from None
            return parsed if isinstance(parsed, dict) else {"data": parsed}

    def _note_error(self, text: str) -> None:
        self.last_error = text
        self.last_error_at = time.time()
        log.debug("Deskie: %s", text)

    # ---- cases -----------------------------------------------------------------------------------
    def create_case(
        self,
        *,
        channel: str,
        user_custom_id: str,
        user_full_name: str,
        group_id: int,
        subject: str,
        content: str,
        files: list[tuple[str, bytes, str]] | None = None,
        content_html: str | None = None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "channel": channel,
            "user_custom_id": user_custom_id,
            "user_full_name": user_full_name,
            "group_id": group_id,
            "subject": subject,
            "content": content,
        }
        if content_html:
            fields["content_html"] = content_html
        if files:
            data, parts = _multipart("case", fields, files)
            return self.request("POST", "/api/cases.json", data=data, files=parts)["case"]
        return self.request("POST", "/api/cases.json", json_body={"case": fields})["case"]

    def get_case(self, case_id: int | str, priority: Priority = Priority.CUSTOMER) -> dict[str, Any]:
        return self.request("GET", f"/api/cases/{case_id}.json", priority=priority)["case"]

    def set_case_status(self, case_id: int, status: str, priority: Priority = Priority.RECONCILE) -> dict[str, Any]:
        return self.request(
            "PUT", f"/api/cases/{case_id}.json", json_body={"case": {"status": status}}, priority=priority
        )["case"]

    def list_cases(self, priority: Priority = Priority.RECONCILE, **params: Any) -> Page:
        # A chat-type channel's live chats are left out of case lists unless asked for: exactly the
        # cases the bot looks for (a missed answer, an interrupted create). Free where ignored.
        params.setdefault("show_active_chats", "true")
        data = self.request("GET", "/api/cases.json", params=params, priority=priority)
        return unwrap_list(data, "case")

    def iter_cases(self, priority: Priority = Priority.RECONCILE, **params: Any) -> Iterator[dict[str, Any]]:
        limit = int(params.pop("limit", 100))
        page = 1
        seen: set[Any] = set()
        while page <= 500:
            batch = self.list_cases(priority, page=page, limit=limit, **params)
            fresh = [c for c in batch.items if c.get("case_id") not in seen]
            seen.update(c.get("case_id") for c in fresh)
            yield from fresh
            # A server that ignores `page` repeats itself: stop there; the cursor moves on from the
            # newest change seen, so the next poll gets the rest.
            if not fresh or len(batch.items) < limit or page * limit >= batch.total_count:
                return
            page += 1

    # ---- messages --------------------------------------------------------------------------------
    def add_user_message(
        self,
        case_id: int,
        user_id: int,
        content: str,
        files: list[tuple[str, bytes, str]] | None = None,
        *,
        content_html: str | None = None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"user_id": user_id, "content": content}
        if content_html:
            fields["content_html"] = content_html
        path = f"/api/cases/{case_id}/messages.json"
        if files:
            data, parts = _multipart("message", fields, files)
            return self.request("POST", path, data=data, files=parts)["message"]
        return self.request("POST", path, json_body={"message": fields})["message"]

    def add_note(self, case_id: int, content: str) -> dict[str, Any]:
        data = self.request("POST", f"/api/cases/{case_id}/note.json", json_body={"note": {"content": content}})
        return data.get("note") or data.get("message") or {}

    def list_messages(
        self,
        case_id: int,
        *,
        order: str = "desc",
        limit: int = 100,
        page: int = 1,
        priority: Priority = Priority.RECONCILE,
    ) -> Page:
        data = self.request(
            "GET",
            f"/api/cases/{case_id}/messages.json",
            params={"order": order, "limit": limit, "page": page},
            priority=priority,
        )
        return unwrap_list(data, "message")

    # ---- directory -------------------------------------------------------------------------------
    def list_groups(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while page <= 500:
            batch = unwrap_list(
                self.request(
                    "GET", "/api/groups.json", params={"page": page, "limit": 100}, priority=Priority.DIRECTORY
                ),
                "group",
            )
            out.extend(batch.items)
            if len(batch.items) < 100 or len(out) >= batch.total_count:
                return out
            page += 1
        return out

    def get_user(self, user_id: int, priority: Priority = Priority.DIRECTORY) -> dict[str, Any]:
        return self.request("GET", f"/api/users/{user_id}.json", priority=priority)["user"]

    def list_custom_channels(self) -> list[dict[str, Any]]:
        data = self.request("GET", "/api/custom_channels.json", priority=Priority.DIRECTORY)
        return unwrap_list(data, "custom_channel").items


def _auth_problem(status: int, code: str) -> str:
    if code == "staff_not_active":
        return ("Deskie says the API agent is not active (staff_not_active): reactivate the agent of "
                "deskie.staff_email, or use another agent's e-mail and API key")
    if status == 401:
        return "Deskie rejected the API key (HTTP 401): check deskie.api_key (and deskie.staff_email)"
    return ("Deskie rejected the staff login (HTTP 403): check deskie.staff_email (an active agent "
            "allowed to use the API) and deskie.api_key")


def _refused(e: Exception) -> bool:
    text = str(e).lower()
    return "refused" in text or "name or service not known" in text


def _error_code(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:80] or "error"
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return "error"


def _multipart(
    root: str, fields: Mapping[str, Any], files: list[tuple[str, bytes, str]]
) -> tuple[dict[str, str], list[tuple[str, tuple[str, bytes, str]]]]:
    data = {f"{root}[{k}]": str(v) for k, v in fields.items()}
    parts = [(f"{root}[attachments][{i}]", (name, blob, mime)) for i, (name, blob, mime) in enumerate(files)]
    return data, parts


def find_group(groups: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """The default group by id or exact title."""
    for g in groups:
        if str(g.get("group_id")) == wanted.strip():
            return g
    for g in groups:
        if g.get("group_title") == wanted:
            return g
    return None
