"""Reconciliation: catch agents' answers whose webhook was missed, and cases closed in Deskie.

One list call per poll (`from_updated_time` from a stored cursor, oldest change first), then the
messages of only those cases that changed. The cost does not grow with the number of open chats.

The bot knows what it wrote itself: a case listed with nothing newer than the bot's own last write
is not read for it (40 chats opened in one second would otherwise be read on every poll). Deskie's
times have one-second resolution, so such a case is read once later, a few per poll at most, in case
someone else wrote in that same second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from ..blocking import off_loop
from ..deskie.client import DeskieClient, DeskieRejected
from ..deskie.ratebudget import Priority
from ..model import ConvState
from ..store import Conversation, Store, content_hash
from .outbound import reply_text

log = logging.getLogger(__name__)
T = TypeVar("T")

CURSOR = "deskie.cases_updated_since"
# Deskie's times have one-second resolution and the filter's edge is undocumented: look back a
# little; the ledger makes seeing a message twice harmless. The cursor comes from Deskie's own
# timestamps (no clock skew to cover), so a few seconds are enough; a wider window would re-list
# every case changed in it on every poll, and the cost of a poll would grow with busy chats.
OVERLAP = timedelta(seconds=5)
OWED_READS_PER_POLL = 2
OWED_READ_DELAY = 2.0  # seconds: a later poll, when the second of the own write is surely over


def _only_own_write(case: dict[str, Any], updated_at: str, own: str | None) -> bool:
    """Whether the listing shows nothing newer than the bot's own last write. The bot never closes,
    trashes or marks spam, and an agent's answer in that same second shows in `last_response_at`."""
    if not updated_at or not _same_time(updated_at, own):
        return False
    if case.get("status") == "closed" or case.get("deleted") or case.get("spam"):
        return False
    return not _answered_since(case, updated_at)


def _answered_since(case: dict[str, Any], own: str) -> bool:
    """The case's `last_response_at` (an agent's last answer, where Deskie lists it) is not older than
    the bot's own write: someone answered in that very second, so it is read now."""
    answered, written = _parse(case.get("last_response_at")), _parse(own)
    return answered is not None and written is not None and answered >= written


def _same_time(a: str | None, b: str | None) -> bool:
    """Two Deskie times are the same second (their text may differ in offset or spacing)."""
    pa, pb = _parse(a), _parse(b)
    return pa is not None and pa == pb


def _parse(value: Any) -> datetime | None:
    if not value or value == "-":
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


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


