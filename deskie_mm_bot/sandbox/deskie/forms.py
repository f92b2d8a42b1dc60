"""Request-body decoding: JSON with a root key, or form/multipart with PHP-style bracketed names."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_TOTAL_BYTES = 50 * 1024 * 1024


class BodyError(Exception):
    """The body could not be decoded (maps to HTTP 400 with the given error code)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class UploadedFile:
    file_name: str
    mime_type: str
    data: bytes


_NAME_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def split_bracket_name(name: str) -> list[str]:
    """``message[attachments][0]`` -> ``["message", "attachments", "0"]``."""
    m = _NAME_RE.match(name)
    if not m:
        return [name]
    rest = re.findall(r"\[([^\[\]]*)\]", m.group(2))
    return [m.group(1), *rest]


def set_nested(target: dict[str, Any], keys: list[str], value: Any) -> None:
    node: Any = target
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if last:
                node.append(value)
                return
            new: dict[str, Any] = {}
            node.append(new)
            node = new
            continue
        if last:
            if key == "":
                node.setdefault("", []).append(value)
            else:
                node[key] = value
            return
        nxt_is_list = keys[i + 1] == ""
        if key not in node or not isinstance(node[key], dict | list):
            node[key] = [] if nxt_is_list else {}
        node = node[key]


def unflatten(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        set_nested(out, split_bracket_name(name), value)
    return out


async def read_body(request: web.Request) -> dict[str, Any]:
    """Decode the request body into a nested dict (``{"case": {...}}`` etc.)."""
    ctype = request.content_type
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.post()
        pairs: list[tuple[str, Any]] = []
        total = 0
        for name, value in form.items():
            if isinstance(value, web.FileField):
                data = value.file.read()
                if len(data) > MAX_FILE_BYTES:
                    raise BodyError("file_too_large")
                total += len(data)
                if total > MAX_TOTAL_BYTES:
                    raise BodyError("files_too_large")
                pairs.append(
                    (
                        name,
                        UploadedFile(
                            value.filename or "file", value.content_type or "application/octet-stream", data
                        ),
                    )
                )
            else:
                pairs.append((name, value))
        return unflatten(pairs)
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BodyError("wrong_params") from exc
    if not isinstance(data, dict):
        raise BodyError("wrong_params")
    return data
