"""Replies (Deskie -> Mattermost): agents' answers recorded before they are posted, and the posts
they became (answer_posts)."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from typing import Any

from ..model import Reply, ReplyState
from .db import Db

_TAG = re.compile(r"<[^>]*>")


def content_hash(text: str) -> str:
    """The answer's identity when Deskie gave no id. A webhook's plain `content` and the poll's
    `content_html` of one answer render differently ("a\nb" against "a  \nb", a literal "<x>" read as
    a tag): tags and runs of white space do not count, or the poll would post the answer again."""
    key = " ".join(_TAG.sub(" ", text).split())
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _file_names(attachments: list[dict[str, Any]]) -> str:
    return " ".join(str(a.get("file_name") or str(a.get("url") or "").rstrip("/").rsplit("/", 1)[-1])
                    for a in attachments)


def _reply(row: sqlite3.Row) -> Reply:
    d = {k: row[k] for k in row.keys() if k not in ("last_error", "posted_at")}
    d["attachments"] = json.loads(d["attachments"])
    d["post_ids"] = json.loads(d["post_ids"])
    d["state"] = ReplyState(d["state"])
    return Reply(**d)


class Replies(Db):
    """`Store`'s part for the replies and answer_posts tables."""

    def add_reply(
        self,
        *,
        message_id: int | None,
        case_id: int,
        conversation_id: int | None,
        body: str,
        attachments: list[dict[str, Any]],
        source: str,
        staff_id: int | None = None,
    ) -> bool:
        """Record an agent's answer to post. False when that Deskie message is known already."""
        # An answer of files only is known by their names (the webhook's URLs end with them).
        h = content_hash(body if body.strip() else _file_names(attachments))
        with self.transaction() as c:
            if message_id is None:
                # No id (a webhook that did not carry one): the same text on the same case is taken for
                # the same answer, whether it came before by webhook or by the poll. Should it really be
                # a second answer with the same words, the poll finds its id unknown and posts it then.
                dup = c.execute(
                    "SELECT 1 FROM replies WHERE case_id = ? AND content_hash = ?", (case_id, h)
                ).fetchone()
                if dup:
                    return False
            cur = c.execute(
                "INSERT OR IGNORE INTO replies (message_id, case_id, conversation_id, content_hash, body,"
                " attachments, source, received_at, staff_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id, case_id, conversation_id, h, body, json.dumps(attachments), source, self._clock(),
                 staff_id),
            )
            return cur.rowcount == 1

    def known_message_ids(self, message_ids: list[int]) -> set[int]:
        if not message_ids:
            return set()
        marks = ",".join("?" * len(message_ids))
        rows = self._all(f"SELECT message_id FROM replies WHERE message_id IN ({marks})", tuple(message_ids))
        return {int(r["message_id"]) for r in rows}

    def unresolved_reply(self, case_id: int, text_hash: str) -> int | None:
        row = self._one(
            "SELECT id FROM replies WHERE case_id = ? AND content_hash = ? AND message_id IS NULL ORDER BY id LIMIT 1",
            (case_id, text_hash),
        )
        return None if row is None else int(row["id"])

    def resolve_reply(self, reply_id: int, message_id: int) -> bool:
        """Attach the Deskie id to a reply that came without one; False when another row has it."""
        try:
            self._exec("UPDATE replies SET message_id = ? WHERE id = ?", (message_id, reply_id))
            return True
        except sqlite3.IntegrityError:
            return False

    def due_replies(self, now: float, limit: int = 50) -> list[Reply]:
        """Answers to post now, in Deskie's order. An answer waiting for a retry holds back the later
        answers of its chat, so a chat's answers always arrive in order. Deskie's message ids grow
        with time, so a chat's queue goes by id (one being posted first), whichever door brought each
        answer first: a webhook retried after a restart must not overtake the answers the poll finds."""
        rows = self._all(
            "SELECT * FROM replies WHERE state IN ('pending', 'posting')"
            " ORDER BY state = 'posting' DESC, message_id IS NULL, message_id, id LIMIT ?",
            (limit * 4,),
        )
        due: list[Reply] = []
        blocked: set[tuple[str, int]] = set()
        for row in rows:
            r = _reply(row)
            chat = ("conv", r.conversation_id) if r.conversation_id is not None else ("case", r.case_id)
            if chat in blocked:
                continue
            blocked.add(chat)  # only the head of each chat's queue goes
            if r.next_attempt_at <= now:
                due.append(r)
            if len(due) >= limit:
                break
        return due

    def count_replies(self, state: str = "pending") -> int:
        row = self._one("SELECT COUNT(*) AS n FROM replies WHERE state = ?", (state,))
        return int(row["n"]) if row else 0

    def reply(self, reply_id: int) -> Reply | None:
        row = self._one("SELECT * FROM replies WHERE id = ?", (reply_id,))
        return None if row is None else _reply(row)

    def mark_reply_posting(self, reply_id: int) -> None:
        self._exec("UPDATE replies SET state = 'posting' WHERE id = ?", (reply_id,))

    def record_reply_part(self, reply_id: int, post_id: str) -> None:
        with self.transaction() as c:
            row = c.execute("SELECT post_ids, conversation_id FROM replies WHERE id = ?", (reply_id,)).fetchone()
            ids = json.loads(row["post_ids"]) + [post_id]
            c.execute(
                "UPDATE replies SET post_ids = ?, parts_posted = ? WHERE id = ?",
                (json.dumps(ids), len(ids), reply_id),
            )
            if post_id and row["conversation_id"] is not None:
                c.execute(
                    "INSERT OR IGNORE INTO answer_posts (post_id, conversation_id) VALUES (?, ?)",
                    (post_id, row["conversation_id"]),
                )

    def is_answer_post(self, post_id: str) -> bool:
        return self._one("SELECT 1 FROM answer_posts WHERE post_id = ?", (post_id,)) is not None

    def finish_reply(self, reply_id: int, state: str = "posted", error: str | None = None) -> None:
        self._exec(
            "UPDATE replies SET state = ?, posted_at = ?, last_error = ? WHERE id = ?",
            (state, self._clock(), error, reply_id),
        )

    def retry_reply_later(self, reply_id: int, delay: float, error: str) -> None:
        self._exec(
            "UPDATE replies SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
            (self._clock() + delay, error[:500], reply_id),
        )

    def set_reply_agent_name(self, reply_id: int, name: str) -> None:
        """The name an answer is posted under ('' for none), fixed before its first post."""
        self._exec("UPDATE replies SET agent_name = ? WHERE id = ? AND agent_name IS NULL", (name, reply_id))

    def answered_before(self, conversation_id: int, reply_id: int) -> bool:
        """Has the chat had an answer posted before this one?"""
        row = self._one(
            "SELECT 1 FROM replies WHERE conversation_id = ? AND id < ? AND state = 'posted' LIMIT 1",
            (conversation_id, reply_id),
        )
        return row is not None
