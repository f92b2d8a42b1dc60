"""Routing table for the public ``/api/...json`` endpoints."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .forms import read_body
from .models import Staff
from .state import AccountState, ApiError, Query, keyed_list, parse_int

# (status, body, case_id touched)
Result = tuple[int, dict[str, Any], int | None]


@dataclass
class Ctx:
    state: AccountState
    request: web.Request
    staff: Staff
    query: Query
    params: dict[str, str]


Handler = Callable[[Ctx], Awaitable[Result]]


async def list_cases(ctx: Ctx) -> Result:
    return 200, ctx.state.list_cases(ctx.query), None


async def create_case(ctx: Ctx) -> Result:
    body = ctx.state.create_case_api(await read_body(ctx.request))
    return 201, body, int(body["case"]["case_id"])


async def get_case(ctx: Ctx) -> Result:
    cid, body = ctx.state.get_case_api(ctx.params["ref"])
    return 200, body, cid


async def update_case(ctx: Ctx) -> Result:
    cid, body = ctx.state.update_case_api(ctx.params["ref"], await read_body(ctx.request))
    return 200, body, cid


async def list_messages(ctx: Ctx) -> Result:
    cid, body = ctx.state.list_messages(ctx.params["ref"], ctx.query)
    return 200, body, cid


async def add_message(ctx: Ctx) -> Result:
    ctx.state.find_case(ctx.params["ref"])  # 404 before reading a (possibly large) body
    cid, body = ctx.state.add_message_api(ctx.params["ref"], await read_body(ctx.request))
    return 201, body, cid


async def add_note(ctx: Ctx) -> Result:
    ctx.state.find_case(ctx.params["ref"])
    cid, body = ctx.state.add_note_api(ctx.params["ref"], await read_body(ctx.request), ctx.staff)
    return 201, body, cid


async def list_users(ctx: Ctx) -> Result:
    return 200, ctx.state.list_users(ctx.query), None


async def get_user(ctx: Ctx) -> Result:
    return 200, ctx.state.get_user_api(ctx.params["ref"]), None


def _simple_list(ctx: Ctx, root: str, items: list[dict[str, Any]]) -> Result:
    page, limit = ctx.state.paging(ctx.query)
    return 200, keyed_list(root, items[(page - 1) * limit : page * limit], len(items)), None


async def list_groups(ctx: Ctx) -> Result:
    st = ctx.state
    with st.lock:
        items = [g.to_api(st.fmt) for _, g in sorted(st.groups.items())]
    return _simple_list(ctx, "group", items)


async def get_group(ctx: Ctx) -> Result:
    st = ctx.state
    with st.lock:
        gid = parse_int(ctx.params["ref"], code="group_not_found")
        if gid not in st.groups:
            raise ApiError(404, "group_not_found")
        return 200, {"group": st.groups[gid].to_api(st.fmt)}, None


async def list_staff(ctx: Ctx) -> Result:
    st = ctx.state
    with st.lock:
        items = [s.to_api(st.fmt) for _, s in sorted(st.staff.items())]
    return _simple_list(ctx, "staff", items)


async def get_staff(ctx: Ctx) -> Result:
    st = ctx.state
    with st.lock:
        sid = parse_int(ctx.params["ref"], code="staff_not_found")
        if sid not in st.staff:
            raise ApiError(404, "staff_not_found")
        return 200, {"staff": st.staff[sid].to_api(st.fmt)}, None


async def list_channels(ctx: Ctx) -> Result:
    st = ctx.state
    with st.lock:
        items = [c.to_api() for c in sorted(st.channels.values(), key=lambda c: c.channel_id)]
    return _simple_list(ctx, "custom_channel", items)


_REF = r"(?P<ref>[^/]+?)"
ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r"^/api/cases\.json$"), {"GET": list_cases, "POST": create_case}),
    (re.compile(rf"^/api/cases/{_REF}\.json$"), {"GET": get_case, "PUT": update_case}),
    (re.compile(rf"^/api/cases/{_REF}/messages\.json$"), {"GET": list_messages, "POST": add_message}),
    (re.compile(rf"^/api/cases/{_REF}/note\.json$"), {"POST": add_note}),
    (re.compile(r"^/api/users\.json$"), {"GET": list_users}),
    (re.compile(rf"^/api/users/{_REF}\.json$"), {"GET": get_user}),
    (re.compile(r"^/api/groups\.json$"), {"GET": list_groups}),
    (re.compile(rf"^/api/groups/{_REF}\.json$"), {"GET": get_group}),
    (re.compile(r"^/api/staff\.json$"), {"GET": list_staff}),
    (re.compile(rf"^/api/staff/{_REF}\.json$"), {"GET": get_staff}),
    (re.compile(r"^/api/custom_channels\.json$"), {"GET": list_channels}),
]


_LIST_ROOTS = {"cases": "case", "messages": "message", "users": "user", "groups": "group",
               "staff": "staff", "custom_channels": "custom_channel"}


def list_root(path: str) -> str:
    """The root key of a list endpoint's rows, e.g. ``case`` for ``/api/cases.json``."""
    name = path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")
    return _LIST_ROOTS.get(name, name)


def resolve(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    """Find the handler; raises ApiError 404 ``not_found`` / 405 ``method_not_allowed``."""
    if path.endswith(".json/"):
        path = path[:-1]  # live relays post to `.../cases.json/` and get 201 (§1)
    for pattern, methods in ROUTES:
        m = pattern.match(path)
        if m:
            if method not in methods:
                raise ApiError(405, "method_not_allowed")
            return methods[method], m.groupdict()
    raise ApiError(404, "not_found")
