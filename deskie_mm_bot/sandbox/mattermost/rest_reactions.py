"""REST handlers: reactions of several posts at once, and the client config (format=old) a bot reads
file limits from. Saving, listing and removing reactions live with the posts (rest_posts.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .rest_channels import check_read
from .routing import Ctx, Router
from .state import State
from .util import AppError


def register(router: Router, state: State, version: Callable[[], str]) -> None:
    async def for_posts(ctx: Ctx) -> Any:
        ids = await ctx.json()
        if not isinstance(ids, list):
            raise AppError(400, "api.context.invalid_body_param.app_error", "Invalid or missing post_ids in request body.")
        out: dict[str, Any] = {}
        for pid in ids:
            post = state.post(str(pid))
            check_read(state, post["channel_id"], ctx.user_id)
            out[str(pid)] = state.reactions_of(str(pid))
        return out

    async def client_config(ctx: Ctx) -> Any:
        if ctx.query.get("format") != "old":
            raise AppError(501, "api.config.client.old_format.app_error",
                           "New format for the client configuration is not supported yet.")
        return state.settings.client_config(version())

    r = router.add
    r("POST", "/api/v4/posts/ids/reactions", for_posts)
    r("GET", "/api/v4/config/client", client_config)
