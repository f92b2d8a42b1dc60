"""The core's helpdesk, over the Deskie API: what the relay asks, in the model's types.

Everything about Deskie's protocol that the relay used to know lives here: the blocking client runs
on a thread pool, never on the loop; raw case and message records become model types; the
`from_updated_time` formats (the API documents none) are tried and the one the account takes is
remembered; the one-second resolution of Deskie's times decides which listed cases may still change
within their second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from .. import errors
from ..blocking import off_loop
from ..markup.formatting import message_body
from ..model import (
    AgentAnswer,
    Budget,
    CaseMessage,
    CaseRef,
    CaseState,
    CaseStatus,
    CaseSummary,
    ChangedCases,
    Priority,
    WrittenMessage,
)
from .client import DeskieClient, DeskieRejected, find_group, parse_time

log = logging.getLogger(__name__)

# Deskie's times have one-second resolution and the filter's edge is undocumented: look back a
# little; the ledger makes seeing a message twice harmless. The cursor comes from Deskie's own
# timestamps (no clock skew to cover), so a few seconds are enough; a wider window would re-list
# every case changed in it on every poll, and the cost of a poll would grow with busy chats.
OVERLAP = timedelta(seconds=5)

# Filter formats seen to work against Deskie (the API documents none): tried in this order, and the
# first one the account accepts is remembered.
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "unix", "%d.%m.%Y")
FORMAT_CURSOR = "deskie.time_format"


def cursor_text(newest: datetime) -> str:
    """The stored cursor: the newest change seen, less the overlap, with the account's own offset."""
    return (newest - OVERLAP).isoformat()


def filter_value(cursor: str, fmt: str) -> str:
    """The `from_updated_time` value: in the account's offset (the one its timestamps carry)."""
    try:
        when = datetime.fromisoformat(cursor)
    except ValueError:
        return cursor  # written by an older version: already in the first format
    if fmt == "unix":
        return str(int(when.timestamp()))
    return when.strftime(fmt)


def _parse(value: Any) -> datetime | None:
    if not value or value == "-":
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


def _same_time(a: str | None, b: str | None) -> bool:
    """Two Deskie times are the same second (their text may differ in offset or spacing)."""
    pa, pb = _parse(a), _parse(b)
    return pa is not None and pa == pb


