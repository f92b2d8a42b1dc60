"""Prometheus metrics, on a registry of the bot's own (tests may run several bots in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.posts_recorded = Counter("deskie_mm_posts_recorded", "Mattermost posts recorded for Deskie", registry=r)
        self.webhooks = Counter("deskie_mm_webhooks", "Deskie webhooks received, by outcome", ["outcome"], registry=r)
        self.ws_reconnects = Gauge("deskie_mm_websocket_reconnects", "Websocket reconnects since start", registry=r)
        self.ws_resyncs = Gauge("deskie_mm_websocket_resyncs", "REST catch-ups after lost events", registry=r)
        self.outbox_pending = Gauge("deskie_mm_outbox_pending", "Posts waiting to reach Deskie", registry=r)
        self.replies_pending = Gauge("deskie_mm_replies_pending", "Answers waiting to reach Mattermost", registry=r)
        self.open_chats = Gauge("deskie_mm_open_chats", "Active chats", registry=r)
        self.batches_sent = Gauge("deskie_mm_deskie_writes", "Writes of customer messages to Deskie", registry=r)
        self.answers_posted = Gauge("deskie_mm_answers_posted", "Agents' answers posted to Mattermost", registry=r)
        self.polls = Gauge("deskie_mm_reconcile_polls", "Reconciliation polls since start", registry=r)
        self.budget_available = Gauge("deskie_mm_rate_budget_available", "Deskie API units available now", registry=r)
