"""Health as typed state: each part says how it stands, and /healthz is built from those states.

The JSON /healthz serves (and README documents): `mattermost.websocket` (connected while any workspace
is), `reconnects`, `deskie.state`, `deskie.last_error`, `stopping`; with several workspaces also
`workspaces.<name>.websocket` / `reconnects` / `problem`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class LinkState(str, Enum):
    """A connection's state, as /healthz reports it."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"

    def __str__(self) -> str:
        return str(self.value)


class ServiceState(str, Enum):
    """How a request/response service has been answering lately."""

    UNKNOWN = "unknown"  # nothing asked yet
    OK = "ok"
    RATE_LIMITED = "rate_limited"  # waiting out the budget: working, only slower
    FAILING = "failing"  # the last call failed after the last success

    @property
    def usable(self) -> bool:
        return self is not ServiceState.FAILING

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class WorkspaceHealth:
    """One Mattermost workspace: its websocket, and why it is not working when it is not."""

    name: str  # "" in the single `mattermost:` form
    websocket: LinkState
    reconnects: int = 0
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"websocket": self.websocket.value, "reconnects": self.reconnects, "problem": self.problem}


@dataclass(frozen=True)
class Health:
    websocket: LinkState
    reconnects: int
    deskie: ServiceState
    deskie_last_error: str | None
    stopping: bool
    workspaces: tuple[WorkspaceHealth, ...] = ()

    @classmethod
    def of(cls, workspaces: tuple[WorkspaceHealth, ...], deskie: ServiceState, deskie_last_error: str | None,
           stopping: bool) -> Health:
        """The whole from its parts: Mattermost is connected while any workspace is."""
        up = any(w.websocket is LinkState.CONNECTED for w in workspaces)
        return cls(
            websocket=LinkState.CONNECTED if up else LinkState.DISCONNECTED,
            reconnects=sum(w.reconnects for w in workspaces),
            deskie=deskie, deskie_last_error=deskie_last_error, stopping=stopping, workspaces=workspaces,
        )

    @property
    def ok(self) -> bool:
        """Healthy: a websocket is up, Deskie is usable, and the bot is not stopping."""
        return self.websocket is LinkState.CONNECTED and self.deskie.usable and not self.stopping

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "mattermost": {"websocket": self.websocket.value, "reconnects": self.reconnects},
            "deskie": {"state": self.deskie.value, "last_error": self.deskie_last_error},
            "stopping": self.stopping,
        }
        named = [w for w in self.workspaces if w.name]
        if named:
            body["workspaces"] = {w.name: w.as_json() for w in named}
        return body
