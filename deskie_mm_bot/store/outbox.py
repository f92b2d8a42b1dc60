"""The outbox (Mattermost -> Deskie): posts recorded before they are acknowledged, and the batches
recorded in flight before a write to Deskie is sent."""

from __future__ import annotations

import json
import sqlite3

from ..model import Batch, BatchOp, ItemKind, OutboxItem, OutboxState
from .db import Db


def _outbox(row: sqlite3.Row) -> OutboxItem:
    d = {k: row[k] for k in row.keys() if k != "created_at"}
    d["file_ids"] = json.loads(d["file_ids"])
    d["show_author"] = bool(d["show_author"])
    d["kind"], d["state"] = ItemKind(d["kind"]), OutboxState(d["state"])
    return OutboxItem(**d)


def _batch(row: sqlite3.Row) -> Batch:
    d = {k: row[k] for k in row.keys()}
    d["op"] = BatchOp(d["op"])
    return Batch(**d)


class Outbox(Db):
    """`Store`'s part for the outbox and batches tables."""

    def enqueue_post(
        self,
        *,
        post_id: str,
        conv_key: str,
        channel_id: str,
        reply_root_id: str,
        user_custom_id: str,
        user_full_name: str,
        author: str,
        show_author: bool,
        text: str,
        file_ids: list[str],
        posted_at: float,
        kind: str = "message",
        refetchable: bool = False,
    ) -> bool:
        """Record a post for relaying. False when this post id was recorded before (a replay).
        `refetchable`: a Mattermost post, which the catch-up can read again (see `lazy_commits`)."""
        with self._sync(refetchable):
            cur = self._exec(
                "INSERT OR IGNORE INTO outbox (post_id, conv_key, channel_id, reply_root_id, user_custom_id,"
                " user_full_name, author, show_author, kind, text, file_ids, posted_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (post_id, conv_key, channel_id, reply_root_id, user_custom_id, user_full_name, author,
                 int(show_author), kind, text, json.dumps(file_ids), posted_at, self._clock()),
            )
        return cur.rowcount == 1

    def has_post(self, post_id: str) -> bool:
        return self._one("SELECT 1 FROM outbox WHERE post_id = ?", (post_id,)) is not None

    def outbox_item(self, post_id: str) -> OutboxItem | None:
        row = self._one("SELECT * FROM outbox WHERE post_id = ?", (post_id,))
        return None if row is None else _outbox(row)

    def pending_conv_keys(self) -> list[str]:
        """Conversation keys with work waiting, oldest waiting first (fairness between chats)."""
        rows = self._all(
            "SELECT conv_key, MIN(id) AS first FROM outbox WHERE state IN ('pending', 'inflight')"
            " GROUP BY conv_key ORDER BY first"
        )
        return [r["conv_key"] for r in rows]

    def pending_items(self, conv_key: str) -> list[OutboxItem]:
        rows = self._all(
            "SELECT * FROM outbox WHERE conv_key = ? AND state = 'pending' ORDER BY id", (conv_key,)
        )
        return [_outbox(r) for r in rows]

    def count_outbox(self, state: str = "pending") -> int:
        row = self._one("SELECT COUNT(*) AS n FROM outbox WHERE state = ?", (state,))
        return int(row["n"]) if row else 0

    def oldest_pending_at(self, conv_key: str) -> float | None:
        row = self._one(
            "SELECT MIN(created_at) AS t FROM outbox WHERE conv_key = ? AND state = 'pending'", (conv_key,)
        )
        return None if row is None or row["t"] is None else float(row["t"])

    def begin_batch(
        self,
        conv_key: str,
        conversation_id: int | None,
        op: str,
        content: str,
        item_ids: list[int],
        since_message_id: int,
    ) -> Batch:
        """Mark items as in flight under one batch, durably, before the write to Deskie is sent."""
        now = self._clock()
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO batches (conv_key, conversation_id, op, content, since_message_id, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conv_key, conversation_id, op, content, since_message_id, now),
            )
            batch_id = int(cur.lastrowid or 0)
            c.executemany(
                "UPDATE outbox SET state = 'inflight', batch_id = ? WHERE id = ? AND state = 'pending'",
                [(batch_id, i) for i in item_ids],
            )
        return Batch(batch_id, conv_key, conversation_id, BatchOp(op), content, since_message_id, "inflight", now)

    def creating_case_for(self, user_custom_id: str) -> bool:
        """Is a case for this Deskie user being created right now (a create sent, no answer yet)?"""
        row = self._one(
            "SELECT 1 FROM batches b JOIN outbox o ON o.batch_id = b.id WHERE b.state = 'inflight'"
            " AND b.op = 'create_case' AND o.user_custom_id = ? LIMIT 1",
            (user_custom_id,),
        )
        return row is not None

    def inflight_batch(self, conv_key: str) -> Batch | None:
        row = self._one(
            "SELECT * FROM batches WHERE conv_key = ? AND state = 'inflight' ORDER BY id LIMIT 1", (conv_key,)
        )
        return None if row is None else _batch(row)

    def batch_items(self, batch_id: int) -> list[OutboxItem]:
        rows = self._all("SELECT * FROM outbox WHERE batch_id = ? ORDER BY id", (batch_id,))
        return [_outbox(r) for r in rows]

    def retarget_batch(self, batch_id: int, conversation_id: int | None, op: str, since_message_id: int) -> None:
        self._exec(
            "UPDATE batches SET conversation_id = ?, op = ?, since_message_id = ? WHERE id = ?",
            (conversation_id, op, since_message_id, batch_id),
        )

    def finish_batch(self, batch_id: int, *, state: str = "sent") -> None:
        with self.transaction() as c:
            c.execute("UPDATE batches SET state = 'done' WHERE id = ?", (batch_id,))
            c.execute("UPDATE outbox SET state = ? WHERE batch_id = ?", (state, batch_id))
