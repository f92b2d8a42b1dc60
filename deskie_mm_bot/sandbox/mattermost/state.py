"""In-memory Mattermost data and the operations shared by REST, control API and websocket."""

from __future__ import annotations

import copy
import mimetypes
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from . import models
from .emoji import SYSTEM_EMOJI
from .models import Event
from .settings import ServerSettings
from .util import AppError, bad_request, dumps, forbidden, new_id, not_found, now_ms
from .variants import MattermostVariants

MAX_MESSAGE_RUNES = 16383
MAX_FILES_PER_POST = 5
PENDING_POST_TTL = 30.0  # pendingPostIDsCacheTTL, seconds
_MENTION_RE = re.compile(r"@([a-z0-9][a-z0-9._\-]*)", re.IGNORECASE)
_EMOJI_RE = re.compile(r"^[a-zA-Z0-9\-+_]{1,64}$")


class State:
    """All server data behind one re-entrant lock. ``publish`` receives websocket events."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.publish: Callable[[Event], None] = lambda event: None
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}  # token -> user id
        self.teams: dict[str, dict[str, Any]] = {}
        self.team_members: dict[str, dict[str, dict[str, Any]]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.channel_members: dict[str, dict[str, dict[str, Any]]] = {}
        self.posts: dict[str, dict[str, Any]] = {}
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.reactions: dict[tuple[str, str, str], dict[str, Any]] = {}
        # pending_post_id -> (post id, or None while its create is being saved; monotonic expiry)
        self.pending_posts: dict[str, tuple[str | None, float]] = {}
        self.pending_post_ttl = PENDING_POST_TTL
        self.save_delays: deque[float] = deque()  # fault: the next creates take this long to save
        self.variants = MattermostVariants()
        self.settings = ServerSettings()
        # Lookups by name, so that a workspace of 10,000 members seeds in seconds.
        self._user_by_name: dict[str, str] = {}
        self._direct_by_name: dict[str, str] = {}

    # ------------------------------------------------------------------ users and tokens
    def add_user(
        self,
        username: str,
        first_name: str = "",
        last_name: str = "",
        email: str | None = None,
        is_bot: bool = False,
        bot_description: str = "",
    ) -> dict[str, Any]:
        with self.lock:
            if username.lower() in self._user_by_name:
                raise AppError(
                    400,
                    "app.user.save.username_exists.app_error",
                    "An account with that username already exists.",
                )
            user = models.make_user(username.lower(), first_name, last_name, email, is_bot, bot_description)
            self.users[user["id"]] = user
            self._user_by_name[user["username"]] = user["id"]
            return copy.deepcopy(user)

    def create_token(self, user_id: str) -> str:
        with self.lock:
            self.user(user_id)
            token = new_id()
            self.tokens[token] = user_id
            return token

    def revoke_token(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def user_for_token(self, token: str | None) -> str | None:
        if not token:
            return None
        with self.lock:
            return self.tokens.get(token)

    def user(self, user_id: str) -> dict[str, Any]:
        with self.lock:
            user = self.users.get(user_id)
            if user is None:
                raise not_found("user")
            return user

    def user_by_username(self, username: str) -> dict[str, Any]:
        with self.lock:
            for user in self.users.values():
                if user["username"] == username.lower():
                    return user
            raise not_found("user")

    # ------------------------------------------------------------------ teams
    def add_team(self, name: str, display_name: str | None = None) -> dict[str, Any]:
        with self.lock:
            if any(t["name"] == name for t in self.teams.values()):
                raise AppError(
                    400, "app.team.save.existing.app_error", "A team with that name already exists."
                )
            team = models.make_team(name, display_name or name)
            self.teams[team["id"]] = team
            self.team_members[team["id"]] = {}
            return copy.deepcopy(team)

    def team(self, team_id: str) -> dict[str, Any]:
        with self.lock:
            team = self.teams.get(team_id)
            if team is None:
                raise not_found("team")
            return team

    def team_by_name(self, name: str) -> dict[str, Any]:
        with self.lock:
            for team in self.teams.values():
                if team["name"] == name:
                    return team
            raise not_found("team")

    def add_team_member(self, team_id: str, user_id: str) -> dict[str, Any]:
        with self.lock:
            self.team(team_id)
            self.user(user_id)
            members = self.team_members[team_id]
            if user_id not in members:
                members[user_id] = models.make_team_member(team_id, user_id)
                self.publish(
                    Event(
                        "added_to_team", {"team_id": team_id, "user_id": user_id}, {user_id}, user_id=user_id
                    )
                )
            return copy.deepcopy(members[user_id])

    def teams_of(self, user_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(t) for tid, t in self.teams.items() if user_id in self.team_members[tid]]

    # ------------------------------------------------------------------ channels
    def add_channel(
        self, team_id: str, name: str, display_name: str | None = None, type: str = "O", creator_id: str = ""
    ) -> dict[str, Any]:
        with self.lock:
            self.team(team_id)
            if type not in ("O", "P"):
                raise bad_request("type")
            if any(c["team_id"] == team_id and c["name"] == name for c in self.channels.values()):
                raise AppError(
                    400,
                    "store.sql_channel.save_channel.exists.app_error",
                    "A channel with that name already exists on the same team.",
                )
            channel = models.make_channel(team_id, name, display_name or name, type, creator_id)
            self.channels[channel["id"]] = channel
            self.channel_members[channel["id"]] = {}
            return copy.deepcopy(channel)

    def channel(self, channel_id: str) -> dict[str, Any]:
        with self.lock:
            channel = self.channels.get(channel_id)
            if channel is None:
                raise not_found("channel")
            return channel

    def channel_by_name(self, team_id: str, name: str) -> dict[str, Any]:
        with self.lock:
            for channel in self.channels.values():
                if channel["team_id"] == team_id and channel["name"] == name:
                    return channel
            raise not_found("channel")

    def is_member(self, channel_id: str, user_id: str) -> bool:
        with self.lock:
            return user_id in self.channel_members.get(channel_id, {})

    def members_of(self, channel_id: str) -> list[str]:
        with self.lock:
            return list(self.channel_members.get(channel_id, {}))

    def add_channel_member(self, channel_id: str, user_id: str) -> dict[str, Any]:
        with self.lock:
            channel = self.channel(channel_id)
            self.user(user_id)
            if channel["type"] in ("D", "G"):
                raise AppError(
                    400,
                    "api.channel.add_user_to_channel.type.app_error",
                    "Can not add user to this channel type.",
                )
            members = self.channel_members[channel_id]
            if user_id not in members:
                if channel["team_id"] and user_id not in self.team_members.get(channel["team_id"], {}):
                    self.add_team_member(channel["team_id"], user_id)
                members[user_id] = models.make_channel_member(channel_id, user_id)
                self.publish(
                    Event(
                        "user_added",
                        {"user_id": user_id, "team_id": channel["team_id"]},
                        set(members),
                        channel_id=channel_id,
                    )
                )
            return copy.deepcopy(members[user_id])

    def remove_channel_member(self, channel_id: str, user_id: str) -> None:
        with self.lock:
            self.channel(channel_id)
            members = self.channel_members[channel_id]
            if user_id in members:
                targets = set(members)
                del members[user_id]
                self.publish(
                    Event(
                        "user_removed",
                        {"remover_id": user_id, "user_id": user_id},
                        targets,
                        channel_id=channel_id,
                    )
                )

    def channel_member(self, channel_id: str, user_id: str) -> dict[str, Any]:
        with self.lock:
            self.channel(channel_id)
            member = self.channel_members[channel_id].get(user_id)
            if member is None:
                raise AppError(
                    404,
                    "app.channel.get_member.missing.app_error",
                    "No channel member found for that user ID and channel ID.",
                )
            return copy.deepcopy(member)

    def direct_channel(self, user_a: str, user_b: str) -> dict[str, Any]:
        with self.lock:
            self.user(user_a)
            self.user(user_b)
            name = models.direct_name(user_a, user_b)
            if name in self._direct_by_name:
                return copy.deepcopy(self.channels[self._direct_by_name[name]])
            channel = models.make_channel("", name, "", "D", user_a)
            self.channels[channel["id"]] = channel
            self._direct_by_name[name] = channel["id"]
            self.channel_members[channel["id"]] = {
                uid: models.make_channel_member(channel["id"], uid) for uid in dict.fromkeys((user_a, user_b))
            }
            for uid, other in dict.fromkeys(((user_a, user_b), (user_b, user_a))):
                self.publish(
                    Event(
                        "direct_added",
                        {"creator_id": user_a, "teammate_id": other},
                        {uid},
                        channel_id=channel["id"],
                    )
                )
            return copy.deepcopy(channel)

    def group_channel(self, user_ids: list[str]) -> dict[str, Any]:
        with self.lock:
            ids = list(dict.fromkeys(user_ids))
            if not 3 <= len(ids) <= 8:
                raise AppError(
                    400,
                    "api.channel.create_group.bad_size.app_error",
                    "Group message channels must contain at least 3 and no more than 8 users.",
                )
            users = [self.user(uid) for uid in ids]
            name = models.group_name(ids)
            for channel in self.channels.values():
                if channel["type"] == "G" and channel["name"] == name:
                    return copy.deepcopy(channel)
            display = ", ".join(sorted(u["username"] for u in users))
            channel = models.make_channel("", name, display, "G", ids[0])
            self.channels[channel["id"]] = channel
            self.channel_members[channel["id"]] = {
                uid: models.make_channel_member(channel["id"], uid) for uid in ids
            }
            self.publish(
                Event("group_added", {"teammate_ids": dumps(ids)}, set(ids), channel_id=channel["id"])
            )
            return copy.deepcopy(channel)

    def channels_of(self, user_id: str, team_id: str | None = None) -> list[dict[str, Any]]:
        """Channels the user belongs to; ``team_id`` restricts to that team (DMs/GMs included, as the server does)."""
        with self.lock:
            out = []
            for cid, channel in self.channels.items():
                if user_id not in self.channel_members[cid] or channel["delete_at"]:
                    continue
                if team_id is not None and channel["team_id"] not in (team_id, ""):
                    continue
                out.append(copy.deepcopy(channel))
            return out

    # ------------------------------------------------------------------ files
    def upload_file(
        self, user_id: str, channel_id: str, name: str, data: bytes, mime_type: str | None = None
    ) -> dict[str, Any]:
        with self.lock:
            self.user(user_id)
            self.channel(channel_id)
            if not self.is_member(channel_id, user_id):
                raise forbidden()
            mime = mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
            info = models.make_file_info(user_id, channel_id, name, len(data), mime)
            self.files[info["id"]] = (info, bytes(data))
            return copy.deepcopy(info)

    def file(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        with self.lock:
            item = self.files.get(file_id)
            if item is None or item[0]["delete_at"]:
                raise not_found("file_info")
            return item

    # ------------------------------------------------------------------ posts
    def post(self, post_id: str, include_deleted: bool = False) -> dict[str, Any]:
        with self.lock:
            post = self.posts.get(post_id)
            if post is None or (post["delete_at"] and not include_deleted):
                raise AppError(404, "app.post.get.app_error", "Unable to get the post.")
            return post

    def post_json(self, post: dict[str, Any], pending_post_id: str = "") -> dict[str, Any]:
        """A client view of a stored post (metadata.files filled in). Only the create's own answer and
        its `posted` event pass a `pending_post_id`: everything read back has ""."""
        out = models.post_view(post, pending_post_id)
        if post["file_ids"]:
            out["metadata"]["files"] = [
                copy.deepcopy(self.files[f][0]) for f in post["file_ids"] if f in self.files
            ]
        return out

    # pending_post_id deduplication (deduplicateCreatePost): one global key, remembered for a while.
    def claim_pending_post(self, pending_post_id: str) -> dict[str, Any] | None:
        """Before a create: None when it may go ahead (the id is now claimed); the post already made
        under this id (read back, so without its pending_post_id); AppError 500 while that first create
        is still being saved."""
        with self.lock:
            now = time.monotonic()
            for key in [k for k, (_, until) in self.pending_posts.items() if until <= now]:
                del self.pending_posts[key]
            known = self.pending_posts.get(pending_post_id)
            if known is not None:
                post_id = known[0]
                if post_id is None:
                    raise AppError(
                        500,
                        "api.post.deduplicate_create_post.pending",
                        "Post rejected: another request with the same pending post id is being processed.",
                    )
                post = self.posts.get(post_id)
                if post is not None and not post["delete_at"]:
                    return self.post_json(post)
            self.pending_posts[pending_post_id] = (None, now + self.pending_post_ttl)
            return None

    def settle_pending_post(self, pending_post_id: str, post_id: str | None) -> None:
        """After a create: remember the post for the TTL, or forget the claim if the create failed."""
        with self.lock:
            if post_id is None:
                self.pending_posts.pop(pending_post_id, None)
            else:
                self.pending_posts[pending_post_id] = (post_id, time.monotonic() + self.pending_post_ttl)

    def take_save_delay(self) -> float:
        with self.lock:
            return self.save_delays.popleft() if self.save_delays else 0.0

    def create_post(
        self,
        user_id: str,
        channel_id: str,
        message: str,
        root_id: str = "",
        props: dict[str, Any] | None = None,
        file_ids: list[str] | None = None,
        type: str = "",
        pending_post_id: str = "",
    ) -> dict[str, Any]:
        """Create a post as POST /api/v4/posts does once past its dedup: validate, store, broadcast ``posted``."""
        with self.lock:
            user = self.user(user_id)
            if not channel_id or channel_id not in self.channels:
                if not channel_id:
                    raise bad_request("channel_id")
                raise forbidden()
            channel = self.channels[channel_id]
            if not self.is_member(channel_id, user_id):
                raise forbidden()
            if channel["delete_at"]:
                raise AppError(
                    400,
                    "api.post.create_post.can_not_post_to_deleted.error",
                    "Can not post to deleted channel.",
                )
            message = message or ""
            file_ids = list(dict.fromkeys(file_ids or []))
            if not message and not file_ids:
                raise bad_request("message")
            if len(message) > MAX_MESSAGE_RUNES:
                raise AppError(
                    400, "model.post.is_valid.message_length.app_error", "Invalid Message property for post."
                )
            if len(file_ids) > MAX_FILES_PER_POST:
                raise AppError(400, "model.post.is_valid.file_ids.app_error", "Invalid file ids.")
            for fid in file_ids:
                item = self.files.get(fid)
                if item is None or item[0]["channel_id"] != channel_id or item[0]["post_id"]:
                    raise AppError(400, "api.post.create_post.file_ids.app_error", "Invalid file ids.")
            root = None
            if root_id:
                root = self.posts.get(root_id)
                if (
                    root is None
                    or root["delete_at"]
                    or root["channel_id"] != channel_id
                    or root["root_id"]
                    or root["original_id"]
                ):
                    raise AppError(400, "api.post.create_post.root_id.app_error", "Invalid RootId parameter.")
            post_props = copy.deepcopy(props) if isinstance(props, dict) else {}
            if user["is_bot"]:
                post_props["from_bot"] = "true"
            post = models.make_post(user_id, channel_id, message, root_id, post_props, file_ids, type)
            self.posts[post["id"]] = post
            for fid in file_ids:
                self.files[fid][0]["post_id"] = post["id"]
            if root is not None:
                # SaveMultiple: a reply bumps its root's update_at, so `since=` brings the root back.
                root["reply_count"] += 1
                root["last_reply_at"] = post["create_at"]
                root["update_at"] = post["create_at"]
            channel["last_post_at"] = post["create_at"]
            channel["total_msg_count"] += 1
            if not root_id:
                channel["last_root_post_at"] = post["create_at"]
                channel["total_msg_count_root"] += 1
            result = self.post_json(post, pending_post_id)
            self.publish(self._posted_event(user, channel, result))
            return result

    def _mentions(self, sender_id: str, channel: dict[str, Any], message: str) -> list[str]:
        members = self.channel_members[channel["id"]]
        mentioned: list[str] = []
        if channel["type"] in ("D", "G"):
            # DMMention / GMMention: every member but the poster counts as mentioned, whatever the text.
            mentioned = [uid for uid in members if uid != sender_id]
        else:
            names = {m.rstrip(".").lower() for m in _MENTION_RE.findall(message)}
            everyone = bool(names & {"here", "channel", "all"})
            for uid in members:
                if uid != sender_id and (everyone or self.users[uid]["username"] in names):
                    mentioned.append(uid)
        return mentioned

    def _posted_event(self, sender: dict[str, Any], channel: dict[str, Any], post: dict[str, Any]) -> Event:
        ctype = channel["type"]
        if ctype == "D":
            display = "@" + sender["username"]
        elif ctype == "G":
            # GetChannelName(ShowUsername, ""): every member, the sender included.
            names = sorted(self.users[uid]["username"] for uid in self.channel_members[channel["id"]])
            display = ", ".join(names)
        else:
            display = channel["display_name"]
        data: dict[str, Any] = {
            "channel_display_name": display,
            "channel_name": channel["name"],
            "channel_type": ctype,
            "post": dumps(post),
            "sender_name": "@" + sender["username"],
            "set_online": True,
            "team_id": channel["team_id"],
        }
        if not self.variants.posted_channel_fields:
            for key in ("channel_type", "team_id", "channel_name", "channel_display_name"):
                del data[key]
        files = post["metadata"].get("files") or []
        if files:
            data["otherFile"] = "true"
            if any(f["mime_type"].startswith("image/") for f in files):
                data["image"] = "true"
        return Event(
            "posted",
            data,
            set(self.channel_members[channel["id"]]),
            channel_id=channel["id"],
            mentions=self._mentions(sender["id"], channel, post["message"]),
        )

    def _store_history(self, post: dict[str, Any], ms: int) -> None:
        """Post store Update: the old version is kept as a copy with a new id, `original_id` = the post,
        and `delete_at` = `update_at` = the edit time. `since=` returns it; nothing else does."""
        old = copy.deepcopy(post)
        old["id"] = new_id()
        old["original_id"] = post["id"]
        old["delete_at"] = ms
        old["update_at"] = ms
        self.posts[old["id"]] = old

    def patch_post(
        self, post_id: str, message: str | None = None, props: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        with self.lock:
            post = self.post(post_id)
            if post["original_id"]:
                raise AppError(404, "app.post.get.app_error", "Unable to get the post.")
            ms = now_ms()
            if message is not None and len(message) > MAX_MESSAGE_RUNES:
                raise AppError(
                    400,
                    "model.post.is_valid.message_length.app_error",
                    "Invalid Message property for post.",
                )
            self._store_history(post, ms)
            if message is not None and message != post["message"]:
                post["message"] = message
                post["hashtags"] = models.parse_hashtags(message)
                post["edit_at"] = ms
            if props is not None:
                keep = {"from_bot": post["props"]["from_bot"]} if "from_bot" in post["props"] else {}
                post["props"] = {**copy.deepcopy(props), **keep}
            post["update_at"] = ms
            result = self.post_json(post)
            self.publish(
                Event(
                    "post_edited",
                    {"post": dumps(result)},
                    set(self.channel_members[post["channel_id"]]),
                    channel_id=post["channel_id"],
                )
            )
            return result

    def delete_post(self, post_id: str) -> dict[str, Any]:
        with self.lock:
            post = self.post(post_id)
            ms = now_ms()
            post["delete_at"] = ms
            post["update_at"] = ms
            if post["root_id"]:
                root = self.posts.get(post["root_id"])
                if root is not None and root["reply_count"] > 0:
                    root["reply_count"] -= 1
            else:
                for reply in self.posts.values():
                    if reply["root_id"] == post_id and not reply["delete_at"]:
                        reply["delete_at"] = ms
                        reply["update_at"] = ms
            result = self.post_json(post)
            self.publish(
                Event(
                    "post_deleted",
                    {"post": dumps(result)},
                    set(self.channel_members[post["channel_id"]]),
                    channel_id=post["channel_id"],
                )
            )
            return result

    def channel_posts(self, channel_id: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Posts of a channel, oldest first (edit-history copies are not posts of the channel)."""
        with self.lock:
            self.channel(channel_id)
            posts = [
                p
                for p in self.posts.values()
                if p["channel_id"] == channel_id
                and not p["original_id"]
                and (include_deleted or not p["delete_at"])
            ]
            posts.sort(key=lambda p: p["create_at"])
            return [self.post_json(p) for p in posts]

    def posts_since(self, channel_id: str, since: int, limit: int) -> tuple[list[dict[str, Any]], set[str]]:
        """GetPostsSince: every row changed after `since` (deletions and edit-history copies included, up to
        `limit`), UNION the roots of those rows. Returns the posts and the ids that go into `order`
        (a root that itself did not change after `since` is in `posts` only)."""
        with self.lock:
            self.channel(channel_id)
            changed = [
                p for p in self.posts.values() if p["channel_id"] == channel_id and p["update_at"] > since
            ]
            changed = changed[:limit]
            rows = {p["id"]: p for p in changed}
            for p in changed:
                root = self.posts.get(p["root_id"]) if p["root_id"] else None
                if root is not None:
                    rows.setdefault(root["id"], root)
            posts = sorted(rows.values(), key=lambda p: p["create_at"])
            in_order = {p["id"] for p in posts if p["update_at"] > since}
            return [self.post_json(p) for p in posts], in_order

    def thread_posts(self, post_id: str) -> list[dict[str, Any]]:
        with self.lock:
            post = self.post(post_id)
            root_id = post["root_id"] or post["id"]
            root = self.post(root_id)
            posts = [root] + [
                p
                for p in self.posts.values()
                if p["root_id"] == root_id and not p["delete_at"] and not p["original_id"]
            ]
            posts.sort(key=lambda p: p["create_at"])
            return [self.post_json(p) for p in posts]

    # ------------------------------------------------------------------ reactions
    def _react(self, user_id: str, post_id: str, emoji_name: str, add: bool) -> dict[str, Any]:
        with self.lock:
            post = self.post(post_id)
            if not self.is_member(post["channel_id"], user_id):
                raise forbidden()
            if not emoji_name or not _EMOJI_RE.match(emoji_name):
                raise AppError(400, "api.reaction.save_reaction.invalid.app_error", "Reaction is not valid.")
            if add and emoji_name not in SYSTEM_EMOJI:  # GetEmojiByName: no such custom emoji
                raise AppError(404, "app.emoji.get_by_name.no_result", "Unable to find the emoji.")
            key = (post_id, user_id, emoji_name)
            ms = now_ms()
            if add:
                reaction = self.reactions.get(key) or models.make_reaction(
                    user_id, post_id, post["channel_id"], emoji_name
                )
                reaction["update_at"] = ms
                self.reactions[key] = reaction
            else:
                reaction = self.reactions.pop(key, None) or models.make_reaction(
                    user_id, post_id, post["channel_id"], emoji_name
                )
            # reaction_store.go: adding or removing a reaction touches the post, so `since=` returns it.
            post["update_at"] = ms
            post["has_reactions"] = any(k[0] == post_id for k in self.reactions)
            self.publish(
                Event(
                    "reaction_added" if add else "reaction_removed",
                    {"reaction": dumps(reaction)},
                    set(self.channel_members[post["channel_id"]]),
                    channel_id=post["channel_id"],
                )
            )
            return copy.deepcopy(reaction)

    def add_reaction(self, user_id: str, post_id: str, emoji_name: str) -> dict[str, Any]:
        return self._react(user_id, post_id, emoji_name, True)

    def remove_reaction(self, user_id: str, post_id: str, emoji_name: str) -> None:
        self._react(user_id, post_id, emoji_name, False)

    def reactions_of(self, post_id: str) -> list[dict[str, Any]]:
        with self.lock:
            self.post(post_id)
            return [copy.deepcopy(r) for k, r in self.reactions.items() if k[0] == post_id]

    def typing(self, user_id: str, channel_id: str, parent_id: str = "") -> None:
        with self.lock:
            self.channel(channel_id)
            if not self.is_member(channel_id, user_id):
                raise forbidden()
            self.publish(
                Event(
                    "typing",
                    {"parent_id": parent_id, "user_id": user_id},
                    set(self.channel_members[channel_id]),
                    channel_id=channel_id,
                    omit_users={user_id: True},
                )
            )
