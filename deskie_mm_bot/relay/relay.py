"""The core, wired: what a customer's message and an agent's answer pass through, built in one place.

Mattermost side: the intake of each workspace records posts (workspace.py builds those, one per edge).
From there: inbound (outbox -> Deskie), the answers door (`answers.py`: webhook and poll both record
into the ledger), outbound (ledger -> the chat's own workspace), outgoing chats, status reactions,
reconciliation and the idle sweep. The core sees each workspace through `Edge` and the helpdesk
through `Helpdesk`: model types in and out, nothing of either protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .. import errors
from ..model import Customer, OutboxState, ReplyState
from ..store import Store
from .answers import Answers
from .inbound import InboundRelay
from .lifecycle import IdleSweeper
from .outbound import AgentNames, OutboundRelay, Poster
from .outgoing import OutgoingChats
from .ports import Helpdesk
from .reactions import Reactor, StatusReactions
from .reconcile import Reconciler


def queued(store: Store) -> tuple[int, int]:
    """Messages waiting (to Deskie, to Mattermost)."""
    return (store.count_outbox(OutboxState.PENDING) + store.count_outbox(OutboxState.INFLIGHT),
            store.count_replies(ReplyState.PENDING) + store.count_replies(ReplyState.POSTING))


class Chat(Poster, Reactor, Protocol):
    """One workspace's Mattermost as answers and reactions need it (mattermost/chat.py)."""


class Edge(Protocol):
    """One workspace as the core sees it (workspace.py)."""

    @property
    def name(self) -> str: ...
    @property
    def chat(self) -> Chat: ...
    async def fetch_file(self, file_id: str) -> tuple[dict[str, Any], bytes]: ...
    async def route_of(self, channel_id: str) -> str | None: ...
    async def place_of(self, who: Customer) -> tuple[str, str] | None: ...
    def floor(self) -> int: ...


class Relay:
    def __init__(
        self,
        store: Store,
        helpdesk: Helpdesk,
        edges: Sequence[Edge],
        *,
        thread_mode: bool,
        reactions: bool,
        idle_timeout: float,
        names: AgentNames | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._edges = {e.name: e for e in edges}
        self.inbound = InboundRelay(store, helpdesk, self._fetch_file, clock=clock, route_of=self._route_of,
                                    workspaces=[e.name for e in edges])
        chats = {e.name: e.chat for e in edges}
        self.reactions = StatusReactions(store, chats, enabled=reactions, clock=clock)
        self.outgoing = OutgoingChats(store, helpdesk, self._edges, thread_mode=thread_mode,
                                      floor_of=lambda ws: self._edges[ws].floor() if ws in self._edges else 0)
        self.outbound = OutboundRelay(store, chats, clock=clock, on_note=self.inbound.wake, names=names,
                                      after_drain=self.reactions.settle)
        self.answers = Answers(store, on_recorded=self.outbound.wake, open_outgoing=self.outgoing.for_webhook)
        self.reconciler = Reconciler(store, helpdesk, on_new_replies=self.outbound.wake, clock=clock,
                                     adopt_unknown=self.outgoing.adopt, answers=self.answers)
        self.sweeper = IdleSweeper(store, helpdesk, idle_timeout, clock=clock)

    def _edge(self, workspace: str) -> Edge:
        edge = self._edges.get(workspace)
        if edge is None:
            # Taken out of the config: its messages wait (retried) until it is back.
            raise errors.Unavailable(f"workspace '{workspace}' is not configured")
        return edge

    async def _fetch_file(self, workspace: str, file_id: str) -> tuple[dict[str, Any], bytes]:
        return await self._edge(workspace).fetch_file(file_id)

    async def _route_of(self, workspace: str, channel_id: str) -> str | None:
        return await self._edge(workspace).route_of(channel_id)

    def wake(self) -> None:
        self.inbound.wake()
        self.outbound.wake()

    async def run_outbound(self, stopping: asyncio.Event, first_poll: Callable[[], Awaitable[None]],
                           patience: float) -> None:
        """A reconciliation at once, and answers wait for it (`patience` seconds at most): answers given
        while the bot was away come by poll, while their webhooks may be retried at once; the ledger
        then posts them in Deskie's order."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(first_poll(), timeout=patience)
        await self.outbound.run(stopping)

    def queued(self) -> tuple[int, int]:
        return queued(self.store)

    async def drain(self, deadline: float) -> None:
        """Deliver what is queued while both services answer, until `deadline` (monotonic). A
        direction whose service fails is left as it is (its messages stay in the store): no retry
        is waited for."""
        self.inbound.flushing = self.outbound.flushing = True

        async def side(count: Callable[[], int], drain: Callable[[], Awaitable[Any]],
                       failures: Callable[[], int]) -> None:
            failed_before = failures()
            while count() and time.monotonic() < deadline:
                before = count()
                try:
                    await drain()
                except errors.Stopping:
                    return
                if count() < before:
                    continue
                if failures() > failed_before:
                    return  # the service failed during this drain: the rest waits for the next start
                # Nothing failed, nothing went: waiting for rate budget, or a write the other side holds.
                await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

        tasks = [
            asyncio.ensure_future(side(lambda: self.queued()[0], self.inbound.drain, lambda: self.inbound.failures)),
            asyncio.ensure_future(side(lambda: self.queued()[1], self.outbound.drain,
                                       lambda: self.outbound.failures)),
        ]
        _, late = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        for t in late:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def totals(self) -> dict[str, float]:
        return {
            "deskie_mm_deskie_writes": self.inbound.sent_batches,
            "deskie_mm_answers_posted": self.outbound.posted,
            "deskie_mm_reconcile_polls": self.reconciler.polls,
        }