class DeskieHelpdesk:
    """`relay.ports.Helpdesk` for one Deskie account and its custom channel.

    `get_setting`/`set_setting` keep the remembered time format (the store's cursors, in the app);
    `default_group` is the setting new cases go to (a group id or exact title).
    """

    def __init__(
        self,
        client: DeskieClient,
        channel: str,
        pool: Executor,
        *,
        get_setting: Callable[[str], str | None] = lambda key: None,
        set_setting: Callable[[str, str], None] = lambda key, value: None,
        default_group: str = "",
    ) -> None:
        self.default_group = default_group
        self._group_id: int | None = None
        self._routed: dict[str, int] = {}
        self._group_lock = asyncio.Lock()
        self.client = client
        self.channel = channel
        self.pool = pool
        self._get = get_setting
        self._set = set_setting

    # ---- budget ----------------------------------------------------------------------------------
    def write_budget(self) -> Budget:
        budget = self.client.budget
        # A write costs two units (Deskie charges writes double).
        return Budget(ok_now=budget.available() >= 2, scarce=budget.scarce(), wait_s=budget.paused_for())

    def hold_for_customers(self, seconds: float) -> None:
        self.client.budget.claim(Priority.CUSTOMER, seconds)

    # ---- the default group ---------------------------------------------------------------------------
    async def default_group_id(self) -> int:
        """The configured group's id, read once; errors.ConfigError when Deskie has no such group."""
        async with self._group_lock:
            if self._group_id is None:
                groups = await off_loop(self.pool, self.client.list_groups)
                group = find_group(groups, self.default_group)
                if group is None:
                    raise errors.ConfigError(f"Deskie has no group '{self.default_group}' (by id or exact title)",
                                             key="deskie.default_group")
                self._group_id = int(group["group_id"])
            return self._group_id

    async def group_id(self, wanted: str, key: str) -> int:
        """A group's id by id or exact title (a channel's route), read once; errors.ConfigError naming
        `key` when Deskie has no such group."""
        async with self._group_lock:
            if wanted not in self._routed:
                groups = await off_loop(self.pool, self.client.list_groups)
                group = find_group(groups, wanted)
                if group is None:
                    raise errors.ConfigError(f"Deskie has no group '{wanted}' (by id or exact title)", key=key)
                self._routed[wanted] = int(group["group_id"])
            return self._routed[wanted]

    async def check_groups(self, named: Sequence[tuple[str, str]]) -> None:
        """The default group and every (group, config key) named elsewhere (routes, workspaces' default
        groups) exist; errors.ConfigError naming the key of the first that does not."""
        await self.default_group_id()
        for wanted, key in named:
            await self.group_id(wanted, key)

    # ---- customers' writes ----------------------------------------------------------------------
    async def open_case(
        self, *, user_custom_id: str, user_full_name: str, subject: str, content: str,
        files: list[tuple[str, bytes, str]] | None, content_html: str, group: str | None = None,
    ) -> CaseRef:
        group_id = await self.default_group_id() if group is None else await self.group_id(group, "routes")
        case = await off_loop(self.pool, self.client.create_case, channel=self.channel,
                              user_custom_id=user_custom_id, user_full_name=user_full_name, group_id=group_id,
                              subject=subject, content=content, files=files, content_html=content_html)
        return CaseRef(int(case["case_id"]), str(case.get("case_number") or ""),
                       int(case.get("user_id") or 0) or None, _text(case.get("updated_at")))

    async def add_message(
        self, case_id: int, user_id: int, content: str, files: list[tuple[str, bytes, str]] | None, *,
        content_html: str,
    ) -> WrittenMessage:
        try:
            msg = await off_loop(self.pool, self.client.add_user_message, case_id, user_id, content, files,
                                 content_html=content_html)
        except DeskieRejected as e:
            if e.not_found:
                raise errors.Gone(str(e)) from e
            raise
        return _written(msg)

    async def add_note(self, case_id: int, content: str) -> WrittenMessage:
        try:
            note = await off_loop(self.pool, self.client.add_note, case_id, content)
        except DeskieRejected as e:
            if e.not_found:
                raise errors.Gone(str(e)) from e
            raise
        return _written(note)

    # ---- finding an interrupted write --------------------------------------------------------------
    async def case_ref(self, case_id: int) -> CaseRef:
        case = await off_loop(self.pool, self.client.get_case, case_id)
        return CaseRef(int(case.get("case_id") or case_id), str(case.get("case_number") or ""),
                       int(case.get("user_id") or 0) or None, _text(case.get("updated_at")))

    async def customer_of(self, user_id: int) -> str:
        user = await off_loop(self.pool, self.client.get_user, user_id)
        return str(user.get("user_custom_id") or "")

    async def recent_cases_of(self, user_custom_id: str) -> list[CaseSummary]:
        candidates: list[dict[str, Any]] = []
        # Exact match is `^id^` in Deskie's search syntax; plain is the fallback for an account that
        # does not know it (the ids are fixed-length, so a substring cannot name another user).
        for value in (f"^{user_custom_id}^", user_custom_id):
            page = await off_loop(
                self.pool,
                self.client.list_cases,
                Priority.CUSTOMER,
                user_custom_id=value,
                channel=self.channel,
                sort="created_at_desc",
                limit=10,
                # A case merged into another meanwhile is still the one this write made.
                show_merged_cases="true",
            )
            candidates = page.items
            if candidates:
                break
        return [_summary(c) for c in candidates]

    async def case_is_of(self, case: CaseSummary, user_custom_id: str) -> bool:
        if not case.user_id:
            return True
        try:
            user = await off_loop(self.pool, self.client.get_user, case.user_id, Priority.CUSTOMER)
        except DeskieRejected:
            return True  # no user lookup here: the search filter has to do
        found = user.get("user_custom_id")
        return found is None or str(found) == user_custom_id

    async def messages(self, case_id: int, *, oldest_first: bool, limit: int) -> list[CaseMessage]:
        page = await off_loop(self.pool, self.client.list_messages, case_id, order="asc" if oldest_first else "desc",
                              limit=limit, priority=Priority.CUSTOMER)
        return [
            CaseMessage(message_id=int(m.get("message_id") or 0), note=bool(m.get("note")),
                        from_staff=bool(int(m.get("staff_id") or 0)), content=str(m.get("content") or ""),
                        content_html=str(m.get("content_html") or ""))
            for m in page.items
        ]

    # ---- one case ------------------------------------------------------------------------------
    async def case_state(self, case_id: int, *, priority: Priority) -> CaseState:
        try:
            case = await off_loop(self.pool, self.client.get_case, case_id, priority)
        except DeskieRejected as e:
            if not e.not_found:
                raise
            return CaseState(CaseStatus.GONE)
        return _state(case)

    async def set_status(self, case_id: int, status: CaseStatus, *, priority: Priority) -> CaseState:
        try:
            case = await off_loop(self.pool, self.client.set_case_status, case_id, status.value, priority)
        except DeskieRejected as e:
            if not e.not_found:
                raise
            return CaseState(CaseStatus.GONE)
        return _state(case)

    async def answers(self, case_id: int) -> list[AgentAnswer]:
        try:
            page = await off_loop(self.pool, self.client.list_messages, case_id, order="desc", limit=100)
        except DeskieRejected as e:
            if e.not_found:
                raise errors.Gone(str(e)) from e
            raise
        staff = [
            m for m in page.items
            if int(m.get("staff_id") or 0) and not m.get("note") and int(m.get("message_id") or 0)
        ]
        staff.sort(key=lambda m: int(m["message_id"]))
        out: list[AgentAnswer] = []
        for m in staff:
            files = list(m.get("attachments") or [])
            text = message_body(m.get("content"), m.get("content_html"))
            if not text and not files:
                continue
            out.append(AgentAnswer(message_id=int(m["message_id"]), case_id=case_id, text=text,
                                   attachments=files, staff_id=int(m.get("staff_id") or 0) or None))
        return out

    # ---- changes ---------------------------------------------------------------------------------
    async def changed_cases(self, cursor: str | None) -> ChangedCases:
        params: dict[str, Any] = {"channel": self.channel, "limit": 100}
        cases = await self._changed_since(cursor, params) if cursor else None
        if cases is None:
            # First poll ever (or a filter the account refuses in every format): the most recent
            # changes, which also tell the account's offset.
            params["sort"] = "updated_at_desc"
            cases = (await off_loop(self.pool, self.client.list_cases, Priority.RECONCILE, **params)).items
        newest: datetime | None = None
        for case in cases:
            updated = _parse(case.get("updated_at"))
            if updated is not None and (newest is None or updated > newest):
                newest = updated
        out: list[CaseSummary] = []
        for case in cases:
            out.append(_summary(
                case,
                # Times have one-second resolution: a case changed in the newest second of this
                # listing may change again within that second, after the list call, keeping the
                # same updated_at. Only a listing that shows a later second proves that second over.
                at_edge=_parse(case.get("updated_at")) == newest,
            ))
        return ChangedCases(out, cursor_text(newest) if newest is not None else None)

    def nothing_newer_than_own_write(self, case: CaseSummary, own_updated_at: str | None) -> bool:
        return bool(case.updated_at) and _same_time(case.updated_at, own_updated_at) and not case.more_than_a_message

    async def _changed_since(self, cursor: str, params: dict[str, Any]) -> list[dict[str, Any]] | None:
        remembered = self._get(FORMAT_CURSOR)
        formats = [remembered] if remembered in TIME_FORMATS else list(TIME_FORMATS)
        for fmt in formats:
            assert fmt is not None
            query = dict(params, from_updated_time=filter_value(cursor, fmt), sort="updated_at_asc")
            try:
                cases = await off_loop(self.pool, lambda q=query: list(self.client.iter_cases(Priority.RECONCILE, **q)))
            except DeskieRejected as e:
                if e.status != 400:
                    raise
                log.info("Deskie refused from_updated_time in format %r (%s); trying another", fmt, e.code)
                continue
            if remembered != fmt:
                self._set(FORMAT_CURSOR, fmt)
            return cases
        if remembered:
            self._set(FORMAT_CURSOR, "")  # try them all again next time
        log.warning("Deskie accepts no from_updated_time format known here; polling the latest changes")
        return None


