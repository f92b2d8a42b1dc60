"""The private ``/_emu/`` HTTP control interface: thin JSON wrappers over the Python control API."""

from __future__ import annotations

import base64
import binascii
import copy
from typing import TYPE_CHECKING, Any

from .routing import Ctx, Result, Router
from .util import bad_request

if TYPE_CHECKING:
    from .server import MattermostEmulator


def register(router: Router, emu: MattermostEmulator) -> None:
    async def teams(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        return Result(emu.add_team(str(b["name"]), b.get("display_name")), 201)

    async def users(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        user = emu.add_user(
            str(b["username"]),
            first_name=str(b.get("first_name", "")),
            last_name=str(b.get("last_name", "")),
            email=b.get("email"),
            is_bot=bool(b.get("is_bot", False)),
        )
        return Result(user, 201)

    async def bots(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        user, token = emu.add_bot(str(b["username"]), str(b.get("display_name", "")))
        return Result({"user": user, "token": token}, 201)

    async def tokens(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        return Result({"token": emu.create_token(str(b["user_id"]))}, 201)

    async def revoke(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        emu.revoke_token(str(b["token"]))
        return {"status": "OK"}

    async def team_members(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        emu.add_team_member(str(b["team_id"]), str(b["user_id"]))
        return {"status": "OK"}

    async def channels(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        channel = emu.add_channel(
            str(b["team_id"]), str(b["name"]), b.get("display_name"), str(b.get("type", "O"))
        )
        return Result(channel, 201)

    async def channel_members(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        emu.add_channel_member(str(b["channel_id"]), str(b["user_id"]))
        return {"status": "OK"}

    async def direct(ctx: Ctx) -> Any:
        ids = (await ctx.json_object())["user_ids"]
        return emu.direct_channel(str(ids[0]), str(ids[1]))

    async def group(ctx: Ctx) -> Any:
        ids = (await ctx.json_object())["user_ids"]
        return emu.group_channel([str(i) for i in ids])

    async def post_as(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        post = emu.post_as(
            str(b["user_id"]),
            str(b["channel_id"]),
            str(b.get("message", "")),
            root_id=str(b.get("root_id") or ""),
            props=b.get("props"),
            file_ids=b.get("file_ids"),
        )
        return Result(post, 201)

    async def edit_post(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        return emu.edit_post(str(b["post_id"]), str(b["message"]))

    async def delete_post(ctx: Ctx) -> Any:
        return emu.delete_post(str((await ctx.json_object())["post_id"]))

    async def posts(ctx: Ctx) -> Any:
        return emu.posts_in(
            ctx.params["channel_id"], include_deleted=ctx.query.get("include_deleted") == "true"
        )

    async def drop(ctx: Ctx) -> Any:
        b = await ctx.json() or {}
        emu.drop_connections(resumable=bool(b.get("resumable", True)), noticed=bool(b.get("noticed", True)))
        return {"status": "OK"}

    async def react(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        return emu.add_reaction(str(b["user_id"]), str(b["post_id"]), str(b["emoji_name"]))

    async def notice(ctx: Ctx) -> Any:
        emu.notice_drops()
        return {"status": "OK"}

    async def silent(ctx: Ctx) -> Any:
        emu.set_silent(bool((await ctx.json_object()).get("silent", True)))
        return {"status": "OK"}

    async def reject(ctx: Ctx) -> Any:
        emu.set_reject_websocket(bool((await ctx.json_object()).get("reject", True)))
        return {"status": "OK"}

    async def connections(ctx: Ctx) -> Any:
        return {"count": emu.connection_count()}

    r = router.add
    r("POST", "/_emu/teams", teams, auth=False)
    r("POST", "/_emu/users", users, auth=False)
    r("POST", "/_emu/bots", bots, auth=False)
    r("POST", "/_emu/tokens", tokens, auth=False)
    r("POST", "/_emu/revoke", revoke, auth=False)
    r("POST", "/_emu/team_members", team_members, auth=False)
    r("POST", "/_emu/channels", channels, auth=False)
    r("POST", "/_emu/channel_members", channel_members, auth=False)
    r("POST", "/_emu/direct", direct, auth=False)
    r("POST", "/_emu/group", group, auth=False)
    r("POST", "/_emu/post_as", post_as, auth=False)
    r("POST", "/_emu/edit_post", edit_post, auth=False)
    r("POST", "/_emu/delete_post", delete_post, auth=False)
    r("GET", "/_emu/posts/{channel_id}", posts, auth=False)
    r("POST", "/_emu/drop", drop, auth=False)
    r("POST", "/_emu/notice_drops", notice, auth=False)
    r("POST", "/_emu/react", react, auth=False)
    r("POST", "/_emu/silent", silent, auth=False)
    r("POST", "/_emu/reject_websocket", reject, auth=False)
    r("GET", "/_emu/connections", connections, auth=False)
    register_console(router, emu)


def register_console(router: Router, emu: MattermostEmulator) -> None:
    """What a browser page needs to play people: the whole workspace at once, files, and a change feed."""

    async def snapshot(ctx: Ctx) -> Any:
        state = emu.state
        with state.lock:
            version = emu.changes.version  # before the data: a change made while copying is seen next time
            users = [copy.deepcopy(u) for u in state.users.values()]
            teams = [copy.deepcopy(t) for t in state.teams.values()]
            channels = [
                {**copy.deepcopy(c), "members": list(state.channel_members.get(cid, {}))}
                for cid, c in state.channels.items()
            ]
        return {"version": version, "users": users, "teams": teams, "channels": channels,
                "connections": emu.connection_count()}

    async def changes(ctx: Ctx) -> Any:
        since = ctx.int_query("since", 0)
        timeout = ctx.int_query("timeout", 25)
        return {"version": await emu.changes.wait(since, timeout)}

    async def upload(ctx: Ctx) -> Any:
        b = await ctx.json_object()
        try:
            data = base64.b64decode(str(b.get("data_base64", "")), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("data_base64") from None
        info = emu.upload_file(str(b["user_id"]), str(b["channel_id"]), str(b["name"]), data, b.get("mime_type"))
        return Result(info, 201)

    async def file(ctx: Ctx) -> Any:
        info, data = emu.state.file(ctx.params["file_id"])
        name = info["name"].replace('"', "")
        return Result(None, raw=data, headers={"Content-Type": info["mime_type"],
                                               "Content-Disposition": f'inline; filename="{name}"'})

    r = router.add
    r("GET", "/_emu/snapshot", snapshot, auth=False)
    r("GET", "/_emu/changes", changes, auth=False)
    r("POST", "/_emu/upload", upload, auth=False)
    r("GET", "/_emu/files/{file_id}", file, auth=False)
