"""Intake: which Mattermost posts become Deskie messages, under which conversation, as whom.

Decides, records in the outbox, and returns: nothing is sent from here. Recording comes first so that
a crash after this point loses nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from ..model import ChatPost, ConvKey, Customer, ItemKind, Person, Place, named
from ..store import Store

log = logging.getLogger(__name__)


class Directory(Protocol):
    """Who posted and where (mattermost/chat.py; cached there)."""

    async def person(self, user_id: str) -> Person: ...
    async def place(self, channel_id: str) -> Place: ...


@dataclass(frozen=True)
class IntakeRules:
    bot_id: str
    reply_mode: str = "group_chat"  # group_chat | thread
    mention_only: bool = True
    team_id: str = ""  # empty: every team
    workspace: str = ""  # the workspace's name when the bot serves several: in keys, ids and names


class Intake:
    def __init__(self, store: Store, directory: Directory, rules: IntakeRules) -> None:
        self.store = store
        self.directory = directory
        self.rules = rules

    def skip_reason(self, post: ChatPost) -> str | None:
        if post.original_id:
            # What an edit leaves behind (since= returns it, deleted): the edit itself is the change.
            return "edit-history copy"
        if post.user_id == self.rules.bot_id:
            return "own post"
        if post.from_bot or post.from_webhook:
            return "bot or webhook post"
        if post.post_type.startswith("system_"):
            return "system post"
        if self.rules.team_id and post.channel_type in ("O", "P") and post.team_id not in ("", self.rules.team_id):
            return "other team"
        return None

    async def accept(self, post: ChatPost) -> bool:
        """Record the post if it is to be relayed. True when something new was recorded."""
        reason = self.skip_reason(post)
        if reason:
            log.debug("post %s not relayed: %s", post.post_id, reason)
            return False
        if not post.delete_at_ms and not post.edit_at_ms and self.store.has_post(post.post_id):
            return False  # already recorded (a catch-up's overlap, a resumed event): no lookups needed
        channel = await self.directory.place(post.channel_id)
        channel_type = post.channel_type or channel.type
        team_id = post.team_id or channel.team_id
        if self.rules.team_id and channel_type in ("O", "P") and team_id != self.rules.team_id:
            return False
        if post.delete_at_ms or (post.edit_at_ms and self.store.has_post(post.post_id)):
            return self._record_change(post)
        direct = channel_type == "D"
        in_relayed_thread = bool(post.root_id) and self._root_is_relayed(post.root_id)
        # In a group message the server counts every member but the poster as mentioned, the bot
        # included, whatever the text: there only the text says whether the bot was addressed.
        addressed = post.names_bot if channel_type == "G" else post.mentions_bot
        if not direct and self.rules.mention_only and not addressed and not in_relayed_thread:
            log.debug("post %s not relayed: no mention of the bot", post.post_id)
            return False
        author = await self.directory.person(post.user_id)
        if author.is_bot:
            return False
        author_name = author.full_name
        ws = self.rules.workspace
        person = str(Customer.person(post.user_id, ws)), named(author_name, ws)
        if self.rules.reply_mode == "thread":
            root = post.root_id or post.post_id
            key = ConvKey.thread(root, ws)
            reply_root = root
            existing = self.store.current_conversation(key)
            if existing is not None:
                custom_id, full_name = existing.user_custom_id, existing.user_full_name
            else:
                custom_id, full_name = person
            show_author = not direct
        elif direct:
            key, reply_root = ConvKey.channel(post.channel_id, ws), ""
            custom_id, full_name = person
            show_author = False
        else:
            key, reply_root = ConvKey.channel(post.channel_id, ws), ""
            custom_id, full_name = str(Customer.channel(post.channel_id, ws)), named(channel.full_name, ws)
            show_author = True
        fresh = self.store.enqueue_post(
            post_id=post.post_id,
            conv_key=key,
            channel_id=post.channel_id,
            reply_root_id=reply_root,
            user_custom_id=custom_id,
            user_full_name=full_name,
            author=author_name,
            show_author=show_author,
            text=post.text,
            file_ids=post.file_ids,
            posted_at=post.create_at_ms / 1000.0,
            refetchable=True,
        )
        if fresh:
            log.info("recorded post %s for %s", post.post_id, key)
        return fresh

    def _root_is_relayed(self, root_id: str) -> bool:
        return (
            self.store.has_post(root_id)
            or self.store.is_answer_post(root_id)
            or self.store.current_conversation(ConvKey.thread(root_id, self.rules.workspace)) is not None
        )

    def _record_change(self, post: ChatPost) -> bool:
        """An edit or deletion of a relayed post: told to the agent as a note, never a silent rewrite."""
        original = self.store.outbox_item(post.post_id)
        if original is None:
            return False
        if post.delete_at_ms:
            change_id = f"delete:{post.post_id}"
            text = f"{original.author} deleted a message: \u201c{_clip(original.text)}\u201d"
        else:
            change_id = f"edit:{post.post_id}:{post.edit_at_ms}"
            text = f"{original.author} edited a message. Now: \u201c{post.text}\u201d (was: \u201c{_clip(original.text)}\u201d)"
        return self.store.enqueue_post(
            post_id=change_id,
            conv_key=original.conv_key,
            channel_id=original.channel_id,
            reply_root_id=original.reply_root_id,
            user_custom_id=original.user_custom_id,
            user_full_name=original.user_full_name,
            author=original.author,
            show_author=False,
            text=text,
            file_ids=[],
            posted_at=(post.delete_at_ms or post.edit_at_ms) / 1000.0,
            kind=ItemKind.NOTE,
            refetchable=True,
        )


def _clip(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"