def _more_than_a_message(case: dict[str, Any]) -> bool:
    """The listing shows what the bot's own write cannot have done: the bot never closes, trashes or
    marks spam, and an agent's answer in the second of the last change shows in `last_response_at`."""
    if case.get("status") == "closed" or case.get("deleted") or case.get("spam"):
        return True
    answered, changed = _parse(case.get("last_response_at")), _parse(case.get("updated_at"))
    return answered is not None and changed is not None and answered >= changed


def _summary(case: dict[str, Any], *, at_edge: bool = False) -> CaseSummary:
    return CaseSummary(
        case_id=int(case.get("case_id") or 0),
        status=CaseStatus.of(case.get("status")),
        updated_at=str(case.get("updated_at") or ""),
        user_id=int(case.get("user_id") or 0),
        subject=str(case.get("subject") or ""),
        number=str(case.get("case_number") or ""),
        created_at=parse_time(case.get("created_at")),
        at_edge=at_edge,
        more_than_a_message=_more_than_a_message(case),
    )


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def _state(case: dict[str, Any]) -> CaseState:
    return CaseState(CaseStatus.of(case.get("status")), _text(case.get("updated_at")),
                     removed=bool(case.get("deleted")) or bool(case.get("spam")), user_id=int(case.get("user_id") or 0))


def _written(msg: dict[str, Any]) -> WrittenMessage:
    return WrittenMessage(int(msg.get("message_id") or 0), _text(msg.get("created_at")))

