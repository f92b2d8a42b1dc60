"""Health as typed state: each part says how it stands, and /healthz is built from those states.

The JSON /healthz serves (and README documents) is unchanged: `mattermost.websocket`, `reconnects`,
`deskie.state`, `deskie.last_error`, `stopping`.
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
class Health:
    websocket: LinkState
    reconnects: int
    deskie: ServiceState
    deskie_last_error: str | None
    stopping: bool

    @property
    def ok(self) -> bool:
        """Healthy: the websocket is up, Deskie is usable, and the bot is not stopping."""
        return self.websocket is LinkState.CONNECTED and self.deskie.usable and not self.stopping

    def as_json(self) -> dict[str, Any]:
        return {
            "mattermost": {"websocket": self.websocket.value, "reconnects": self.reconnects},
            "deskie": {"state": self.deskie.value, "last_error": self.deskie_last_error},
            "stopping": self.stopping,
        }
