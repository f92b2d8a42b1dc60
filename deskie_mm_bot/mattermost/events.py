"""Decoding Mattermost posts (from `posted`/`post_edited`/`post_deleted` events or REST) into ChatPost."""

from __future__ import annotations

import json
import re
from typing import Any

from ..model import ChatPost


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def mentions_username(text: str, username: str) -> bool:
    return re.search(rf"(?<![\w.-])@{re.escape(username)}(?![\w-])", text, re.I) is not None


def post_from_dict(
    post: dict[str, Any], *, channel_type: str, team_id: str, bot_id: str, bot_username: str,
    mentions: list[str] | None = None,
) -> ChatPost:
    props = post.get("props") or {}
    text = str(post.get("message") or "")
    mentioned = (bot_id in mentions) if mentions is not None else False
    named = mentions_username(text, bot_username)
    return ChatPost(
        post_id=str(post["id"]),
        channel_id=str(post["channel_id"]),
        channel_type=channel_type,
        team_id=team_id or "",
        user_id=str(post.get("user_id") or ""),
        root_id=str(post.get("root_id") or ""),
        text=text,
        file_ids=[str(f) for f in post.get("file_ids") or []],
        create_at_ms=int(post.get("create_at") or 0),
        update_at_ms=int(post.get("update_at") or 0),
        edit_at_ms=int(post.get("edit_at") or 0),
        delete_at_ms=int(post.get("delete_at") or 0),
        post_type=str(post.get("type") or ""),
        from_bot=_flag(props.get("from_bot")),
        from_webhook=_flag(props.get("from_webhook")),
        mentions_bot=mentioned or named,
        names_bot=named,
        original_id=str(post.get("original_id") or ""),
    )


def post_from_event(event: dict[str, Any], *, bot_id: str, bot_username: str) -> ChatPost | None:
    """The post inside a `posted`, `post_edited` or `post_deleted` event; None when it has none."""
    data = event.get("data") or {}
    raw = data.get("post")
    if raw is None:
        return None
    post = json.loads(raw) if isinstance(raw, str) else raw
    mentions_raw = data.get("mentions")
    mentions: list[str] | None = None
    if mentions_raw:
        mentions = json.loads(mentions_raw) if isinstance(mentions_raw, str) else list(mentions_raw)
    return post_from_dict(
        post,
        channel_type=str(data.get("channel_type") or ""),
        team_id=str(data.get("team_id") or ""),
        bot_id=bot_id,
        bot_username=bot_username,
        mentions=mentions,
    )
