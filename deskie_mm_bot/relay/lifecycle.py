"""Chat lifecycle: a chat ends after `idle_timeout` with no message from either side.

Deskie's own rule for ended chats: the case becomes `open` when the customer wrote last (the agent
owes an answer) and `waiting` when the agent did. Deadlines are computed from the store, so a
restart neither resets nor forgets them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial

from ..deskie.client import DeskieClient, DeskieRejected
from ..deskie.ratebudget import Priority
from ..store import Store

log = logging.getLogger(__name__)


class IdleSweeper:
    def __init__(
        self,
        store: Store,
        deskie: DeskieClient,
        idle_timeout: float,
        pool: Executor,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.deskie = deskie
        self.idle_timeout = idle_timeout
        self.pool = pool
        self.clock = clock
        self.ended = 0

    async def sweep(self) -> int:
        busy = set(self.store.pending_conv_keys())
        ended = 0
        loop = asyncio.get_running_loop()
        for conv in self.store.idle_conversations(self.clock() - self.idle_timeout):
            if conv.case_id is None or conv.conv_key in busy:
                continue  # posts still on their way keep the chat alive
            status = "open" if conv.last_speaker == "customer" else "waiting"
            try:
                await loop.run_in_executor(
                    self.pool, partial(self.deskie.set_case_status, conv.case_id, status, Priority.RECONCILE)
                )
            except DeskieRejected as e:
                if not e.not_found:
                    raise
                self.store.set_conversation_state(conv.id, "closed")
                continue
            self.store.set_conversation_state(conv.id, "ended")
            ended += 1
            log.info("chat %s ended after %.0f s idle; case %s is now %s",
                     conv.conv_key, self.idle_timeout, conv.case_id, status)
        self.ended += ended
        return ended
