"""REST handlers: posts and files."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import BodyPartReader, MultipartReader

from .rest_channels import check_read
from .routing import Ctx, Result, Router
from .state import State
from .util import AppError, bad_request, forbidden

SINCE_LIMIT = 1000


def post_list(posts: list[dict[str, Any]], next_id: str = "", prev_id: str = "") -> dict[str, Any]:
    """A PostList; ``posts`` must already be newest first."""
    return {
        "order": [p["id"] for p in posts],
        "posts": {p["id"]: p for p in posts},
        "next_post_id": next_id,
        "prev_post_id": prev_id,
        "has_next": False,
        "first_inaccessible_post_time": 0,
    }


def register(router: Router, state: State) -> None:
    async def create_post(ctx: Ctx) -> Any:
        body = await ctx.json_object()
        channel_id = body.get("channel_id")
        if not isinstance(channel_id, str) or not channel_id:
            raise bad_request("channel_id")
        message = body.get("message") or ""
        if not isinstance(message, str):
            raise bad_request("message")
        file_ids = body.get("file_ids") or []
        if not isinstance(file_ids, list):
            raise bad_request("file_ids")
        props = body.get("props") if isinstance(body.get("props"), dict) else None
        pending_post_id = str(body.get("pending_post_id") or "")
        dedup = bool(pending_post_id) and state.variants.pending_post_dedup
        if dedup:
            known = state.claim_pending_post(pending_post_id)
            if known is not None:
                return Result(known, 201)
        post_id: str | None = None
        try:
            delay = state.take_save_delay()
            if delay:
                await asyncio.sleep(delay)  # the first create is "being saved": a repeat now gets a 500
            post = state.create_post(
                ctx.user_id,
                channel_id,
                message,
                root_id=str(body.get("root_id") or ""),
                props=props,
                file_ids=[str(f) for f in file_ids],
                type=str(body.get("type") or ""),
                pending_post_id=pending_post_id,
            )
            post_id = post["id"]
        finally:
            if dedup:
                state.settle_pending_post(pending_post_id, post_id)
        return Result(post, 201)

    def _readable_post(ctx: Ctx) -> dict[str, Any]:
        post = state.post(ctx.params["post_id"])
        check_read(state, post["channel_id"], ctx.user_id)
        return post

    async def get_post(ctx: Ctx) -> Any:
        with state.lock:
            return state.post_json(_readable_post(ctx))

    def _own_post(ctx: Ctx) -> dict[str, Any]:
        post = _readable_post(ctx)
        if post["user_id"] != ctx.user_id:
            raise forbidden()
        return post

    async def patch_post(ctx: Ctx) -> Any:
        body = await ctx.json_object()
        post = _own_post(ctx)
        message = body.get("message")
        props = body.get("props")
        return state.patch_post(
            post["id"],
            message=message if isinstance(message, str) else None,
            props=props if isinstance(props, dict) else None,
        )

    async def update_post(ctx: Ctx) -> Any:
        body = await ctx.json_object()
        post = _own_post(ctx)
        if body.get("id") not in (None, post["id"]):
            raise bad_request("id")
        return state.patch_post(post["id"], message=str(body.get("message", "")))

    async def delete_post(ctx: Ctx) -> Any:
        _own_post(ctx)
        state.delete_post(ctx.params["post_id"])
        return {"status": "OK"}

    async def thread(ctx: Ctx) -> Any:
        _readable_post(ctx)
        posts = state.thread_posts(ctx.params["post_id"])
        return post_list(list(reversed(posts)))

    async def channel_posts(ctx: Ctx) -> Any:
        cid = ctx.params["channel_id"]
        check_read(state, cid, ctx.user_id)
        include_deleted = ctx.query.get("include_deleted") == "true"
        since = ctx.int_query("since", 0)
        if since > 0:
            posts, in_order = state.posts_since(cid, since, SINCE_LIMIT)
            listed = post_list(list(reversed(posts)))
            listed["order"] = [pid for pid in listed["order"] if pid in in_order]
            return listed
        posts = list(reversed(state.channel_posts(cid, include_deleted=include_deleted)))
        before = ctx.query.get("before", "")
        after = ctx.query.get("after", "")
        page = max(ctx.int_query("page", 0), 0)
        per_page = min(max(ctx.int_query("per_page", 60), 1), 200)
        ids = [p["id"] for p in posts]
        if before:
            if before not in ids:
                return post_list([])
            posts = posts[ids.index(before) + 1 :]
        elif after:
            if after not in ids:
                return post_list([])
            older_first = list(reversed(posts[: ids.index(after)]))
            chunk = older_first[page * per_page : (page + 1) * per_page]
            return post_list(list(reversed(chunk)))
        start = page * per_page
        chunk = posts[start : start + per_page]
        next_id = posts[start - 1]["id"] if 0 < start <= len(posts) and chunk else ""
        prev_id = posts[start + per_page]["id"] if start + per_page < len(posts) else ""
        return post_list(chunk, next_id, prev_id)

    def _too_large(size: int) -> AppError | None:
        limit = state.settings.max_file_size
        if size <= limit:
            return None
        return AppError(413, "api.file.upload_file.too_large_detailed.app_error",
                        f"Unable to upload file. File is too large. (limit {limit} bytes)")

    async def upload(ctx: Ctx) -> Any:
        if not state.settings.enable_file_attachments:
            raise AppError(403, "api.file.attachments.disabled.app_error",
                           "File attachments have been disabled on this server.")
        channel_id = ctx.query.get("channel_id", "")
        client_ids: list[str] = []
        parts: list[tuple[str, bytes, str | None]] = []
        ctype = ctx.request.headers.get("Content-Type", "")
        if ctype.startswith("multipart/"):
            reader: MultipartReader = await ctx.request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "channel_id":
                    channel_id = (await part.text()).strip()
                elif part.name == "client_ids":
                    client_ids.append((await part.text()).strip())
                elif part.name == "files" or part.filename:
                    data = bytes(await part.read())
                    mime = part.headers.get("Content-Type")
                    if mime in ("application/octet-stream", None):
                        mime = None
                    parts.append((part.filename or "file", data, mime))
        else:
            filename = ctx.query.get("filename", "")
            if not filename:
                raise bad_request("filename")
            parts.append((filename, await ctx.request.read(), None))
            if ctx.query.get("client_id"):
                client_ids.append(ctx.query["client_id"])
        if not channel_id:
            raise bad_request("channel_id")
        if not parts:
            raise AppError(
                400,
                "api.file.upload_file.incorrect_number_of_files.app_error",
                "Unable to upload files. Incorrect number of files specified.",
            )
        for _, data, _ in parts:
            err = _too_large(len(data))
            if err is not None:  # FileSettings.MaxFileSize, per file
                raise err
        if client_ids and len(client_ids) != len(parts):
            raise AppError(400, "api.file.upload_file.incorrect_number_of_client_ids.app_error",
                           "Unable to upload files. Incorrect number of client_ids specified.")
        check_read(state, channel_id, ctx.user_id)
        infos = [state.upload_file(ctx.user_id, channel_id, name, data, mime) for name, data, mime in parts]
        return Result({"file_infos": infos, "client_ids": client_ids}, 201)

    def _readable_file(ctx: Ctx) -> tuple[dict[str, Any], bytes]:
        info, data = state.file(ctx.params["file_id"])
        if info["user_id"] != ctx.user_id:
            check_read(state, info["channel_id"], ctx.user_id)
        return info, data

    async def get_file(ctx: Ctx) -> Any:
        info, data = _readable_file(ctx)
        name = info["name"].replace('"', "")
        return Result(
            None,
            raw=data,
            headers={
                "Content-Type": info["mime_type"],
                "Content-Disposition": f'attachment;filename="{name}"',
            },
        )

    async def get_file_info(ctx: Ctx) -> Any:
        return dict(_readable_file(ctx)[0])

    async def save_reaction(ctx: Ctx) -> Any:
        body = await ctx.json_object()
        if str(body.get("user_id") or "") != ctx.user_id:
            raise AppError(
                403,
                "api.reaction.save_reaction.user_id.app_error",
                "You can not save reaction for the other user.",
            )
        post = state.post(str(body.get("post_id") or ""))
        check_read(state, post["channel_id"], ctx.user_id)
        # saveReaction never sets a status: 200, not the 201 the OpenAPI file says.
        return state.add_reaction(ctx.user_id, post["id"], str(body.get("emoji_name") or ""))

    async def delete_reaction(ctx: Ctx) -> Any:
        if ctx.params["user_id"] not in (ctx.user_id, "me"):
            raise forbidden()
        _readable_post(ctx)
        state.remove_reaction(ctx.user_id, ctx.params["post_id"], ctx.params["emoji_name"])
        return {"status": "OK"}

    async def post_reactions(ctx: Ctx) -> Any:
        _readable_post(ctx)
        return state.reactions_of(ctx.params["post_id"])

    r = router.add
    r("POST", "/api/v4/reactions", save_reaction)
    r("GET", "/api/v4/posts/{post_id}/reactions", post_reactions)
    r("DELETE", "/api/v4/users/{user_id}/posts/{post_id}/reactions/{emoji_name}", delete_reaction)
    r("POST", "/api/v4/posts", create_post)
    r("GET", "/api/v4/posts/{post_id}", get_post)
    r("PUT", "/api/v4/posts/{post_id}", update_post)
    r("DELETE", "/api/v4/posts/{post_id}", delete_post)
    r("PUT", "/api/v4/posts/{post_id}/patch", patch_post)
    r("GET", "/api/v4/posts/{post_id}/thread", thread)
    r("GET", "/api/v4/channels/{channel_id}/posts", channel_posts)
    r("POST", "/api/v4/files", upload)
    r("GET", "/api/v4/files/{file_id}", get_file)
    r("GET", "/api/v4/files/{file_id}/info", get_file_info)
