"""Outgoing chats: an agent starts a case in Deskie for a Mattermost member or channel.

One implementation for the three doors: the webhook (an answer on a case the bot has no chat for), the
poll (such a case whose webhook was missed) and `send` (a chat started from the command line, which
records its chat with `record_chat`). The customer's id names the workspace; the chat is opened there
and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from .. import errors
from ..model import CaseRef, CaseSummary, ConvKey, ConvState, Customer, Speaker
from ..store import Conversation, Store
from .answers import WebhookRefused
from .ports import Helpdesk

log = logging.getLogger(__name__)


class Places(Protocol):
    """Where a workspace keeps the chat with a customer."""

    async def place_of(self, who: Customer) -> tuple[str, str] | None:
        """(channel id, full name): the DM with the person, or the channel while the bot is in it."""
        ...


def record_chat(
    store: Store, *, key: str, channel_id: str, reply_root_id: str, customer: Customer, full_name: str,
    case: CaseRef,
) -> Conversation:
    """The chat of an agent-started case; the chat that was open under the same key is closed (its
    customer's next message belongs to the new case)."""
    current = store.current_conversation(key)
    if current is not None:
        store.set_conversation_state(current.id, ConvState.CLOSED)
    return store.create_conversation(
        conv_key=key, channel_id=channel_id, reply_root_id=reply_root_id, user_custom_id=str(customer),
        user_full_name=full_name, case_id=case.case_id, case_number=case.number, deskie_user_id=case.user_id,
        last_message_id=0, case_updated_at=None, last_speaker=Speaker.AGENT,
    )


class OutgoingChats:
    def __init__(
        self,
        store: Store,
        helpdesk: Helpdesk,
        places: Mapping[str, Places],
        *,
        thread_mode: bool,
        floor_of: Callable[[str], int],
    ) -> None:
        self.store = store
        self.helpdesk = helpdesk
        self.places = places  # by workspace name ('' in the single form)
        self.thread_mode = thread_mode
        self.floor_of = floor_of  # a workspace's first start (ms): older cases are not adopted
        self._declined: set[int] = set()

    async def for_webhook(self, case_id: int, custom_user_id: str) -> Conversation | None:
        """An answer on a case the bot has no chat for: open the chat for it (None: not ours)."""
        if self.store.creating_case_for(custom_user_id):
            # Most likely the case this bot is creating right now, answered before Deskie's reply to
            # the create arrived. Not an outgoing chat: refuse for now; reconciliation brings it.
            raise WebhookRefused(503, "case is being created; not accepted yet")
        try:
            return await self.open(case_id, custom_user_id)
        except errors.Unavailable as e:
            raise WebhookRefused(503, f"unavailable: {e}") from None

    async def adopt(self, case: CaseSummary) -> Conversation | None:
        """Reconciliation met a case of our channel the bot has no chat for: an outgoing chat whose
        webhook was missed, if it was started after the workspace's first start and names a member or
        channel of it."""
        case_id = case.case_id
        if not case_id or case_id in self._declined:
            return None
        created = case.created_at
        # Deskie's times are whole seconds: a case of the very second the bot first started counts.
        earliest = min((self.floor_of(ws) for ws in self.places), default=0) / 1000
        if created is None or created < earliest - 1:
            self._declined.add(case_id)
            return None
        try:
            custom = await self.helpdesk.customer_of(case.user_id) if case.user_id else ""
        except errors.Rejected as e:
            log.info("case %s: its Deskie user cannot be read (%s); not opened as a chat", case_id, e)
            self._declined.add(case_id)
            return None
        who = Customer.parse(custom)
        if who is not None and created < self.floor_of(who.workspace) / 1000 - 1:
            self._declined.add(case_id)
            return None
        if self.store.creating_case_for(custom):
            return None  # ours, still being created: the next poll sees it recorded
        try:
            conv = await self.open(case_id, custom)
        except errors.Unavailable as e:
            # Its workspace is down: not declined, and not this poll's failure (the other workspaces'
            # cases go on); the case's next change (an answer, its webhook) opens it.
            log.info("case %s: its workspace cannot be reached now (%s)", case_id, e)
            return None
        if conv is None:
            self._declined.add(case_id)
        return conv

    async def open(self, case_id: int, custom: str) -> Conversation | None:
        who = Customer.parse(custom)
        places = self.places.get(who.workspace) if who is not None else None
        if who is None or places is None:
            return None  # not a customer of a workspace this bot serves
        place = await places.place_of(who)
        if place is None:
            return None
        channel_id, full_name = place
        try:
            case = await self.helpdesk.case_ref(case_id)
        except errors.Rejected:
            return None
        existing = self.store.conversation_by_case(case_id)
        if existing is not None:  # recorded meanwhile through the other door
            return existing
        key = ConvKey.outgoing(case_id) if self.thread_mode else ConvKey.channel(channel_id, who.workspace)
        log.info("agent started case %s with %s: opening the chat", case_id, full_name)
        return record_chat(self.store, key=key, channel_id=channel_id, reply_root_id="", customer=who,
                           full_name=full_name, case=case)
