"""Status at a glance: reactions on a chat's first customer post (the thread root in thread mode).

`eyes` once the chat's first answer is posted, `white_check_mark` once its case is closed in Deskie.
Each is asked for in the store once (so a restart neither forgets nor repeats it) and made after the
message it belongs to is recorded: a reaction that fails never holds back or repeats a message. The
server saves a reaction as an upsert, so one made again after a crash is harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from .. import errors
from ..model import ReactionState
from ..retry import backoff_delay
from ..store import Store

log = logging.getLogger(__name__)

EMOJI = {"eyes": "eyes", "closed_mark": "white_check_mark"}
MAX_ATTEMPTS = 8  # a few minutes of a failing server; then the reaction is given up, the chat is not


class Reactor(Protocol):
    async def react(self, post_id: str, emoji_name: str) -> None:
        """Raises ReactionRefused when the server will never take it; other errors are transient."""
        ...


ReactionRefused = errors.ReactionRefused


class StatusReactions:
    def __init__(
        self, store: Store, reactor: Reactor | Mapping[str, Reactor], *, enabled: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        # One per workspace, as for answers: a reaction goes on the post in the chat's own workspace.
        self.reactors: Mapping[str, Reactor] = reactor if isinstance(reactor, Mapping) else {"": reactor}
        self.enabled = enabled
        self.clock = clock
        self.made = 0

    async def settle(self) -> None:
        """Make the reactions that are due (at most a handful per call; the next call does the rest)."""
        for row in self.store.due_reactions(self.clock()):
            reactor = self.reactors.get(row.workspace)
            for which in ("eyes", "closed_mark"):
                if getattr(row, which) != ReactionState.WANTED:
                    continue
                if not self.enabled:
                    self.store.finish_reaction(row.conversation_id, which, ReactionState.FAILED)
                    continue
                try:
                    if reactor is None:
                        raise ReactionRefused(f"workspace '{row.workspace}' is not configured")
                    await reactor.react(row.post_id, EMOJI[which])
                except ReactionRefused as e:
                    log.warning("no :%s: on post %s: %s", EMOJI[which], row.post_id, e)
                    self.store.finish_reaction(row.conversation_id, which, ReactionState.FAILED)
                except Exception as e:  # transient; the message it belongs to is long recorded
                    if row.attempts + 1 >= MAX_ATTEMPTS:
                        log.warning("giving up :%s: on post %s: %s", EMOJI[which], row.post_id, e)
                        self.store.finish_reaction(row.conversation_id, which, ReactionState.FAILED)
                    else:
                        self.store.retry_reaction_later(
                            row.conversation_id, backoff_delay(row.attempts, base=2.0, cap=120.0)
                        )
                    break
                else:
                    self.store.finish_reaction(row.conversation_id, which, ReactionState.DONE)
                    self.made += 1
