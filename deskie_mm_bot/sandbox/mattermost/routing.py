"""HTTP plumbing: a tiny regex router, exact ``application/json`` responses and AppError mapping."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .util import AppError, dumps, new_id


@dataclass
class Ctx:
    request: web.Request
    params: dict[str, str]
    user_id: str = ""
    request_id: str = field(default_factory=new_id)

    @property
    def query(self) -> Any:
        return self.request.query

    async def json(self) -> Any:
        raw = await self.request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise AppError(
                400, "api.context.invalid_body_param.app_error", "Invalid or missing body in request."
            ) from None

    async def json_object(self) -> dict[str, Any]:
        body = await self.json()
        if not isinstance(body, dict):
            raise AppError(
                400, "api.context.invalid_body_param.app_error", "Invalid or missing body in request."
            )
        return body

    def int_query(self, name: str, default: int) -> int:
        raw = self.request.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise AppError(
                400,
                "api.context.invalid_url_param.app_error",
                f"Invalid or missing {name} parameter in request URL.",
            ) from None


Handler = Callable[[Ctx], Awaitable[Any]]


@dataclass
class Result:
    """A handler result other than a plain 200 JSON body."""

    body: Any
    status: int = 200
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []

    def add(self, method: str, pattern: str, handler: Handler, auth: bool = True) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$"
        self.routes.append((method, re.compile(regex), handler, auth))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str], bool] | str:
        """The handler and params, or "404"/"405"."""
        path_matched = False
        for route_method, regex, handler, auth in self.routes:
            m = regex.match(path)
            if m is None:
                continue
            path_matched = True
            if route_method == method or (route_method == "GET" and method == "HEAD"):
                return handler, m.groupdict(), auth
        return "405" if path_matched else "404"


def json_response(body: Any, status: int, request_id: str, version: str, method: str) -> web.Response:
    headers = {
        "Content-Type": "application/json",
        "X-Request-Id": request_id,
        "X-Version-Id": version,
    }
    if method == "GET":
        headers["Expires"] = "0"
    return web.Response(body=dumps(body).encode(), status=status, headers=headers)


def error_response(err: AppError, request_id: str, version: str, method: str) -> web.Response:
    return json_response(err.to_dict(request_id), err.status_code, request_id, version, method)


NOT_FOUND = AppError(404, "api.context.404.app_error", "Sorry, we could not find the page.")
METHOD_NOT_ALLOWED = AppError(405, "api.context.405.app_error", "Method not allowed.")
