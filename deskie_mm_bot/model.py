"""The relay's vocabulary: the types the core works with, and nothing of either protocol.

Frozen types and `str`-valued enums (the values are what the store holds, so a row's text compares
equal to its enum). Imports nothing from the package: both edges and the core may use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class _Text(str, Enum):
    """An enum whose members are their stored text, also when formatted (`f"{state}"` is "closed")."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return str(self.value).__format__(spec)


class ConvState(_Text):
    """A chat's life: active, ended after idle time (its case goes on), or closed (the next message
    opens a new case)."""

    ACTIVE = "active"
    ENDED = "ended"
    CLOSED = "closed"


class OutboxState(_Text):
    PENDING = "pending"
    INFLIGHT = "inflight"
    SENT = "sent"
    FAILED = "failed"


class BatchOp(_Text):
    CREATE_CASE = "create_case"
    ADD_MESSAGE = "add_message"
    ADD_NOTE = "add_note"


class ReplyState(_Text):
    PENDING = "pending"
    POSTING = "posting"
    POSTED = "posted"
    DROPPED = "dropped"


class Speaker(_Text):
    """Who wrote last in a chat: it decides the status an ended chat's case gets."""

    CUSTOMER = "customer"
    AGENT = "agent"


class ItemKind(_Text):
    MESSAGE = "message"
    NOTE = "note"  # an edit or deletion, told to the agent as an internal note


class CustomerKind(_Text):
    PERSON = "u"
    CHANNEL = "c"


@dataclass(frozen=True)
class Customer:
    """Who a Deskie case is with: a Mattermost person (`u:<user id>`) or channel (`c:<channel id>`).

    This is the custom channel's `user_custom_id`; `parse` and `str` are its only readers and writers.
    """

    kind: CustomerKind
    id: str

    @classmethod
    def person(cls, user_id: str) -> Customer:
        return cls(CustomerKind.PERSON, user_id)

    @classmethod
    def channel(cls, channel_id: str) -> Customer:
        return cls(CustomerKind.CHANNEL, channel_id)

    @classmethod
    def parse(cls, text: str) -> Customer | None:
        """The customer a `user_custom_id` names; None for anything this bot did not write."""
        kind, sep, ident = (text or "").partition(":")
        if not sep or not ident or kind not in ("u", "c"):
            return None
        return cls(CustomerKind(kind), ident)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"


class ConvKey:
    """Conversation keys: one chat per channel, one per thread, or an agent-started thread-mode chat
    that has no thread yet (keyed by its case until its first post exists)."""

    CHANNEL = "ch:"
    THREAD = "th:"
    OUTGOING = "out:"

    @staticmethod
    def channel(channel_id: str) -> str:
        return f"{ConvKey.CHANNEL}{channel_id}"

    @staticmethod
    def thread(root_id: str) -> str:
        return f"{ConvKey.THREAD}{root_id}"

    @staticmethod
    def outgoing(case_id: int) -> str:
        return f"{ConvKey.OUTGOING}{case_id}"

    @staticmethod
    def is_outgoing(key: str) -> bool:
        return key.startswith(ConvKey.OUTGOING)


@dataclass(frozen=True)
class ChatPost:
    """A customer's post as the relay sees it, whether it came by websocket or REST catch-up."""

    post_id: str
    channel_id: str
    channel_type: str  # D (direct), G (group), O (public), P (private)
    team_id: str
    user_id: str
    root_id: str
    text: str
    file_ids: list[str] = field(default_factory=list)
    create_at_ms: int = 0
    update_at_ms: int = 0
    edit_at_ms: int = 0
    delete_at_ms: int = 0
    post_type: str = ""
    from_bot: bool = False
    from_webhook: bool = False
    mentions_bot: bool = False  # the server counts the bot as mentioned, or the text names it
    names_bot: bool = False  # the text itself @mentions the bot
    original_id: str = ""  # set only on an edit-history copy of another post (not a post of its own)

    @property
    def is_direct(self) -> bool:
        return self.channel_type == "D"
