"""Conversations: one chat in Mattermost tied to one Deskie case."""

from __future__ import annotations

import sqlite3

from ..model import Conversation, ConvState, Customer, Speaker
from .db import Db


def _conversation(row: sqlite3.Row) -> Conversation:
    d = {k: row[k] for k in row.keys()}
    d["state"], d["last_speaker"] = ConvState(d["state"]), Speaker(d["last_speaker"])
    return Conversation(**d)


class Conversations(Db):
    """`Store`'s part for the conversations table."""

    def current_conversation(self, conv_key: str) -> Conversation | None:
        row = self._one(
            "SELECT * FROM conversations WHERE conv_key = ? AND state != 'closed' ORDER BY id DESC LIMIT 1",
            (conv_key,),
        )
        return None if row is None else _conversation(row)

    def conversation(self, conversation_id: int) -> Conversation | None:
        row = self._one("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return None if row is None else _conversation(row)

    def conversation_by_case(self, case_id: int) -> Conversation | None:
        row = self._one("SELECT * FROM conversations WHERE case_id = ?", (case_id,))
        return None if row is None else _conversation(row)

    def known_case_ids(self, case_ids: list[int]) -> set[int]:
        if not case_ids:
            return set()
        marks = ",".join("?" * len(case_ids))
        rows = self._all(f"SELECT case_id FROM conversations WHERE case_id IN ({marks})", tuple(case_ids))
        return {int(r["case_id"]) for r in rows}

    def create_conversation(
        self,
        *,
        conv_key: str,
        channel_id: str,
        reply_root_id: str,
        user_custom_id: str,
        user_full_name: str,
        case_id: int,
        case_number: str | None,
        deskie_user_id: int | None,
        last_message_id: int,
        case_updated_at: str | None,
        last_speaker: str = "customer",
        finishes_batch: int | None = None,
    ) -> Conversation:
        """A new chat for a case. With `finishes_batch`, the batch that created the case is marked sent
        in the same transaction: a crash can never leave the case recorded but its write in flight."""
        now = self._clock()
        # The customer names the workspace: a chat can never be recorded under another one.
        who = Customer.parse(user_custom_id)
        workspace = who.workspace if who is not None else ""
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO conversations (conv_key, channel_id, reply_root_id, user_custom_id, user_full_name,"
                " case_id, case_number, deskie_user_id, state, last_activity_at, last_speaker, last_message_id,"
                " case_updated_at, created_at, workspace) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?)",
                (conv_key, channel_id, reply_root_id, user_custom_id, user_full_name, case_id, case_number,
                 deskie_user_id, now, last_speaker, last_message_id, case_updated_at, now, workspace),
            )
            if finishes_batch is not None:
                c.execute("UPDATE batches SET state = 'done' WHERE id = ?", (finishes_batch,))
                c.execute("UPDATE outbox SET state = 'sent' WHERE batch_id = ?", (finishes_batch,))
        conv = self.conversation(int(cur.lastrowid or 0))
        assert conv is not None
        return conv

    def touch_conversation(self, conversation_id: int, speaker: str, message_id: int = 0) -> None:
        """A message went one way or the other: the chat is active again and its idle clock restarts."""
        self._exec(
            "UPDATE conversations SET state = 'active', last_activity_at = ?, last_speaker = ?,"
            " last_message_id = MAX(last_message_id, ?) WHERE id = ? AND state != 'closed'",
            (self._clock(), speaker, message_id, conversation_id),
        )

    def saw_message_id(self, conversation_id: int, message_id: int) -> None:
        """A message the bot wrote (a note) exists on the case: later writes are verified after it."""
        self._exec(
            "UPDATE conversations SET last_message_id = MAX(last_message_id, ?) WHERE id = ?",
            (message_id, conversation_id),
        )

    def rekey_conversation(self, conversation_id: int, conv_key: str, reply_root_id: str) -> None:
        """An outgoing chat in thread mode gets its key once its first post (the thread root) exists."""
        self._exec(
            "UPDATE conversations SET conv_key = ?, reply_root_id = ? WHERE id = ?",
            (conv_key, reply_root_id, conversation_id),
        )

    def set_conversation_state(self, conversation_id: int, state: str) -> None:
        self._exec("UPDATE conversations SET state = ? WHERE id = ?", (state, conversation_id))

    def end_if_idle(self, conversation_id: int, older_than: float) -> bool:
        """Mark an idle chat ended, unless a message went either way since it was found idle."""
        cur = self._exec(
            "UPDATE conversations SET state = 'ended' WHERE id = ? AND state = 'active' AND last_activity_at < ?",
            (conversation_id, older_than),
        )
        return cur.rowcount == 1

    def set_deskie_user_id(self, conversation_id: int, user_id: int) -> None:
        self._exec("UPDATE conversations SET deskie_user_id = ? WHERE id = ?", (user_id, conversation_id))

    def set_case_updated_at(self, conversation_id: int, updated_at: str) -> None:
        """The case was read through `updated_at`: nothing before it is unknown (no read is owed)."""
        self._exec(
            "UPDATE conversations SET case_updated_at = ?, verify_after = NULL WHERE id = ?",
            (updated_at, conversation_id),
        )

    def record_own_write(self, conversation_id: int, updated_at: str | None) -> None:
        """The case's `updated_at` as the bot's own write (create, message, note, status) left it."""
        if updated_at:
            self._exec("UPDATE conversations SET own_updated_at = ? WHERE id = ?", (updated_at, conversation_id))

    def owe_read(self, conversation_id: int, after: float) -> None:
        """A case listed with only the bot's own write to show is read once, later."""
        self._exec(
            "UPDATE conversations SET verify_after = COALESCE(verify_after, ?) WHERE id = ?",
            (after, conversation_id),
        )

    def owed_reads(self, now: float, limit: int) -> list[Conversation]:
        rows = self._all(
            "SELECT * FROM conversations WHERE verify_after IS NOT NULL AND verify_after <= ?"
            " AND case_id IS NOT NULL ORDER BY verify_after, id LIMIT ?",
            (now, limit),
        )
        return [_conversation(r) for r in rows]

    def idle_conversations(self, older_than: float) -> list[Conversation]:
        rows = self._all(
            "SELECT * FROM conversations WHERE state = 'active' AND last_activity_at < ? ORDER BY id",
            (older_than,),
        )
        return [_conversation(r) for r in rows]

    def count_conversations(self, state: str = "active", workspace: str | None = None) -> int:
        """Chats in `state`, of one workspace or (None) of all."""
        if workspace is None:
            row = self._one("SELECT COUNT(*) AS n FROM conversations WHERE state = ?", (state,))
        else:
            row = self._one("SELECT COUNT(*) AS n FROM conversations WHERE state = ? AND workspace = ?",
                            (state, workspace))
        return int(row["n"]) if row else 0

    def chat_channels(self, workspace: str = "") -> list[str]:
        """The workspace's channels with a chat that is not closed."""
        rows = self._all(
            "SELECT DISTINCT channel_id FROM conversations WHERE state != 'closed' AND workspace = ?", (workspace,)
        )
        return [r["channel_id"] for r in rows]
