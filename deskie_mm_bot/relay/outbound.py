"""Deskie -> Mattermost: agents' answers posted once each, into the DM, channel or thread.

Answers arrive from the webhook or the reconciliation poll and are recorded in the ledger first;
posting happens from the ledger. Each post carries the Deskie message id in its props, so a post that
was in flight during a crash is found in the channel instead of being posted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..deskie.formatting import attachment_lines, message_body, split_message
from ..deskie.webhook import WebhookEvent
from ..retry import backoff_delay
from ..store import Conversation, Reply, Store

log = logging.getLogger(__name__)

PROP_MESSAGE = "deskie_message_id"
PROP_PART = "deskie_part"
OUTGOING_THREAD = "out:"  # key of an agent-started thread-mode chat until its first post exists


class Poster(Protocol):
    bot_id: str

    async def create_post(
        self, channel_id: str, message: str, *, root_id: str, props: dict[str, Any], pending_post_id: str
    ) -> dict[str, Any]: ...

    async def recent_bot_posts(self, channel_id: str, since_ms: int) -> list[dict[str, Any]]: ...


class PermanentPostError(Exception):
    """Mattermost will never take this post (the bot left the channel, the channel is gone)."""


class WebhookRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def reply_text(content: str | None, content_html: str | None, attachments: list[dict[str, Any]]) -> str:
    body = message_body(content, content_html)
    extra = attachment_lines(attachments)
    return "\n\n".join(p for p in (body, extra) if p)


class OutboundRelay:
    def __init__(
        self,
        store: Store,
        poster: Poster,
        *,
        clock: Callable[[], float] = time.time,
        open_outgoing: Callable[[WebhookEvent], Any] | None = None,
        on_note: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.poster = poster
        self.clock = clock
        self.open_outgoing = open_outgoing
        self.on_note = on_note
        self._wake = asyncio.Event()
        self.posted = 0

    def wake(self) -> None:
        self._wake.set()

    async def accept_webhook(self, event: WebhookEvent) -> str:
        """Record an answer from the webhook. Returns what was done; raises WebhookRefused for 4xx."""
        if event.type and event.type != "message_new":
            return "ignored: event type"
        if event.note:
            return "ignored: internal note"
        conv = self.store.conversation_by_case(event.case_id)
        if conv is None:
            if self.open_outgoing is None:
                raise WebhookRefused(404, "unknown case")
            conv = await self.open_outgoing(event)
            if conv is None:
                raise WebhookRefused(404, "unknown case")
        if event.custom_user_id and event.custom_user_id != conv.user_custom_id:
            raise WebhookRefused(403, "user does not match the case")
        if conv.state == "closed" and self.store.current_conversation(conv.conv_key) is None:
            # The agent reopened the case by answering: the customer's reply belongs to it again.
            self.store.set_conversation_state(conv.id, "active")
        text = reply_text(event.content, event.content_html, event.attachments)
        if not text:
            return "ignored: empty"
        with self.store.lazy_commits():  # reconciliation finds an answer a power cut took
            fresh = self.store.add_reply(
                message_id=event.message_id,
                case_id=event.case_id,
                conversation_id=conv.id,
                body=text,
                attachments=event.attachments,
                source="webhook",
            )
        if fresh:
            self.wake()
            return "recorded"
        return "duplicate"

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            self._wake.clear()
            await self.drain()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)

    async def drain(self) -> None:
        """Post every answer that is due; each chat's answers strictly in order."""
        while True:
            due = self.store.due_replies(self.clock())
            if not due:
                return
            progressed = False
            for reply in due:
                progressed |= await self._attempt(reply)
            if not progressed:
                return

    async def _attempt(self, reply: Reply) -> bool:
        conv = self.store.conversation(reply.conversation_id) if reply.conversation_id else None
        if conv is None:
            conv = self.store.conversation_by_case(reply.case_id)
        if conv is None:
            self.store.finish_reply(reply.id, "dropped", "no conversation for the case")
            return True
        try:
            await self._deliver(reply, conv)
            return True
        except PermanentPostError as e:
            self.store.finish_reply(reply.id, "dropped", str(e))
            self.store.record_error("mattermost", f"answer for case {reply.case_id} not posted: {e}")
            log.error("answer for case %s cannot be posted: %s", reply.case_id, e)
            self._tell_agent(reply, conv, str(e))
            return True
        except Exception as e:  # transient: keep it in the ledger, try later; the chat's next answers wait
            delay = backoff_delay(reply.attempts, base=1.0, cap=60.0)
            self.store.retry_reply_later(reply.id, delay, f"{type(e).__name__}: {e}")
            self.store.record_error("mattermost", f"posting an answer failed: {type(e).__name__}: {e}")
            log.warning("posting answer for case %s failed (%s); retry in %.1f s", reply.case_id, e, delay)
            return False

    def _tell_agent(self, reply: Reply, conv: Conversation, reason: str) -> None:
        """An answer Mattermost will never take is not dropped silently: the agent gets a note."""
        clip = reply.body if len(reply.body) <= 300 else reply.body[:299] + "\u2026"
        self.store.enqueue_post(
            post_id=f"undeliverable:{reply.id}",
            conv_key=conv.conv_key,
            channel_id=conv.channel_id,
            reply_root_id=conv.reply_root_id,
            user_custom_id=conv.user_custom_id,
            user_full_name=conv.user_full_name,
            author="deskie-mm-bot",
            show_author=False,
            text=f"This answer could not be posted in Mattermost ({reason}); the customer has not seen it: "
                 f"\u201c{clip}\u201d",
            file_ids=[],
            posted_at=self.clock(),
            kind="note",
        )
        self.on_note()

    async def _deliver(self, reply: Reply, conv: Conversation) -> None:
        parts = split_message(reply.body)
        done = reply.parts_posted
        key = str(reply.message_id) if reply.message_id is not None else f"r{reply.id}"
        if reply.state == "posting":
            # We may have crashed between posting and recording: look before posting again.
            since = int(reply.received_at * 1000) - 60_000
            # The id may have been learnt since the post was made (a webhook without one): either key.
            keys = {key, f"r{reply.id}"}
            for post in await self.poster.recent_bot_posts(conv.channel_id, since):
                props = post.get("props") or {}
                if str(props.get(PROP_MESSAGE)) in keys and int(props.get(PROP_PART, 0)) >= done:
                    self.store.record_reply_part(reply.id, str(post["id"]))
                    done += 1
            first = (self.store.reply(reply.id) or reply).post_ids[:1]
            if conv.conv_key.startswith(OUTGOING_THREAD) and first and first[0]:
                # The thread's first post was made before the crash, and the chat not yet moved into it.
                self.store.rekey_conversation(conv.id, f"th:{first[0]}", first[0])
                conv = self.store.conversation(conv.id) or conv
        else:
            self.store.mark_reply_posting(reply.id)
        root_id = conv.reply_root_id
        for index in range(done, len(parts)):
            post = await self.poster.create_post(
                conv.channel_id,
                parts[index],
                root_id=root_id,
                props={PROP_MESSAGE: key, PROP_PART: index, "deskie_case_id": str(reply.case_id)},
                pending_post_id=f"{self.poster.bot_id}:deskie{key}p{index}",
            )
            with self.store.lazy_commits():  # still `posting`: after a power cut the channel is looked at first
                self.store.record_reply_part(reply.id, str(post.get("id", "")))
            if conv.conv_key.startswith(OUTGOING_THREAD) and post.get("id"):
                # An agent-started chat in thread mode: its first post is the thread the chat lives in.
                root_id = str(post["id"])
                self.store.rekey_conversation(conv.id, f"th:{root_id}", root_id)
                conv = self.store.conversation(conv.id) or conv
        with self.store.lazy_commits():
            self.store.finish_reply(reply.id)
            self.store.touch_conversation(conv.id, "agent", reply.message_id or 0)
        self.posted += 1
        log.info("posted agent answer %s of case %s to %s", key, reply.case_id, conv.channel_id)