class Reconciler:
    def __init__(
        self,
        store: Store,
        deskie: DeskieClient,
        channel: str,
        pool: Executor,
        *,
        on_new_replies: Callable[[], None] = lambda: None,
        adopt_unknown: Callable[[dict[str, Any]], Awaitable[Conversation | None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.store = store
        self.deskie = deskie
        self.channel = channel
        self.pool = pool
        self.on_new_replies = on_new_replies
        self.adopt_unknown = adopt_unknown
        self.polls = 0

    async def poll(self) -> int:
        """One reconciliation pass; returns how many missed answers were queued."""
        params: dict[str, Any] = {"channel": self.channel, "limit": 100}
        cursor = self.store.get_cursor(CURSOR)
        cases = await self._changed_since(cursor, params) if cursor else None
        if cases is None:
            # First poll ever (or a filter the account refuses in every format): the most recent
            # changes, which also tell the account's offset.
            params["sort"] = "updated_at_desc"
            cases = (await off_loop(self.pool, self.deskie.list_cases, Priority.RECONCILE, **params)).items
        self.polls += 1
        queued = 0
        newest: datetime | None = None
        for case in cases:
            updated = _parse(case.get("updated_at"))
            if updated is not None and (newest is None or updated > newest):
                newest = updated
        for case in cases:
            queued += await self._reconcile_case(case, at_edge=_parse(case.get("updated_at")) == newest)
        for conv in self.store.owed_reads(self.clock(), OWED_READS_PER_POLL):
            assert conv.case_id is not None
            fresh = await self._read_answers(conv.case_id, conv)
            if fresh is not None:
                queued += fresh
                self.store.set_case_updated_at(conv.id, conv.own_updated_at or conv.case_updated_at or "")
        if newest is not None:
            self.store.set_cursor(CURSOR, cursor_text(newest))
        if queued:
            log.info("reconciliation found %d answer(s) the webhook did not bring", queued)
            self.on_new_replies()
        return queued

    async def _changed_since(self, cursor: str, params: dict[str, Any]) -> list[dict[str, Any]] | None:
        remembered = self.store.get_cursor(FORMAT_CURSOR)
        formats = [remembered] if remembered in TIME_FORMATS else list(TIME_FORMATS)
        for fmt in formats:
            query = dict(params, from_updated_time=filter_value(cursor, fmt), sort="updated_at_asc")
            try:
                cases = await off_loop(self.pool, lambda q=query: list(self.deskie.iter_cases(Priority.RECONCILE, **q)))
            except DeskieRejected as e:
                if e.status != 400:
                    raise
                log.info("Deskie refused from_updated_time in format %r (%s); trying another", fmt, e.code)
                continue
            if remembered != fmt:
                self.store.set_cursor(FORMAT_CURSOR, fmt)
            return cases
        if remembered:
            self.store.set_cursor(FORMAT_CURSOR, "")  # try them all again next time
        log.warning("Deskie accepts no from_updated_time format known here; polling the latest changes")
        return None

    async def _reconcile_case(self, case: dict[str, Any], *, at_edge: bool = False) -> int:
        case_id = int(case.get("case_id") or 0)
        conv = self.store.conversation_by_case(case_id) if case_id else None
        if conv is None and self.adopt_unknown is not None and case_id and case.get("status") != "closed":
            conv = await self.adopt_unknown(case)
        if conv is None:
            return 0
        updated_at = str(case.get("updated_at") or "")
        if updated_at and updated_at == conv.case_updated_at:
            return 0
        if _only_own_write(case, updated_at, conv.own_updated_at):
            # Nothing newer than the bot's own write: no read now, one later (see the module's doc).
            self.store.owe_read(conv.id, self.clock() + OWED_READ_DELAY)
            return 0
        queued = await self._read_answers(case_id, conv)
        if queued is None:
            return 0
        if case.get("status") == "closed":
            self.store.want_reaction(conv.id, "closed_mark")  # once per chat, however often seen
        if case.get("status") == "closed" and conv.state != ConvState.CLOSED:
            self.store.set_conversation_state(conv.id, ConvState.CLOSED)
            log.info("case %s was closed in Deskie; the next message opens a new case", case_id)
        elif (case.get("status") in ("open", "waiting") and conv.state == ConvState.CLOSED and queued
              and self.store.current_conversation(conv.conv_key) is None):
            # Reopened by an agent's answer: the customer's reply belongs to this case again.
            self.store.set_conversation_state(conv.id, ConvState.ACTIVE)
        if updated_at and not at_edge:
            # Times have one-second resolution: a case changed in the newest second of this listing
            # may change again within that second, after the list call, keeping the same updated_at.
            # Only a listing that shows a later second proves that second over; until then the case
            # is read again (the cursor's overlap keeps it listed).
            self.store.set_case_updated_at(conv.id, updated_at)
        return queued

    async def _read_answers(self, case_id: int, conv: Conversation) -> int | None:
        """Queue the case's answers the ledger does not know; None when Deskie will not show the case."""
        try:
            page = await off_loop(self.pool, self.deskie.list_messages, case_id, order="desc", limit=100)
        except DeskieRejected as e:
            # One case Deskie will not show (deleted, say) must not stop the poll for the others.
            if e.not_found:
                self.store.set_conversation_state(conv.id, ConvState.CLOSED)
            log.warning("reconciliation skips case %s: %s", case_id, e)
            return None
        answers = [
            m for m in page.items
            if int(m.get("staff_id") or 0) and not m.get("note") and int(m.get("message_id") or 0)
        ]
        answers.sort(key=lambda m: int(m["message_id"]))
        known = self.store.known_message_ids([int(m["message_id"]) for m in answers])
        queued = 0
        for m in answers:
            mid = int(m["message_id"])
            if mid in known:
                continue
            files = list(m.get("attachments") or [])
            text = reply_text(m.get("content"), m.get("content_html"), files)
            if not text and not files:
                continue
            if self._resolve_unnamed(case_id, text, mid):
                continue
            if self.store.add_reply(
                message_id=mid,
                case_id=case_id,
                conversation_id=conv.id,
                body=text,
                attachments=files,
                source="reconcile",
                staff_id=int(m.get("staff_id") or 0) or None,
            ):
                queued += 1
        return queued

    def _resolve_unnamed(self, case_id: int, text: str, message_id: int) -> bool:
        """A webhook without a message id brought this text already: give that record the id."""
        reply_id = self.store.unresolved_reply(case_id, content_hash(text))
        return reply_id is not None and self.store.resolve_reply(reply_id, message_id)
