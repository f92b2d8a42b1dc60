"""Named cursors (the reconcile position, each channel's catch-up position, each workspace's catch-up
floor) and the last errors `status` shows.

A workspace's cursors carry its name: 'mm.channel.<id>' and 'mm.catchup_floor_ms' for the single
`mattermost:` form (as stores written before several workspaces have them), 'mm.ws.<name>.…' otherwise.
"""

from __future__ import annotations

from typing import Any

from .db import Db


def _workspace_part(workspace: str) -> str:
    return f"mm.ws.{workspace}." if workspace else "mm."


def channel_cursor_prefix(workspace: str = "") -> str:
    """The names of a workspace's channel cursors: this prefix and the channel id."""
    return f"{_workspace_part(workspace)}channel."


def catchup_floor_name(workspace: str = "") -> str:
    """The workspace's first start (ms): history from before it is not relayed."""
    return f"{_workspace_part(workspace)}catchup_floor_ms"


class Cursors(Db):
    """`Store`'s part for the cursors and errors tables."""

    def get_cursor(self, name: str) -> str | None:
        row = self._one("SELECT value FROM cursors WHERE name = ?", (name,))
        return None if row is None else str(row["value"])

    def set_cursor(self, name: str, value: str) -> None:
        self._exec(
            "INSERT INTO cursors (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def known_channels(self, workspace: str = "") -> list[str]:
        """Channels the bot has taken posts from or chats in: what a catch-up must look at, at least."""
        prefix = channel_cursor_prefix(workspace)
        rows = self._all(
            "SELECT substr(name, ?) AS ch FROM cursors WHERE substr(name, 1, ?) = ?"
            " UNION SELECT channel_id FROM conversations WHERE state != 'closed' AND workspace = ?",
            (len(prefix) + 1, len(prefix), prefix, workspace),
        )
        return [r["ch"] for r in rows]

    def channel_cursors(self, workspace: str = "") -> dict[str, int]:
        """Every channel's catch-up cursor at once (a restart compares thousands with the listing)."""
        prefix = channel_cursor_prefix(workspace)
        rows = self._all(
            "SELECT substr(name, ?) AS ch, value FROM cursors WHERE substr(name, 1, ?) = ?",
            (len(prefix) + 1, len(prefix), prefix),
        )
        return {r["ch"]: int(r["value"]) for r in rows}

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
