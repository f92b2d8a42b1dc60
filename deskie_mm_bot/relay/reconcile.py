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

from .. import errors
from ..model import CaseStatus, CaseSummary, ConvState
from ..store import Conversation, Store, content_hash
from .answers import Answers
from .ports import Helpdesk

log = logging.getLogger(__name__)

CURSOR = "deskie.cases_updated_since"
OWED_READS_PER_POLL = 2
OWED_READ_DELAY = 2.0  # seconds: a later poll, when the second of the own write is surely over


class Reconciler:
    def __init__(
        self,
        store: Store,
        helpdesk: Helpdesk,
        *,
        on_new_replies: Callable[[], None] = lambda: None,
        adopt_unknown: Callable[[CaseSummary], Awaitable[Conversation | None]] | None = None,
        clock: Callable[[], float] = time.time,
        answers: Answers | None = None,
    ) -> None:
        self.clock = clock
        self.answers = answers if answers is not None else Answers(store)
        self.store = store
        self.helpdesk = helpdesk
        self.on_new_replies = on_new_replies
        self.adopt_unknown = adopt_unknown
        self.polls = 0

    async def poll(self) -> int:
        """One reconciliation pass; returns how many missed answers were queued."""
        changed = await self.helpdesk.changed_cases(self.store.get_cursor(CURSOR) or None)
        self.polls += 1
        queued = 0
        for case in changed.cases:
            queued += await self._reconcile_case(case)
        for conv in self.store.owed_reads(self.clock(), OWED_READS_PER_POLL):
            assert conv.case_id is not None
            fresh = await self._read_answers(conv.case_id, conv)
            if fresh is not None:
                queued += fresh
                self.store.set_case_updated_at(conv.id, conv.own_updated_at or conv.case_updated_at or "")
        if changed.cursor is not None:
            self.store.set_cursor(CURSOR, changed.cursor)
        if queued:
            log.info("reconciliation found %d answer(s) the webhook did not bring", queued)
            self.on_new_replies()
        return queued

    async def _reconcile_case(self, case: CaseSummary) -> int:
        case_id = case.case_id
        conv = self.store.conversation_by_case(case_id) if case_id else None
        if conv is None and self.adopt_unknown is not None and case_id and case.status != CaseStatus.CLOSED:
            conv = await self.adopt_unknown(case)
        if conv is None:
            return 0
        updated_at = case.updated_at
        if updated_at and updated_at == conv.case_updated_at:
            return 0
        if self.helpdesk.nothing_newer_than_own_write(case, conv.own_updated_at):
            # Nothing newer than the bot's own write: no read now, one later (see the module's doc).
            self.store.owe_read(conv.id, self.clock() + OWED_READ_DELAY)
            return 0
        # An answer found on an open case reopens a closed chat, by the answers door's one rule.
        queued = await self._read_answers(case_id, conv,
                                          case_open=case.status in (CaseStatus.OPEN, CaseStatus.WAITING))
        if queued is None:
            return 0
        if case.status == CaseStatus.CLOSED:
            self.store.want_reaction(conv.id, "closed_mark")  # once per chat, however often seen
        if case.status == CaseStatus.CLOSED and conv.state != ConvState.CLOSED:
            self.store.set_conversation_state(conv.id, ConvState.CLOSED)
            log.info("case %s was closed in Deskie; the next message opens a new case", case_id)
        if updated_at and not case.at_edge:
            # A case changed in the listing's newest second may change again within it, keeping
            # its updated_at: until a later listing proves that second over, it is read again
            # (the cursor's overlap keeps it listed).
            self.store.set_case_updated_at(conv.id, updated_at)
        return queued

    async def _read_answers(self, case_id: int, conv: Conversation, *, case_open: bool = True) -> int | None:
        """Queue the case's answers the ledger does not know; None when Deskie will not show the case."""
        try:
            answers = await self.helpdesk.answers(case_id)
        except errors.Rejected as e:
            # One case Deskie will not show (deleted, say) must not stop the poll for the others.
            if isinstance(e, errors.Gone):
                self.store.set_conversation_state(conv.id, ConvState.CLOSED)
            log.warning("reconciliation skips case %s: %s", case_id, e)
            return None
        known = self.store.known_message_ids([a.message_id for a in answers if a.message_id is not None])
        queued = 0
        for a in answers:
            if a.message_id is None or a.message_id in known:
                continue  # (a listed answer always has its id)
            if self._resolve_unnamed(case_id, a.text, a.message_id):
                continue
            if self.answers.record(conv, a, source="reconcile", case_open=case_open):
                queued += 1
        return queued

    def _resolve_unnamed(self, case_id: int, text: str, message_id: int) -> bool:
        """A webhook without a message id brought this text already: give that record the id."""
        reply_id = self.store.unresolved_reply(case_id, content_hash(text))
        return reply_id is not None and self.store.resolve_reply(reply_id, message_id)
