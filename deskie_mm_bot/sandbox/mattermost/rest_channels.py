"""REST handlers: channels and channel members."""

from __future__ import annotations

import copy
from typing import Any

from .routing import Ctx, Result, Router
from .state import State
from .util import AppError, bad_request, forbidden


def check_read(state: State, channel_id: str, user_id: str) -> dict[str, Any]:
    """The channel if the user may read it: 404 unknown, 403 non-member of a P/D/G channel."""
    channel = state.channel(channel_id)
    if state.is_member(channel_id, user_id):
        return channel
    if channel["type"] != "O" or user_id not in state.team_members.get(channel["team_id"], {}):
        raise forbidden()
    return channel


def register(router: Router, state: State) -> None:
    async def get_channel(ctx: Ctx) -> Any:
        return copy.deepcopy(check_read(state, ctx.params["channel_id"], ctx.user_id))

    async def create_direct(ctx: Ctx) -> Any:
        ids = await ctx.json()
        if not isinstance(ids, list) or len(ids) != 2 or not all(isinstance(i, str) and i for i in ids):
            raise AppError(
                400,
                "api.context.invalid_body_param.app_error",
                "Invalid or missing user_ids in request body.",
            )
        if ctx.user_id not in ids:
            raise forbidden()
        try:
            channel = state.direct_channel(ids[0], ids[1])
        except AppError as err:
            if err.status_code == 404:
                raise bad_request("user_ids") from None
            raise
        return Result(channel, 201)

    async def create_group(ctx: Ctx) -> Any:
        ids = await ctx.json()
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise AppError(
                400,
                "api.context.invalid_body_param.app_error",
                "Invalid or missing user_ids in request body.",
            )
        if ctx.user_id not in ids:
            ids = [*ids, ctx.user_id]
        try:
            channel = state.group_channel(ids)
        except AppError as err:
            if err.status_code == 404:
                raise bad_request("user_ids") from None
            raise
        return Result(channel, 201)

    async def get_member(ctx: Ctx) -> Any:
        check_read(state, ctx.params["channel_id"], ctx.user_id)
        uid = ctx.params["user_id"]
        return state.channel_member(ctx.params["channel_id"], ctx.user_id if uid == "me" else uid)

    async def list_members(ctx: Ctx) -> Any:
        cid = ctx.params["channel_id"]
        check_read(state, cid, ctx.user_id)
        page = max(ctx.int_query("page", 0), 0)
        per_page = min(max(ctx.int_query("per_page", 60), 1), 200)
        with state.lock:
            members = [copy.deepcopy(m) for m in state.channel_members[cid].values()]
        return members[page * per_page : (page + 1) * per_page]

    async def add_member(ctx: Ctx) -> Any:
        cid = ctx.params["channel_id"]
        channel = state.channel(cid)
        if channel["type"] != "O" and not state.is_member(cid, ctx.user_id):
            raise forbidden()
        body = await ctx.json_object()
        if isinstance(body.get("user_ids"), list):
            return Result([state.add_channel_member(cid, str(u)) for u in body["user_ids"]], 201)
        uid = body.get("user_id")
        if not isinstance(uid, str) or not uid:
            raise bad_request("user_id")
        if uid != ctx.user_id and channel["type"] == "O" and not state.is_member(cid, ctx.user_id):
            raise forbidden()
        return Result(state.add_channel_member(cid, uid), 201)

    async def remove_member(ctx: Ctx) -> Any:
        cid = ctx.params["channel_id"]
        uid = ctx.params["user_id"]
        uid = ctx.user_id if uid == "me" else uid
        state.channel(cid)
        if uid != ctx.user_id and not state.is_member(cid, ctx.user_id):
            raise forbidden()
        state.remove_channel_member(cid, uid)
        return {"status": "OK"}

    r = router.add
    r("POST", "/api/v4/channels/direct", create_direct)
    r("POST", "/api/v4/channels/group", create_group)
    r("GET", "/api/v4/channels/{channel_id}", get_channel)
    r("GET", "/api/v4/channels/{channel_id}/members", list_members)
    r("POST", "/api/v4/channels/{channel_id}/members", add_member)
    r("GET", "/api/v4/channels/{channel_id}/members/{user_id}", get_member)
    r("DELETE", "/api/v4/channels/{channel_id}/members/{user_id}", remove_member)
