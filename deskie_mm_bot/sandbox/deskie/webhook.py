"""Custom-channel webhook delivery (Deskie §7.1) from a background worker thread."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import requests

from .variants import DeskieVariants


def form_fields(obj: dict[str, Any]) -> dict[str, str]:
    """Flatten the webhook object to PHP-style bracketed form fields."""
    out: dict[str, str] = {"type": "message_new"}
    for key, value in obj.items():
        if key == "attachments":
            for i, att in enumerate(value):
                for akey, aval in att.items():
                    out[f"object[attachments][{i}][{akey}]"] = str(aval)
        else:
            out[f"object[{key}]"] = str(value)
    return out


class WebhookDispatcher:
    def __init__(self, retries: int = 2, retry_pause: float = 0.5, timeout: float = 5.0) -> None:
        self.retries = retries
        self.retry_pause = retry_pause
        self.timeout = timeout
        self.enabled = True
        self.format = "form"
        self.variants = DeskieVariants()
        self._lock = threading.Lock()
        self._deliveries: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self._pending = 0

    # called under the account lock: must not block
    def submit(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._pending += 1
        self._queue.put(event)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="deskie-emu-webhook", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None
        self._session.close()

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for d in self._deliveries]

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def clear(self) -> None:
        with self._lock:
            self._deliveries.clear()

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self._deliver(event)
            finally:
                with self._lock:
                    self._pending -= 1

    def _object(self, event: dict[str, Any]) -> dict[str, Any]:
        obj = dict(event["object"])
        v = self.variants
        if v.webhook_html_in_content and event.get("html") is not None:
            obj["content"] = event["html"]
            obj.pop("content_html", None)
        for key in v.webhook_omit:
            obj.pop(key, None)
        return obj

    def _deliver(self, event: dict[str, Any]) -> None:
        fmt = self.format
        obj = self._object(event)
        body: dict[str, Any] = {"type": "message_new", "object": obj} if fmt == "json" else form_fields(obj)
        for _ in range(1 + max(0, self.variants.webhook_duplicates)):
            self._post(event, fmt, body)

    def _post(self, event: dict[str, Any], fmt: str, body: dict[str, Any]) -> None:
        for attempt in range(1, self.retries + 2):
            status: int | str
            try:
                if fmt == "json":
                    resp = self._session.post(event["url"], json=body, timeout=self.timeout)
                else:
                    resp = self._session.post(event["url"], data=body, timeout=self.timeout)
                status = resp.status_code
            except requests.RequestException:
                status = "error"
            with self._lock:
                self._deliveries.append(
                    {
                        "case_id": event["case_id"],
                        "message_id": event["message_id"],
                        "status": status,
                        "body": body,
                        "url": event["url"],
                        "attempt": attempt,
                        "t": time.time(),
                    }
                )
            if isinstance(status, int) and 200 <= status < 300:
                return
            if attempt <= self.retries:
                time.sleep(self.retry_pause)
