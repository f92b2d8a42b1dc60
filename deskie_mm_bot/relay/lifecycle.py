"""Chat lifecycle: a chat ends after `idle_timeout` with no message from either side.

Deskie's own rule for ended chats: the case becomes `open` when the customer wrote last (the agent
owes an answer) and `waiting` when the agent did. Deadlines are computed from the store, so a
restart neither resets nor forgets them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..model import CaseStatus, ConvState, Priority, Speaker
from ..store import Store
from .ports import Helpdesk

log = logging.getLogger(__name__)


class IdleSweeper:
    def __init__(
        self,
        store: Store,
        helpdesk: Helpdesk,
        idle_timeout: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.helpdesk = helpdesk
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.ended = 0

    async def sweep(self) -> int:
        ended = 0
        older_than = self.clock() - self.idle_timeout
        for conv in self.store.idle_conversations(older_than):
            # Looked at again for each chat: the calls below wait on Deskie, and meanwhile customers write.
            fresh = self.store.conversation(conv.id)
            if fresh is None or fresh.state != ConvState.ACTIVE or fresh.last_activity_at >= older_than:
                continue
            conv = fresh
            if conv.case_id is None or conv.conv_key in set(self.store.pending_conv_keys()):
                continue  # posts still on their way keep the chat alive
            status = CaseStatus.OPEN if conv.last_speaker == Speaker.CUSTOMER else CaseStatus.WAITING
            # An agent may have closed the case since the last poll: setting a status would reopen it.
            case = await self.helpdesk.case_state(conv.case_id, priority=Priority.RECONCILE)
            if case.status == CaseStatus.GONE or case.status == CaseStatus.CLOSED:
                self.store.set_conversation_state(conv.id, ConvState.CLOSED)
                continue
            if case.status != status:
                changed = await self.helpdesk.set_status(conv.case_id, status, priority=Priority.RECONCILE)
                if changed.status == CaseStatus.GONE:
                    self.store.set_conversation_state(conv.id, ConvState.CLOSED)
                    continue
                self.store.record_own_write(conv.id, changed.updated_at)
            if not self.store.end_if_idle(conv.id, older_than):
                # A message went one way or the other while the status was being set: the chat goes on.
                log.info("chat %s came alive while it was being ended; it stays active", conv.conv_key)
                continue
            ended += 1
            log.info("chat %s ended after %.0f s idle; case %s is now %s",
                     conv.conv_key, self.idle_timeout, conv.case_id, status)
        self.ended += ended
        return ended
