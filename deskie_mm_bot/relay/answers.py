"""The answers door: an agent's answer enters here, whether Deskie's webhook brought it or the poll
found it. It is recorded in the ledger first (posting happens from there, `outbound.py`), once per
Deskie message id whichever door saw it first, and one rule says when it reopens a closed chat.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ..model import AgentAnswer, ConvState
from ..store import Conversation, Store

log = logging.getLogger(__name__)


class WebhookRefused(Exception):
    """The webhook's answer is not taken: `status` is the HTTP status the adapter answers with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class Answers:
    def __init__(
        self,
        store: Store,
        *,
        on_recorded: Callable[[], None] = lambda: None,
        open_outgoing: Callable[[int, str], Awaitable[Conversation | None]] | None = None,
    ) -> None:
        self.store = store
        self.on_recorded = on_recorded  # wakes the outbound relay
        # (case id, customer id) -> the chat of a case an agent started, or None: not ours.
        self.open_outgoing = open_outgoing

    async def from_webhook(self, answer: AgentAnswer) -> str:
        """Record an answer the webhook brought. Returns what was done; raises WebhookRefused."""
        conv = self.store.conversation_by_case(answer.case_id)
        if conv is None and self.open_outgoing is not None:
            conv = await self.open_outgoing(answer.case_id, answer.custom_user_id or "")
        if conv is None:
            raise WebhookRefused(404, "unknown case")
        if answer.custom_user_id and answer.custom_user_id != conv.user_custom_id:
            # Never into another customer's chat (nor another workspace's: the id names it).
            raise WebhookRefused(403, "user does not match the case")
        if not answer.text and not answer.attachments:
            return "ignored: empty"
        with self.store.lazy_commits():  # reconciliation finds an answer a power cut took
            fresh = self.record(conv, answer, source="webhook")
        if not fresh:
            return "duplicate"
        self.on_recorded()
        return "recorded"

    def record(self, conv: Conversation, answer: AgentAnswer, *, source: str, case_open: bool = True) -> bool:
        """Put the answer in the ledger; True when it was new. `case_open`: what the helpdesk says of the
        case now (the webhook does not say: an agent's answer reopens a case)."""
        fresh = self.store.add_reply(
            message_id=answer.message_id,
            case_id=answer.case_id,
            conversation_id=conv.id,
            body=answer.text,
            attachments=answer.attachments,
            source=source,
            staff_id=answer.staff_id,
        )
        if fresh and case_open:
            self._reopen(conv)
        return fresh

    def _reopen(self, conv: Conversation) -> None:
        """A new answer on a closed chat reopens it, unless a newer chat took its place: the customer's
        reply then belongs to this case again."""
        now = self.store.conversation(conv.id) or conv
        if now.state == ConvState.CLOSED and self.store.current_conversation(now.conv_key) is None:
            self.store.set_conversation_state(now.id, ConvState.ACTIVE)
            log.info("case %s reopened by an agent's answer", now.case_id)
