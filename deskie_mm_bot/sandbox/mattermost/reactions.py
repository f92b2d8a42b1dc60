"""Reactions as the server keeps them: one per (user, post, emoji), saved again as an upsert.

Adding or removing one bumps the post's ``update_at`` (so ``since=`` brings the post back) and sends
``reaction_added`` / ``reaction_removed`` to the post's channel, with the reaction as a JSON string.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .models import Event
from .state import State
from .util import AppError, dumps, forbidden, now_ms

_EMOJI_NAME = re.compile(r"^[a-zA-Z0-9\-+_]+$")
# A few of the server's system emoji; any other name is treated as a custom emoji that does not exist.
SYSTEM_EMOJI = frozenset(
    {
        "+1", "-1", "thumbsup", "thumbsdown", "eyes", "white_check_mark", "heavy_check_mark", "x",
        "heart", "smile", "slightly_smiling_face", "tada", "rocket", "warning", "hourglass",
        "hourglass_flowing_sand", "raised_hands", "pray", "ok_hand", "wave", "question", "exclamation",
    }
)


def _invalid() -> AppError:
    return AppError(400, "api.reaction.save_reaction.invalid.app_error", "Reaction is not valid.")


class Reactions:
    def __init__(self, state: State) -> None:
        self.state = state
        self.items: dict[tuple[str, str, str], dict[str, Any]] = {}

    def _post_for(self, user_id: str, post_id: str) -> dict[str, Any]:
        post = self.state.post(post_id)
        if not self.state.is_member(post["channel_id"], user_id):
            raise forbidden()
        return post

    def save(self, caller_id: str, body: dict[str, Any]) -> dict[str, Any]:
        user_id, post_id, emoji = (body.get(k) for k in ("user_id", "post_id", "emoji_name"))
        if not all(isinstance(v, str) and v for v in (user_id, post_id, emoji)):
            raise _invalid()
        assert isinstance(user_id, str) and isinstance(post_id, str) and isinstance(emoji, str)
        if len(user_id) != 26 or len(post_id) != 26 or len(emoji) > 64 or not _EMOJI_NAME.match(emoji):
            raise _invalid()
        if user_id != caller_id:
            raise AppError(403, "api.reaction.save_reaction.user_id.app_error",
                           "Failed to save reaction, user_id does not match.")
        if emoji not in SYSTEM_EMOJI:
            raise AppError(404, "app.emoji.get_by_name.no_result", "Unable to find the emoji.")
        with self.state.lock:
            post = self._post_for(caller_id, post_id)
            ms = now_ms()
            key = (user_id, post_id, emoji)
            reaction = self.items.get(key)
            if reaction is None:
                reaction = {"user_id": user_id, "post_id": post_id, "emoji_name": emoji, "create_at": ms,
                            "update_at": ms, "delete_at": 0, "remote_id": "", "channel_id": post["channel_id"]}
                self.items[key] = reaction
            else:  # ON CONFLICT DO UPDATE: saved again, announced again
                reaction["update_at"] = ms
            self._touch(post, ms, "reaction_added", reaction)
            return copy.deepcopy(reaction)

    def remove(self, caller_id: str, user_id: str, post_id: str, emoji: str) -> None:
        if user_id != caller_id:
            raise forbidden()  # removing someone else's needs remove_others_reactions
        with self.state.lock:
            post = self._post_for(caller_id, post_id)
            reaction = self.items.pop((user_id, post_id, emoji), None)
            if reaction is None:
                return
            ms = now_ms()
            reaction = dict(reaction, delete_at=ms, update_at=ms)
            self._touch(post, ms, "reaction_removed", reaction)

    def of_post(self, post_id: str) -> list[dict[str, Any]]:
        with self.state.lock:
            found = [copy.deepcopy(r) for (_, pid, _), r in self.items.items() if pid == post_id]
        return sorted(found, key=lambda r: r["create_at"])

    def readable(self, caller_id: str, post_id: str) -> list[dict[str, Any]]:
        with self.state.lock:
            self._post_for(caller_id, post_id)
        return self.of_post(post_id)

    def _touch(self, post: dict[str, Any], ms: int, event: str, reaction: dict[str, Any]) -> None:
        post["update_at"] = ms
        post["has_reactions"] = any(pid == post["id"] for (_, pid, _) in self.items)
        channel_id = post["channel_id"]
        self.state.publish(
            Event(event, {"reaction": dumps(reaction)}, set(self.state.members_of(channel_id)), channel_id=channel_id)
        )
