"""The state store (SQLite, WAL): the single source of truth across restarts.

Everything the bot promises (nothing lost, nothing doubled, order kept) rests on the order of writes
here: a post is recorded before it is acknowledged, a write to Deskie is recorded as in flight before
it is sent, and an agent's answer is recorded before it is posted.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .migrate import migrate


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
    state: str
    last_activity_at: float
    last_speaker: str
    last_message_id: int
    case_updated_at: str | None
    created_at: float
    own_updated_at: str | None = None
    verify_after: float | None = None


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
    kind: str
    text: str
    file_ids: list[str]
    posted_at: float
    state: str
    batch_id: int | None


@dataclass(frozen=True)
class Batch:
    id: int
    conv_key: str
    conversation_id: int | None
    op: str
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
    state: str
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


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(**{k: row[k] for k in row.keys()})


def _outbox(row: sqlite3.Row) -> OutboxItem:
    d = {k: row[k] for k in row.keys() if k != "created_at"}
    d["file_ids"] = json.loads(d["file_ids"])
    d["show_author"] = bool(d["show_author"])
    return OutboxItem(**d)


def _reply(row: sqlite3.Row) -> Reply:
    d = {k: row[k] for k in row.keys() if k not in ("last_error", "posted_at")}
    d["attachments"] = json.loads(d["attachments"])
    d["post_ids"] = json.loads(d["post_ids"])
    return Reply(**d)


class Store:
    """Thin, synchronous access to the SQLite file. Safe to share between threads (one lock)."""

    def __init__(self, path: str | Path, *, clock: Any = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        self._lock = threading.RLock()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a post acknowledged as recorded must survive a power cut, not only a kill -9.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            migrate(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def lazy_commits(self) -> Iterator[None]:
        """Commits in this block do not wait for the disk. For what can be learnt again after a power
        cut: a Mattermost post and the channel cursor after it (the catch-up reads them again), an
        answer from the webhook (reconciliation finds it again), and the marks after a write or a post
        was made (a batch still in flight is looked for in Deskie, an answer still `posting` in the
        channel, before either is made again). WAL keeps commits in order, so a power cut takes only
        the newest ones; a kill -9 takes none. The marks made before a write stays FULL, and its commit
        carries every lazy one before it to the disk."""
        with self._lock:
            self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                yield
            finally:
                self._conn.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def _sync(self, lazy: bool) -> Iterator[None]:
        if not lazy:
            yield
            return
        with self.lazy_commits():
            yield

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, args)

    # ---- cursors ------------------------------------------------------------------------------
    def get_cursor(self, name: str) -> str | None:
        row = self._one("SELECT value FROM cursors WHERE name = ?", (name,))
        return None if row is None else str(row["value"])

    def set_cursor(self, name: str, value: str) -> None:
        self._exec(
            "INSERT INTO cursors (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def known_channels(self) -> list[str]:
        """Channels the bot has taken posts from or chats in: what a catch-up must look at, at least."""
        rows = self._all(
            "SELECT substr(name, 12) AS ch FROM cursors WHERE name LIKE 'mm.channel.%'"
            " UNION SELECT channel_id FROM conversations WHERE state != 'closed'"
        )
        return [r["ch"] for r in rows]

    def channel_cursors(self) -> dict[str, int]:
        """Every channel's catch-up cursor at once (a restart compares thousands with the listing)."""
        rows = self._all("SELECT substr(name, 12) AS ch, value FROM cursors WHERE name LIKE 'mm.channel.%'")
        return {r["ch"]: int(r["value"]) for r in rows}

    def chat_channels(self) -> list[str]:
        """Channels with a chat that is not closed."""
        return [r["channel_id"] for r in self._all("SELECT DISTINCT channel_id FROM conversations WHERE state != 'closed'")]

    def advance_cursor(self, name: str, value: int, *, refetchable: bool = False) -> None:
        """Raise an integer cursor; never lowers it. `refetchable`: see `lazy_commits`."""
        with self._sync(refetchable):
            self._exec(
                "INSERT INTO cursors (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET "
                "value = CASE WHEN CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER) "
                "THEN excluded.value ELSE value END",
                (name, str(value)),
            )

    def advance_cursors(self, values: dict[str, int], *, refetchable: bool = False) -> None:
        """`advance_cursor` for many cursors in one commit."""
        if not values:
            return
        with self._sync(refetchable), self.transaction() as c:
            c.executemany(
                "INSERT INTO cursors (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET "
                "value = CASE WHEN CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER) "
                "THEN excluded.value ELSE value END",
                [(name, str(value)) for name, value in values.items()],
            )

    # ---- errors (for `status`) ----------------------------------------------------------------
    def record_error(self, source: str, message: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO errors (at, source, message) VALUES (?, ?, ?)",
                (self._clock(), source, message[:500]),
            )
            c.execute("DELETE FROM errors WHERE id <= (SELECT MAX(id) FROM errors) - 50")

    def last_errors(self, n: int = 5) -> list[dict[str, Any]]:
        rows = self._all("SELECT at, source, message FROM errors ORDER BY id DESC LIMIT ?", (n,))
        return [dict(r) for r in rows]

    # ---- outbox (Mattermost -> Deskie) ------------------------------------------------------------
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
        return Batch(batch_id, conv_key, conversation_id, op, content, since_message_id, "inflight", now)

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
        return None if row is None else Batch(**{k: row[k] for k in row.keys()})

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

    # ---- conversations ------------------------------------------------------------------------
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
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO conversations (conv_key, channel_id, reply_root_id, user_custom_id, user_full_name,"
                " case_id, case_number, deskie_user_id, state, last_activity_at, last_speaker, last_message_id,"
                " case_updated_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)",
                (conv_key, channel_id, reply_root_id, user_custom_id, user_full_name, case_id, case_number,
                 deskie_user_id, now, last_speaker, last_message_id, case_updated_at, now),
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

    def count_conversations(self, state: str = "active") -> int:
        row = self._one("SELECT COUNT(*) AS n FROM conversations WHERE state = ?", (state,))
        return int(row["n"]) if row else 0

    # ---- replies (Deskie -> Mattermost) ---------------------------------------------------------------
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

    # ---- status reactions on a chat's first customer post ------------------------------------------
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
            "SELECT * FROM chat_reactions WHERE (eyes = 'wanted' OR closed_mark = 'wanted')"
            " AND next_attempt_at <= ? ORDER BY next_attempt_at, conversation_id LIMIT ?",
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
