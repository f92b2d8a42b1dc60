"""REST handlers: reactions, and the client config (format=old) a bot reads file limits from."""

from __future__ import annotations

from typing import Any

from .reactions import Reactions
from .routing import Ctx, Router
from .state import State
from .util import AppError


def register(router: Router, state: State, reactions: Reactions, version: Any) -> None:
    async def save(ctx: Ctx) -> Any:
        # 200, not the 201 reactions.yaml claims: saveReaction never writes a status.
        return reactions.save(ctx.user_id, await ctx.json_object())

    async def of_post(ctx: Ctx) -> Any:
        return reactions.readable(ctx.user_id, ctx.params["post_id"])

    async def remove(ctx: Ctx) -> Any:
        p = ctx.params
        reactions.remove(ctx.user_id, p["user_id"], p["post_id"], p["emoji_name"])
        return {"status": "OK"}

    async def for_posts(ctx: Ctx) -> Any:
        ids = await ctx.json()
        if not isinstance(ids, list):
            raise AppError(400, "api.context.invalid_body_param.app_error", "Invalid or missing post_ids in request body.")
        return {str(pid): reactions.readable(ctx.user_id, str(pid)) for pid in ids}

    async def client_config(ctx: Ctx) -> Any:
        if ctx.query.get("format") != "old":
            raise AppError(501, "api.config.client.old_format.app_error",
                           "New format for the client configuration is not supported yet.")
        return state.settings.client_config(version())

    r = router.add
    r("POST", "/api/v4/reactions", save)
    r("GET", "/api/v4/posts/{post_id}/reactions", of_post)
    r("DELETE", "/api/v4/users/{user_id}/posts/{post_id}/reactions/{emoji_name}", remove)
    r("POST", "/api/v4/posts/ids/reactions", for_posts)
    r("GET", "/api/v4/config/client", client_config)
