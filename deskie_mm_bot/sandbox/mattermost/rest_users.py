"""REST handlers: users and teams."""

from __future__ import annotations

import copy
from typing import Any

from .routing import Ctx, Router
from .state import State
from .util import bad_request, forbidden


def resolve_user_id(ctx: Ctx, key: str = "user_id") -> str:
    uid = ctx.params[key]
    return ctx.user_id if uid == "me" else uid


def _self_only(ctx: Ctx) -> str:
    uid = resolve_user_id(ctx)
    if uid != ctx.user_id:
        raise forbidden()
    return uid


def _matches(user: dict[str, Any], term: str) -> bool:
    term = term.lower().lstrip("@")
    if not term:
        return True
    fields = (user["username"], user["first_name"], user["last_name"], user["nickname"])
    full = f"{user['first_name']} {user['last_name']}".strip().lower()
    return any(f.lower().startswith(term) for f in fields) or full.startswith(term)


def register(router: Router, state: State) -> None:
    async def get_user(ctx: Ctx) -> Any:
        return copy.deepcopy(state.user(resolve_user_id(ctx)))

    async def get_user_by_username(ctx: Ctx) -> Any:
        return copy.deepcopy(state.user_by_username(ctx.params["username"]))

    async def users_by_ids(ctx: Ctx) -> Any:
        ids = await ctx.json()
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise bad_request("user_ids")
        with state.lock:
            return [copy.deepcopy(state.users[i]) for i in dict.fromkeys(ids) if i in state.users]

    async def user_teams(ctx: Ctx) -> Any:
        return state.teams_of(_self_only(ctx))

    async def user_team_channels(ctx: Ctx) -> Any:
        uid = _self_only(ctx)
        state.team(ctx.params["team_id"])
        return state.channels_of(uid, ctx.params["team_id"])

    async def user_channels(ctx: Ctx) -> Any:
        uid = _self_only(ctx)
        page = max(ctx.int_query("page", 0), 0)
        per_page = min(max(ctx.int_query("per_page", 60), 1), 200)
        channels = state.channels_of(uid)
        return channels[page * per_page : (page + 1) * per_page]

    def _filter(users: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for user in users:
            uid = user["id"]
            if body.get("team_id") and uid not in state.team_members.get(body["team_id"], {}):
                continue
            if body.get("not_in_team_id") and uid in state.team_members.get(body["not_in_team_id"], {}):
                continue
            if body.get("in_channel_id") and not state.is_member(body["in_channel_id"], uid):
                continue
            if body.get("not_in_channel_id") and state.is_member(body["not_in_channel_id"], uid):
                continue
            if body.get("without_team") and any(uid in m for m in state.team_members.values()):
                continue
            out.append(copy.deepcopy(user))
        return out

    async def search_users(ctx: Ctx) -> Any:
        body = await ctx.json_object()
        term = body.get("term")
        if not isinstance(term, str):
            raise bad_request("term")
        limit = body.get("limit") or 100
        with state.lock:
            users = [u for u in state.users.values() if _matches(u, term) and not u["delete_at"]]
            users.sort(key=lambda u: u["username"])
            return _filter(users, body)[: int(limit)]

    async def autocomplete(ctx: Ctx) -> Any:
        name = ctx.query.get("name", "")
        team_id = ctx.query.get("team_id", "")
        channel_id = ctx.query.get("channel_id", "")
        limit = min(max(ctx.int_query("limit", 100), 1), 1000)
        with state.lock:
            users = sorted(
                (u for u in state.users.values() if _matches(u, name)), key=lambda u: u["username"]
            )
            if channel_id:
                inside = _filter(users, {"in_channel_id": channel_id})[:limit]
                outside = _filter(users, {"team_id": team_id, "not_in_channel_id": channel_id})[:limit]
                return {"users": inside, "out_of_channel": outside}
            users = _filter(users, {"team_id": team_id}) if team_id else copy.deepcopy(users)
            return {"users": users[:limit]}

    async def user_typing(ctx: Ctx) -> Any:
        uid = _self_only(ctx)
        body = await ctx.json_object()
        state.typing(uid, str(body.get("channel_id", "")), str(body.get("parent_id", "")))
        return {"status": "OK"}

    async def get_team(ctx: Ctx) -> Any:
        return copy.deepcopy(state.team(ctx.params["team_id"]))

    async def get_team_by_name(ctx: Ctx) -> Any:
        return copy.deepcopy(state.team_by_name(ctx.params["name"]))

    async def team_public_channels(ctx: Ctx) -> Any:
        team_id = ctx.params["team_id"]
        state.team(team_id)
        with state.lock:
            chans = [c for c in state.channels.values() if c["team_id"] == team_id and c["type"] == "O"]
            return copy.deepcopy(sorted(chans, key=lambda c: c["display_name"].lower()))

    async def search_team_channels(ctx: Ctx) -> Any:
        term = (await ctx.json_object()).get("term")
        if not isinstance(term, str):
            raise bad_request("term")
        term = term.lower()
        chans = await team_public_channels(ctx)
        return [c for c in chans if term in c["name"].lower() or term in c["display_name"].lower()]

    async def team_channel_by_name(ctx: Ctx) -> Any:
        state.team(ctx.params["team_id"])
        channel = state.channel_by_name(ctx.params["team_id"], ctx.params["name"])
        if channel["type"] != "O" and not state.is_member(channel["id"], ctx.user_id):
            raise forbidden()
        return copy.deepcopy(channel)

    r = router.add
    r("GET", "/api/v4/users/username/{username}", get_user_by_username)
    r("POST", "/api/v4/users/ids", users_by_ids)
    r("POST", "/api/v4/users/search", search_users)
    r("GET", "/api/v4/users/autocomplete", autocomplete)
    r("GET", "/api/v4/users/{user_id}", get_user)
    r("GET", "/api/v4/users/{user_id}/teams", user_teams)
    r("GET", "/api/v4/users/{user_id}/teams/{team_id}/channels", user_team_channels)
    r("GET", "/api/v4/users/{user_id}/channels", user_channels)
    r("POST", "/api/v4/users/{user_id}/typing", user_typing)
    r("GET", "/api/v4/teams/name/{name}", get_team_by_name)
    r("GET", "/api/v4/teams/{team_id}", get_team)
    r("GET", "/api/v4/teams/{team_id}/channels", team_public_channels)
    r("POST", "/api/v4/teams/{team_id}/channels/search", search_team_channels)
    r("GET", "/api/v4/teams/{team_id}/channels/name/{name}", team_channel_by_name)
