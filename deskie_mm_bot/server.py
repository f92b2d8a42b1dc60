"""The bot's HTTP endpoints: Deskie's webhook, health, and metrics."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import errors
from .deskie.webhook import WebhookError, parse_webhook
from .metrics import Metrics
from .relay.answers import Answers, WebhookRefused

log = logging.getLogger(__name__)

MAX_WEBHOOK_BODY = 1024 * 1024
MAX_ID = 2**63 - 1  # what SQLite stores as an INTEGER


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def build_app(
    secret: str,
    answers: Answers,
    health: Callable[[], tuple[bool, dict[str, Any]]],
    metrics: Metrics,
    refresh_metrics: Callable[[], None],
    ready: Callable[[], Awaitable[None]] | None = None,
) -> web.Application:
    expected = secret.encode()

    async def webhook(request: web.Request) -> web.Response:
        given = request.match_info["secret"].encode()
        if not hmac.compare_digest(given, expected):
            metrics.webhooks.labels("bad_secret").inc()
            return _json({"error": "not found"}, 404)
        if ready is not None:
            await ready()
        body = await request.read()
        try:
            event = parse_webhook(body, request.headers.get("Content-Type", ""))
            for name, value in (("case_id", event.case_id), ("message_id", event.message_id)):
                if value is not None and not 0 < value <= MAX_ID:
                    raise WebhookError(f"object[{name}] out of range")
        except (WebhookError, ValueError, RecursionError) as e:
            # Hostile input (nesting past the recursion limit, a number of thousands of digits) is a
            # bad request like any other, not a 500.
            reason = str(e) if isinstance(e, WebhookError) else "malformed body"
            metrics.webhooks.labels("bad_request").inc()
            log.warning("webhook refused: %s", reason)
            return _json({"error": reason}, 400)
        try:
            # The adapter speaks HTTP; what the event means is the answers door's to say.
            outcome = event.ignored() or await answers.from_webhook(event.answer())
        except WebhookRefused as e:
            metrics.webhooks.labels("refused").inc()
            log.warning("webhook for case %s refused: %s", event.case_id, e)
            return _json({"error": str(e)}, e.status)
        except Exception as e:  # a service or the store failing now: Deskie may send it again later
            metrics.webhooks.labels("failed").inc()
            if isinstance(e, errors.BotError):  # an outage or a refusal the error tree names
                log.warning("webhook for case %s not taken now: %s", event.case_id, e)
            else:  # not an outage: a defect, worth its traceback
                log.exception("webhook for case %s not taken", event.case_id)
            return _json({"error": "temporarily unavailable"}, 503)
        metrics.webhooks.labels(outcome.split(":")[0]).inc()
        return _json({"result": "ok", "outcome": outcome})

    async def healthz(request: web.Request) -> web.Response:
        ok, state = health()
        return _json(state, 200 if ok else 503)

    async def metrics_view(request: web.Request) -> web.Response:
        refresh_metrics()
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=MAX_WEBHOOK_BODY)
    app.router.add_post("/deskie/webhook/{secret}", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    return app
