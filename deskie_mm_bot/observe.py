"""What /healthz and /metrics say, built from each part's typed state (never from a client's insides)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .deskie.client import DeskieClient
from .health import Health, LinkState, ServiceState
from .metrics import Metrics
from .relay.relay import Relay, queued
from .store import Store
from .workspace import Workspace


def health(workspaces: Sequence[Workspace], deskie: DeskieClient | None, stopping: bool) -> tuple[bool, dict[str, Any]]:
    state = Health.of(
        tuple(w.health() for w in workspaces),
        deskie=deskie.state() if deskie is not None else ServiceState.UNKNOWN,
        deskie_last_error=deskie.last_error if deskie is not None else None,
        stopping=stopping,
    )
    return state.ok, state.as_json()


def totals(workspaces: Sequence[Workspace], relay: Relay) -> dict[str, float]:
    """The counters since start, read from the parts that keep them."""
    sockets = [w.ws for w in workspaces if w.ws is not None]
    return {
        "deskie_mm_websocket_reconnects": sum(ws.reconnects for ws in sockets),
        "deskie_mm_websocket_resyncs": sum(ws.resyncs for ws in sockets),
        **relay.totals(),
    }


def refresh(metrics: Metrics, store: Store, workspaces: Sequence[Workspace], deskie: DeskieClient | None) -> None:
    """The levels, set when /metrics is scraped."""
    to_deskie, to_mattermost = queued(store)
    metrics.outbox_pending.set(to_deskie)
    metrics.replies_pending.set(to_mattermost)
    metrics.open_chats.set(store.count_conversations("active"))
    for w in workspaces:
        connected = w.health().websocket is LinkState.CONNECTED
        metrics.workspace_connected.labels(workspace=w.label).set(1 if connected else 0)
        metrics.workspace_open_chats.labels(workspace=w.label).set(store.count_conversations("active", w.name))
    if deskie is not None:
        metrics.budget_available.set(deskie.budget.available())
