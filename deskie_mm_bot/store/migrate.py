"""Schema migrations: one SQL file per version in `migrations/`, applied in order.

The schema version lives in SQLite's `user_version`, so a store opened by an older bot is upgraded in
place, one file at a time, each inside its own transaction.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SchemaTooNew(sqlite3.DatabaseError, RuntimeError):
    """The store was written by a newer bot. A database error, so that every command that opens the
    store reports it as its usual one line about state.path (exit 2), not as a crash."""


def migration_files() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration shipped with the package, in order."""
    found: list[tuple[int, str, str]] = []
    for entry in resources.files("deskie_mm_bot.store").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration files are not numbered 1..n without gaps: {versions}")
    return found


def latest_version() -> int:
    return len(migration_files())


def current_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Bring the schema up to `target` (default: the newest); returns the version reached."""
    files = migration_files()
    goal = len(files) if target is None else target
    version = current_version(conn)
    if version > len(files):
        raise SchemaTooNew(
            f"state store schema version {version} is newer than this bot knows ({len(files)}); "
            "upgrade deskie-mm-bot"
        )
    for number, _name, sql in files:
        if number <= version or number > goal:
            continue
        # executescript commits first; wrap the file and the version bump in one transaction.
        conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
        version = number
    return version
