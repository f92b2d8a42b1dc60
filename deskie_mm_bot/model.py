"""The relay's vocabulary: the types the core works with, and nothing of either protocol.

Frozen types and `str`-valued enums (the values are what the store holds, so a row's text compares
equal to its enum). Imports nothing from the package: both edges and the core may use it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any
from urllib.parse import unquote, urlsplit


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


class ReactionState(_Text):
    """A status reaction's life: not asked for, wanted, made, or given up."""

    NO = "no"
    WANTED = "wanted"
    DONE = "done"
    FAILED = "failed"


class ItemKind(_Text):
    MESSAGE = "message"
    NOTE = "note"  # an edit or deletion, told to the agent as an internal note


class CustomerKind(_Text):
    PERSON = "u"
    CHANNEL = "c"


WORKSPACE_NAME = r"[a-z0-9][a-z0-9-]*"  # `workspaces[].name`: it is part of Deskie user ids and conversation keys


def _in(workspace: str) -> str:
    return f"{workspace}:" if workspace else ""


@dataclass(frozen=True)
class Customer:
    """Who a Deskie case is with: a Mattermost person (`u:<user id>`) or channel (`c:<channel id>`),
    with the workspace's name in front when the bot serves several (`acme:u:<user id>`).

    This is the custom channel's `user_custom_id`; `parse` and `str` are its only readers and writers.
    Mattermost ids never hold a colon, so two parts are the single-workspace form and three the other.
    """

    kind: CustomerKind
    id: str
    workspace: str = ""

    @classmethod
    def person(cls, user_id: str, workspace: str = "") -> Customer:
        return cls(CustomerKind.PERSON, user_id, workspace)

    @classmethod
    def channel(cls, channel_id: str, workspace: str = "") -> Customer:
        return cls(CustomerKind.CHANNEL, channel_id, workspace)

    @classmethod
    def parse(cls, text: str) -> Customer | None:
        """The customer a `user_custom_id` names; None for anything this bot did not write."""
        parts = (text or "").split(":")
        workspace = parts.pop(0) if len(parts) == 3 else ""
        if len(parts) != 2 or parts[0] not in ("u", "c") or not parts[1]:
            return None
        if workspace == "" and text.count(":") == 2 or workspace and not re.fullmatch(WORKSPACE_NAME, workspace):
            return None
        return cls(CustomerKind(parts[0]), parts[1], workspace)

    def __str__(self) -> str:
        return f"{_in(self.workspace)}{self.kind.value}:{self.id}"


class ConvKey:
    """Conversation keys: one chat per channel, one per thread, or an agent-started thread-mode chat
    that has no thread yet (keyed by its case until its first post exists). Channel and thread keys
    carry the workspace like customers do (`acme:ch:<id>`); a case id is the same in every workspace."""

    CHANNEL = "ch:"
    THREAD = "th:"
    OUTGOING = "out:"

    @staticmethod
    def channel(channel_id: str, workspace: str = "") -> str:
        return f"{_in(workspace)}{ConvKey.CHANNEL}{channel_id}"

    @staticmethod
    def thread(root_id: str, workspace: str = "") -> str:
        return f"{_in(workspace)}{ConvKey.THREAD}{root_id}"

    @staticmethod
    def outgoing(case_id: int) -> str:
        return f"{ConvKey.OUTGOING}{case_id}"

    @staticmethod
    def is_outgoing(key: str) -> bool:
        return key.startswith(ConvKey.OUTGOING)

    @staticmethod
    def workspace_of(key: str) -> str:
        """The workspace a channel or thread key names ('' for the single form and `out:` keys)."""
        parts = key.split(":")
        return parts[0] if len(parts) == 3 else ""


def named(full_name: str, workspace: str) -> str:
    """A customer's full name as agents see it: the workspace named after it when there are several."""
    return f"{full_name} \u00b7 {workspace}" if workspace else full_name


@dataclass(frozen=True)
class Person:
    """A Mattermost member as the relay names them to agents."""

    id: str
    username: str
    first_name: str = ""
    last_name: str = ""
    is_bot: bool = False

    @property
    def full_name(self) -> str:
        full = " ".join(p for p in (self.first_name, self.last_name) if p).strip()
        return f"{full} (@{self.username})" if full else f"@{self.username}"


@dataclass(frozen=True)
class Place:
    """A channel: a DM (D), a group message (G), a public (O) or private (P) channel."""

    id: str
    type: str
    team_id: str = ""
    name: str = ""  # the URL name (routes go by it)
    display_name: str = ""

    @property
    def full_name(self) -> str:
        display = self.display_name or self.name or self.id
        if self.type == "G":
            # A group message's name is a hash; its display name lists the people in it.
            return f"{display} (group message)"
        return f"{display} (~{self.name})"


@dataclass(frozen=True)
class ChannelMark:
    """A channel as a catch-up plans with it: where it is, and when its newest post was made (None:
    the server does not say)."""

    id: str
    type: str  # D, G, O, P
    team_id: str = ""
    last_post_at: int | None = None


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


class Priority(IntEnum):
    """Whose Deskie call goes first when several wait for budget: customer messages, then
    reconciliation, then directory work. Core policy; the budget in `deskie/` enforces it."""

    CUSTOMER = 0
    RECONCILE = 1
    DIRECTORY = 2


