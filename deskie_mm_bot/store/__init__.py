"""The state store (SQLite, WAL): the single source of truth across restarts.

Everything the bot promises (nothing lost, nothing doubled, order kept) rests on the order of writes
here: a post is recorded before it is acknowledged, a write to Deskie is recorded as in flight before
it is sent, and an agent's answer is recorded before it is posted. The rows' types live in the model
(`Conversation`, `OutboxItem`, `Batch`, `Reply`, `ChatReaction`) and are named here too.
"""

from __future__ import annotations

from ..model import Batch, ChatReaction, Conversation, OutboxItem, Reply
from .conversations import Conversations
from .cursors import Cursors, catchup_floor_name, channel_cursor_prefix
from .db import Db
from .outbox import Outbox
from .reactions import Reactions
from .replies import Replies, content_hash


class Store(Cursors, Outbox, Conversations, Replies, Reactions, Db):
    """Thin, synchronous access to the SQLite file. Safe to share between threads (one lock).

    One class made of one part per table (each part a `Db`, which holds the connection), so that every
    call site says `store.x(...)`."""


__all__ = [
    "Batch", "ChatReaction", "Conversation", "Db", "OutboxItem", "Reply", "Store", "catchup_floor_name",
    "channel_cursor_prefix", "content_hash",
]
