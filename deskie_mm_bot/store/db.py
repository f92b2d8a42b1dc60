"""The connection: WAL, synchronous=FULL, one lock, transactions, the migrations at open."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .migrate import migrate


class Db:
    """The connection and its one lock, which every table's part of `Store` shares."""

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
            row: sqlite3.Row | None = self._conn.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, args)