@dataclass(frozen=True)
class Budget:
    """The helpdesk's write budget as the core asks about it: may a write go now, is the budget
    short (let bursts gather), and how long until a write may go (seconds; 0 when it may now)."""

    ok_now: bool
    scarce: bool
    wait_s: float


class CaseStatus(_Text):
    """A Deskie case's status as the core sees it. GONE: Deskie will not show the case (deleted, say);
    OTHER: a status the bot has no rule for (only `closed` is acted on, see the Deskie reference)."""

    OPEN = "open"
    WAITING = "waiting"
    CLOSED = "closed"
    GONE = "gone"
    OTHER = "other"

    @classmethod
    def of(cls, text: object) -> CaseStatus:
        for member in (cls.OPEN, cls.WAITING, cls.CLOSED):
            if text == member.value:
                return member
        return cls.OTHER


@dataclass(frozen=True)
class CaseState:
    """A case's status, and the helpdesk's own text of when it last changed (None when not told).
    `removed`: trashed or marked spam (it takes no messages, whatever its status); `user_id`: the
    helpdesk's user the case is with (0 when not told)."""

    status: CaseStatus
    updated_at: str | None = None
    removed: bool = False
    user_id: int = 0


@dataclass(frozen=True)
class CaseRef:
    """A case the bot opened or found: its id, number, helpdesk user and last change as written."""

    case_id: int
    number: str = ""
    user_id: int | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class WrittenMessage:
    """A message or note the bot wrote to a case: its id (0 when not told) and time as stamped."""

    message_id: int
    created_at: str | None = None


@dataclass(frozen=True)
class CaseMessage:
    """A message of a case as read back (to find an interrupted write): who wrote it and its text."""

    message_id: int
    note: bool
    from_staff: bool
    content: str = ""
    content_html: str = ""


@dataclass(frozen=True)
class CaseSummary:
    """One case of a changes listing. `updated_at` is the helpdesk's text, compared as stored;
    `at_edge`: changed in the listing's newest second, so it may change again within that second."""

    case_id: int
    status: CaseStatus
    updated_at: str = ""
    user_id: int = 0
    subject: str = ""
    number: str = ""
    created_at: float | None = None  # unix seconds
    at_edge: bool = False
    # The listing shows a change no message of the bot makes (closed, deleted, spam, or an agent's
    # answer in the second of the last change): read even when the time is the bot's own write's.
    more_than_a_message: bool = False

    def ref(self) -> CaseRef:
        return CaseRef(self.case_id, self.number, self.user_id or None, self.updated_at or None)


@dataclass(frozen=True)
class ChangedCases:
    """The cases changed since a cursor, oldest change first; `cursor` is the one to store for the
    next listing (None: nothing seen, keep the old one)."""

    cases: list[CaseSummary]
    cursor: str | None


@dataclass(frozen=True)
class AgentAnswer:
    """An agent's answer to a customer, in Markdown, from either door (webhook or poll); `attachments`
    are the helpdesk's file records, stored as they are and fetched when posted. A webhook may bring
    no message id (the poll later gives it) and names the customer it is for."""

    message_id: int | None
    case_id: int
    text: str
    attachments: list[dict[str, Any]] = field(default_factory=list)
    staff_id: int | None = None
    custom_user_id: str | None = None


def attachment_name(attachment: dict[str, Any]) -> str:
    """An answer's file record's name: the one given (the messages list names files), else the last
    part of its URL's path (the webhook gives only the URL)."""
    given = str(attachment.get("file_name") or attachment.get("name") or "").strip()
    if given:
        return given
    path = urlsplit(str(attachment.get("url") or "")).path
    return unquote(posixpath.basename(path.rstrip("/"))) or "file"


# ---- the store's rows (one table each; store/ reads and writes them) -------------------------------
@dataclass(frozen=True)
class Conversation:
    id: int
    conv_key: str
    channel_id: str
    reply_root_id: str
    user_custom_id: str
    user_full_name: str
    case_id: int | None
    case_number: str | None
    deskie_user_id: int | None
    state: ConvState
    last_activity_at: float
    last_speaker: Speaker
    last_message_id: int
    case_updated_at: str | None
    created_at: float
    own_updated_at: str | None = None
    verify_after: float | None = None
    workspace: str = ""  # '' in the single `mattermost:` form


@dataclass(frozen=True)
class OutboxItem:
    id: int
    post_id: str
    conv_key: str
    channel_id: str
    reply_root_id: str
    user_custom_id: str
    user_full_name: str
    author: str
    show_author: bool
    kind: ItemKind
    text: str
    file_ids: list[str]
    posted_at: float
    state: OutboxState
    batch_id: int | None


@dataclass(frozen=True)
class Batch:
    id: int
    conv_key: str
    conversation_id: int | None
    op: BatchOp
    content: str
    since_message_id: int
    state: str
    started_at: float


@dataclass(frozen=True)
class Reply:
    id: int
    message_id: int | None
    case_id: int
    conversation_id: int | None
    content_hash: str
    body: str
    attachments: list[dict[str, Any]]
    source: str
    state: ReplyState
    parts_posted: int
    post_ids: list[str]
    attempts: int
    next_attempt_at: float
    received_at: float
    staff_id: int | None = None
    agent_name: str | None = None  # None: not chosen yet; "": posted without a name


@dataclass(frozen=True)
class ChatReaction:
    conversation_id: int
    channel_id: str
    post_id: str
    eyes: str
    closed_mark: str
    attempts: int
    next_attempt_at: float
    workspace: str = ""  # the chat's (the post is in that workspace)
