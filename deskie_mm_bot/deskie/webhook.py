"""Parsing Deskie's custom-channel webhook: form-encoded with PHP-style brackets, or JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from ..markup.formatting import message_body
from ..model import AgentAnswer

_BRACKETS = re.compile(r"\[([^\]]*)\]")


class WebhookError(ValueError):
    """The body is not a webhook we understand: answered with a 4xx."""


@dataclass(frozen=True)
class WebhookEvent:
    type: str
    case_id: int
    message_id: int | None
    custom_user_id: str | None
    content: str
    content_html: str | None
    note: bool
    staff_id: int | None
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def ignored(self) -> str | None:
        """Why this event is no answer for the customer (None: it is one)."""
        if self.type and self.type != "message_new":
            return "ignored: event type"
        if self.note:
            return "ignored: internal note"
        return None

    def answer(self) -> AgentAnswer:
        """The answer in the relay's terms: its Markdown (its files travel as files, not in the text)."""
        return AgentAnswer(message_id=self.message_id, case_id=self.case_id,
                           text=message_body(self.content, self.content_html), attachments=self.attachments,
                           staff_id=self.staff_id, custom_user_id=self.custom_user_id)


def _nest(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`object[attachments][0][url]=x` -> {"object": {"attachments": {"0": {"url": "x"}}}}."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        path = [head] + _BRACKETS.findall(key[len(head):])
        node = out
        for part in path[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                node[part] = nxt
            node = nxt
        node[path[-1]] = value
    return out


def _int(value: Any) -> int | None:
    if value in (None, "", "0", 0):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def _as_list(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    if isinstance(value, dict):
        return [value[k] for k in sorted(value, key=lambda k: int(k) if str(k).isdigit() else 0)
                if isinstance(value[k], dict)]
    return []


def parse_webhook(body: bytes, content_type: str) -> WebhookEvent:
    ctype = content_type.split(";")[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    if ctype == "application/json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise WebhookError("body is not valid JSON") from None
    else:
        data = _nest(parse_qsl(text, keep_blank_values=True))
    if not isinstance(data, dict):
        raise WebhookError("body is not an object")
    obj = data.get("object")
    if not isinstance(obj, dict):
        raise WebhookError("missing object")
    case_id = _int(obj.get("case_id"))
    if case_id is None:
        raise WebhookError("missing object[case_id]")
    return WebhookEvent(
        type=str(data.get("type") or ""),
        case_id=case_id,
        message_id=_int(obj.get("message_id")),
        custom_user_id=(str(obj["custom_user_id"]) if obj.get("custom_user_id") else None),
        content=str(obj.get("content") or ""),
        content_html=(str(obj["content_html"]) if obj.get("content_html") else None),
        note=_flag(obj.get("note", "0")),
        staff_id=_int(obj.get("staff_id")),
        attachments=_as_list(obj.get("attachments")),
    )
