"""Prometheus metrics, on a registry of the bot's own (tests may run several bots in one process).

Levels (queues, open chats, budget) are gauges set when scraped; totals since start are counters read
from the parts that keep them, so nothing is counted twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

TOTALS = {
    "deskie_mm_websocket_reconnects": "Websocket reconnects since start",
    "deskie_mm_websocket_resyncs": "REST catch-ups after lost events since start",
    "deskie_mm_deskie_writes": "Writes of customer messages to Deskie since start",
    "deskie_mm_answers_posted": "Agents' answers posted to Mattermost since start",
    "deskie_mm_reconcile_polls": "Reconciliation polls since start",
}


class _Totals(Collector):
    def __init__(self) -> None:
        self.read: Callable[[], dict[str, float]] = dict

    def collect(self) -> Iterator[CounterMetricFamily]:
        values = self.read()
        for name, doc in TOTALS.items():
            yield CounterMetricFamily(name, doc, value=values.get(name, 0.0))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.posts_recorded = Counter("deskie_mm_posts_recorded", "Mattermost posts recorded for Deskie", registry=r)
        self.webhooks = Counter("deskie_mm_webhooks", "Deskie webhooks received, by outcome", ["outcome"], registry=r)
        self.outbox_pending = Gauge("deskie_mm_outbox_pending", "Posts waiting to reach Deskie", registry=r)
        self.replies_pending = Gauge("deskie_mm_replies_pending", "Answers waiting to reach Mattermost", registry=r)
        self.open_chats = Gauge("deskie_mm_open_chats", "Active chats", registry=r)
        self.workspace_connected = Gauge("deskie_mm_workspace_connected",
                                         "1 while the workspace's websocket is connected", ["workspace"], registry=r)
        self.workspace_open_chats = Gauge("deskie_mm_workspace_open_chats", "Active chats of the workspace",
                                          ["workspace"], registry=r)
        self.budget_available = Gauge("deskie_mm_rate_budget_available", "Deskie API units available now", registry=r)
        self._totals = _Totals()
        r.register(self._totals)

    def read_totals_from(self, read: Callable[[], dict[str, float]]) -> None:
        self._totals.read = read
