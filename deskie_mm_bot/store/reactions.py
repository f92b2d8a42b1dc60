"""Status reactions on a chat's first customer post (chat_reactions)."""

from __future__ import annotations

from ..model import ChatReaction
from .db import Db


class Reactions(Db):
    """`Store`'s part for the chat_reactions table."""

    def note_first_post(self, conversation_id: int, channel_id: str, post_id: str) -> None:
        """The post the chat's status reactions go on; the first one noted stays."""
        self._exec(
            "INSERT OR IGNORE INTO chat_reactions (conversation_id, channel_id, post_id) VALUES (?, ?, ?)",
            (conversation_id, channel_id, post_id),
        )

    def want_reaction(self, conversation_id: int, which: str) -> bool:
        """Ask for a reaction (`eyes` or `closed_mark`) once; False when it was asked for before or the
        chat has no customer post to react on."""
        assert which in ("eyes", "closed_mark")
        cur = self._exec(
            f"UPDATE chat_reactions SET {which} = 'wanted', next_attempt_at = 0"
            f" WHERE conversation_id = ? AND {which} = 'no'",
            (conversation_id,),
        )
        return cur.rowcount == 1

    def due_reactions(self, now: float, limit: int = 20) -> list[ChatReaction]:
        rows = self._all(
            "SELECT r.*, COALESCE(c.workspace, '') AS workspace FROM chat_reactions r"
            " LEFT JOIN conversations c ON c.id = r.conversation_id"
            " WHERE (r.eyes = 'wanted' OR r.closed_mark = 'wanted')"
            " AND r.next_attempt_at <= ? ORDER BY r.next_attempt_at, r.conversation_id LIMIT ?",
            (now, limit),
        )
        return [ChatReaction(**{k: r[k] for k in r.keys()}) for r in rows]

    def finish_reaction(self, conversation_id: int, which: str, state: str) -> None:
        assert which in ("eyes", "closed_mark") and state in ("done", "failed")
        self._exec(
            f"UPDATE chat_reactions SET {which} = ?, attempts = 0 WHERE conversation_id = ? AND {which} = 'wanted'",
            (state, conversation_id),
        )

    def retry_reaction_later(self, conversation_id: int, delay: float) -> None:
        self._exec(
            "UPDATE chat_reactions SET attempts = attempts + 1, next_attempt_at = ? WHERE conversation_id = ?",
            (self._clock() + delay, conversation_id),
        )

    def chat_reaction(self, conversation_id: int) -> ChatReaction | None:
        row = self._one("SELECT * FROM chat_reactions WHERE conversation_id = ?", (conversation_id,))
        return None if row is None else ChatReaction(**{k: row[k] for k in row.keys()})
