"""JSON shapes of Mattermost objects (users, teams, channels, members, posts, files)."""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from .util import new_id, now_ms

_HASHTAG_RE = re.compile(r"(?<![\w#])#[A-Za-z][\w.\-]+")


def make_user(
    username: str, first_name: str, last_name: str, email: str | None, is_bot: bool, bot_description: str = ""
) -> dict[str, Any]:
    ms = now_ms()
    user: dict[str, Any] = {
        "id": new_id(),
        "create_at": ms,
        "update_at": ms,
        "delete_at": 0,
        "username": username,
        "auth_data": "",
        "auth_service": "",
        "email": email if email is not None else f"{username}@localhost",
        "nickname": "",
        "first_name": first_name,
        "last_name": last_name,
        "position": "",
        "roles": "system_user",
        "props": {},
        "notify_props": {
            "channel": "true",
            "comments": "never",
            "desktop": "mention",
            "desktop_sound": "true",
            "email": "true",
            "first_name": "false",
            "mention_keys": "",
            "push": "mention",
            "push_status": "away",
        },
        "last_password_update": ms,
        "locale": "en",
        "timezone": {"automaticTimezone": "", "manualTimezone": "", "useAutomaticTimezone": "true"},
        "is_bot": is_bot,
        "disable_welcome_email": False,
    }
    if is_bot:
        user["bot_description"] = bot_description
        user["bot_last_icon_update"] = 0
    return user


def make_team(name: str, display_name: str) -> dict[str, Any]:
    ms = now_ms()
    return {
        "id": new_id(),
        "create_at": ms,
        "update_at": ms,
        "delete_at": 0,
        "display_name": display_name,
        "name": name,
        "description": "",
        "email": "",
        "type": "O",
        "company_name": "",
        "allowed_domains": "",
        "invite_id": new_id(),
        "allow_open_invite": False,
        "scheme_id": None,
        "group_constrained": None,
        "policy_id": None,
        "cloud_limits_archived": False,
    }


def make_channel(
    team_id: str, name: str, display_name: str, type_: str, creator_id: str = ""
) -> dict[str, Any]:
    ms = now_ms()
    return {
        "id": new_id(),
        "create_at": ms,
        "update_at": ms,
        "delete_at": 0,
        "team_id": team_id,
        "type": type_,
        "display_name": display_name,
        "name": name,
        "header": "",
        "purpose": "",
        "last_post_at": 0,
        "total_msg_count": 0,
        "extra_update_at": 0,
        "creator_id": creator_id,
        "scheme_id": None,
        "props": None,
        "group_constrained": None,
        "shared": None,
        "total_msg_count_root": 0,
        "policy_id": None,
        "last_root_post_at": 0,
    }


def direct_name(a: str, b: str) -> str:
    lo, hi = sorted((a, b))
    return f"{lo}__{hi}"


def group_name(user_ids: list[str]) -> str:
    return hashlib.sha1("".join(sorted(user_ids)).encode()).hexdigest()


def make_channel_member(channel_id: str, user_id: str) -> dict[str, Any]:
    return {
        "channel_id": channel_id,
        "user_id": user_id,
        "roles": "channel_user",
        "last_viewed_at": 0,
        "msg_count": 0,
        "mention_count": 0,
        "mention_count_root": 0,
        "urgent_mention_count": 0,
        "msg_count_root": 0,
        "notify_props": {
            "desktop": "default",
            "email": "default",
            "mark_unread": "all",
            "push": "default",
            "ignore_channel_mentions": "default",
        },
        "last_update_at": now_ms(),
        "scheme_guest": False,
        "scheme_user": True,
        "scheme_admin": False,
        "explicit_roles": "",
    }


def make_team_member(team_id: str, user_id: str) -> dict[str, Any]:
    return {
        "team_id": team_id,
        "user_id": user_id,
        "roles": "team_user",
        "delete_at": 0,
        "scheme_guest": False,
        "scheme_user": True,
        "scheme_admin": False,
        "explicit_roles": "",
    }


def parse_hashtags(message: str) -> str:
    return " ".join(dict.fromkeys(_HASHTAG_RE.findall(message)))


# The Post struct's JSON fields in order (server/public/model/post.go); `file_ids` and `has_reactions`
# are omitempty, and `pending_post_id` is db:"-": never stored, only echoed by the create.
POST_FIELDS = (
    "id", "create_at", "update_at", "edit_at", "delete_at", "is_pinned", "user_id", "channel_id", "root_id",
    "original_id", "message", "type", "props", "hashtags", "file_ids", "pending_post_id", "has_reactions",
    "reply_count", "last_reply_at", "participants", "metadata",
)  # fmt: skip
OMIT_EMPTY = ("file_ids", "has_reactions")


def make_post(
    user_id: str,
    channel_id: str,
    message: str,
    root_id: str,
    props: dict[str, Any],
    file_ids: list[str],
    type_: str,
) -> dict[str, Any]:
    """A post as stored: no `pending_post_id` (the server never stores it)."""
    ms = now_ms()
    return {
        "id": new_id(),
        "create_at": ms,
        "update_at": ms,
        "edit_at": 0,
        "delete_at": 0,
        "is_pinned": False,
        "user_id": user_id,
        "channel_id": channel_id,
        "root_id": root_id,
        "original_id": "",
        "message": message,
        "type": type_,
        "props": props,
        "hashtags": parse_hashtags(message),
        "file_ids": file_ids,
        "has_reactions": False,
        "reply_count": 0,
        "last_reply_at": 0,
        "participants": None,
        "metadata": {},
    }


def post_view(stored: dict[str, Any], pending_post_id: str = "") -> dict[str, Any]:
    """The JSON a client sees for a stored post, keys in the struct's order, empty omitempty keys left out."""
    out: dict[str, Any] = {}
    for key in POST_FIELDS:
        if key == "pending_post_id":
            out[key] = pending_post_id
        elif key in OMIT_EMPTY and not stored.get(key):
            continue
        else:
            out[key] = copy.deepcopy(stored[key])
    return out


def make_reaction(user_id: str, post_id: str, channel_id: str, emoji_name: str) -> dict[str, Any]:
    ms = now_ms()
    return {
        "user_id": user_id,
        "post_id": post_id,
        "emoji_name": emoji_name,
        "create_at": ms,
        "update_at": ms,
        "delete_at": 0,
        "remote_id": "",
        "channel_id": channel_id,
    }


def make_file_info(user_id: str, channel_id: str, name: str, size: int, mime_type: str) -> dict[str, Any]:
    ms = now_ms()
    ext = name.rsplit(".", 1)[1].lower() if "." in name else ""
    return {
        "id": new_id(),
        "user_id": user_id,
        "post_id": "",
        "channel_id": channel_id,
        "create_at": ms,
        "update_at": ms,
        "delete_at": 0,
        "name": name,
        "extension": ext,
        "size": size,
        "mime_type": mime_type,
        "width": 0,
        "height": 0,
        "has_preview_image": False,
        "mini_preview": None,
        "remote_id": "",
        "archived": False,
    }


@dataclass
class Event:
    """A websocket event to broadcast: targets are user ids (every connection of each)."""

    event: str
    data: dict[str, Any]
    targets: set[str]
    channel_id: str = ""
    team_id: str = ""
    user_id: str = ""
    omit_users: dict[str, bool] | None = None
    mentions: list[str] = field(default_factory=list)

    def broadcast(self) -> dict[str, Any]:
        return {
            "omit_users": self.omit_users,
            "user_id": self.user_id,
            "channel_id": self.channel_id,
            "team_id": self.team_id,
            "connection_id": "",
            "omit_connection_id": "",
        }
