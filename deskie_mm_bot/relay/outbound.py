"""Deskie -> Mattermost: agents' answers posted once each, into the DM, channel or thread.

Answers arrive from the webhook or the reconciliation poll and are recorded in the ledger first;
posting happens from the ledger. Each post carries the Deskie message id in its props, so a post that
was in flight during a crash is found in the channel instead of being posted twice.

An answer's posts are fixed before the first one is made (its text split at Mattermost's limit, the
agent's name first, its files five to a post), so a restart goes on where it stopped. A file is
brought across just before its post is made: after a crash it is brought again, and the copy that was
never attached stays unattached. A file that cannot be brought is named in the post, and the agent
is told in a note on the case.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from .. import errors
from ..markup.formatting import MM_LIMIT, split_message
from ..model import ConvKey, ItemKind, ReplyState, Speaker
from ..model import attachment_name as file_name
from ..retry import backoff_delay
from ..store import Conversation, Reply, Store
from .loops import PerWorkspace

log = logging.getLogger(__name__)

PROP_MESSAGE = "deskie_message_id"
PROP_PART = "deskie_part"
FILES_PER_POST = 5  # Mattermost's limit of file_ids on one post
ROOM_FOR_FILE_LINES = 2000  # a text part leaves this much room for naming files that did not come


class Poster(Protocol):
    @property
    def bot_id(self) -> str: ...

    async def create_post(
        self, channel_id: str, message: str, *, root_id: str, props: dict[str, Any], pending_post_id: str,
        file_ids: list[str] | None = None,
    ) -> dict[str, Any]: ...

    async def recent_bot_posts(self, channel_id: str, since_ms: int) -> list[dict[str, Any]]: ...

    async def bring_file(self, channel_id: str, attachment: dict[str, Any]) -> str:
        """Fetch an answer's file and upload it to the channel: its Mattermost file id.
        Raises FileNotBrought when it can never come; any other error is transient."""
        ...


class AgentNames(Protocol):
    async def name_of_answer(self, staff_id: int | None, case_id: int, message_id: int | None) -> str:
        """The agent's full name, or "" when it cannot be had at once; never raises."""
        ...


# The Chat port's permanent failures, under the names the relay has always used.
PermanentPostError = errors.PostRefused
FileNotBrought = errors.FileNotBrought


def plan_posts(body: str, n_files: int) -> list[tuple[str, range]]:
    """An answer's posts: its text split at the limit, the first five files on the first post, the
    rest five to a post after the text, in order."""
    limit = MM_LIMIT - ROOM_FOR_FILE_LINES if n_files else MM_LIMIT
    parts = split_message(body, limit) if body else []
    chunks = [range(i, min(i + FILES_PER_POST, n_files)) for i in range(0, n_files, FILES_PER_POST)]
    posts = [(part, chunks[0] if i == 0 and chunks else range(0)) for i, part in enumerate(parts)]
    posts.extend(("", chunk) for chunk in chunks[1 if parts else 0:])
    return posts


_ORDERED_ITEM = re.compile(r"^\d{1,9}[.)](\s|$)")
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\*_`~[]<>#|"})


def with_agent_name(name: str, body: str) -> str:
    """The answer's text under the agent's name: on the same line, or above a block (a list, a quote,
    code) so that the block still renders."""
    if not name:
        return body
    label = name.translate(_MD_SPECIAL) + ":"
    first = body.lstrip("\n").split("\n", 1)[0].lstrip()
    if not body.strip():
        return label
    if first[:1] in ("-", "*", "+", ">", "#", "|", "`", "~") or _ORDERED_ITEM.match(first) or body.startswith("    "):
        return f"{label}\n\n{body}"
    return f"{label} {body}"


class OutboundRelay:
    def __init__(
        self,
        store: Store,
        poster: Poster | Mapping[str, Poster],
        *,
        clock: Callable[[], float] = time.time,
        on_note: Callable[[], None] = lambda: None,
        names: AgentNames | None = None,
        after_drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        # One Mattermost per workspace ('' in the single `mattermost:` form): a chat's answers go to its own.
        self.posters: Mapping[str, Poster] = poster if isinstance(poster, Mapping) else {"": poster}
        self.clock = clock
        self.on_note = on_note
        self.names = names  # None: answers are posted without the agent's name
        self.after_drain = after_drain
        self._loops = PerWorkspace(list(self.posters))
        self.posted = 0
        self.failures = 0  # transient posting failures since start (a stop's drain watches it)
        self.flushing = False  # stopping: answers waiting for a retry are tried once more, now
        self._failed_in_flush: set[int | None] = set()

    def wake(self) -> None:
        self._loops.wake()

    async def run(self, stopping: asyncio.Event) -> None:
        await self._loops.run(stopping, self._drain_then_pause)

    async def _drain_then_pause(self, workspace: str) -> float:
        await self.drain(workspace)
        return 0.5

    async def drain(self, workspace: str | None = None) -> None:
        """Post every answer that is due (of one workspace, or of all); each chat's answers strictly in order."""
        try:
            while True:
                due = self.store.due_replies(float("inf") if self.flushing else self.clock())
                chats = [(reply, self._conversation_of(reply)) for reply in due]
                if workspace is not None:
                    chats = [(r, c) for r, c in chats if c is None or c.workspace == workspace]
                if self.flushing:
                    # A stop's drain tries each chat once: one whose Mattermost failed waits for the
                    # next start, however long the other chats keep this drain going.
                    chats = [(r, c) for r, c in chats if r.conversation_id not in self._failed_in_flush]
                if not chats:
                    return
                progressed = False
                for reply, conv in chats:
                    progressed |= await self._attempt(reply, conv)
                if not progressed:
                    return
        finally:
            if self.after_drain is not None:
                await self.after_drain()

    def _conversation_of(self, reply: Reply) -> Conversation | None:
        conv = self.store.conversation(reply.conversation_id) if reply.conversation_id else None
        return conv if conv is not None else self.store.conversation_by_case(reply.case_id)

    def _poster(self, conv: Conversation) -> Poster:
        poster = self.posters.get(conv.workspace)
        if poster is None:
            # Taken out of the config: kept (and retried) until the workspace is back, never posted elsewhere.
            raise LookupError(f"workspace '{conv.workspace}' is not configured")
        return poster

    async def _attempt(self, reply: Reply, conv: Conversation | None) -> bool:
        if conv is None:
            self.store.finish_reply(reply.id, ReplyState.DROPPED, "no conversation for the case")
            return True
        try:
            await self._deliver(reply, conv)
            return True
        except PermanentPostError as e:
            self.store.finish_reply(reply.id, ReplyState.DROPPED, str(e))
            self.store.record_error("mattermost", f"answer for case {reply.case_id} not posted: {e}")
            log.error("answer for case %s cannot be posted: %s", reply.case_id, e)
            self._tell_agent(reply, conv, str(e))
            return True
        except Exception as e:  # transient: keep it in the ledger, try later; the chat's next answers wait
            self.failures += 1
            delay = backoff_delay(reply.attempts, base=1.0, cap=60.0)
            if self.flushing:
                self._failed_in_flush.add(reply.conversation_id)
                delay = 0.0  # stopping: the next start tries it at once, not after this stop's backoff
            self.store.retry_reply_later(reply.id, delay, f"{type(e).__name__}: {e}")
            self.store.record_error("mattermost", f"posting an answer failed: {type(e).__name__}: {e}")
            log.warning("posting answer for case %s failed (%s); retry in %.1f s", reply.case_id, e, delay)
            return False

    def _tell_agent(self, reply: Reply, conv: Conversation, reason: str) -> None:
        """An answer Mattermost will never take is not dropped silently: the agent gets a note."""
        what = reply.body or ", ".join(file_name(a) for a in reply.attachments)
        clip = what if len(what) <= 300 else what[:299] + "\u2026"
        self._note(reply, conv, f"undeliverable:{reply.id}",
                   f"This answer could not be posted in Mattermost ({reason}); the customer has not seen it: "
                   f"\u201c{clip}\u201d")

    def _note(self, reply: Reply, conv: Conversation, note_id: str, text: str) -> None:
        """A note to the agent on the case; `note_id` makes it once only, however often it is said."""
        self.store.enqueue_post(
            post_id=note_id,
            conv_key=conv.conv_key,
            channel_id=conv.channel_id,
            reply_root_id=conv.reply_root_id,
            user_custom_id=conv.user_custom_id,
            user_full_name=conv.user_full_name,
            author="deskie-mm-bot",
            show_author=False,
            text=text,
            file_ids=[],
            posted_at=self.clock(),
            kind=ItemKind.NOTE,
        )
        self.on_note()

    async def _agent_name(self, reply: Reply) -> str:
        """The name the answer is posted under, chosen once before its first post."""
        if reply.agent_name is not None:
            return reply.agent_name
        if reply.state == ReplyState.POSTING:
            return ""  # begun before names were kept: its parts must stay as they were
        name = ""
        if self.names is not None:
            name = await self.names.name_of_answer(reply.staff_id, reply.case_id, reply.message_id)
        self.store.set_reply_agent_name(reply.id, name)
        return name

    async def _deliver(self, reply: Reply, conv: Conversation) -> None:
        poster = self._poster(conv)
        name = await self._agent_name(reply)
        posts = plan_posts(with_agent_name(name, reply.body), len(reply.attachments))
        done = reply.parts_posted
        key = str(reply.message_id) if reply.message_id is not None else f"r{reply.id}"
        if reply.state == ReplyState.POSTING:
            # We may have crashed between posting and recording: look before posting again.
            since = int(reply.received_at * 1000) - 60_000
            # The id may have been learnt since the post was made (a webhook without one): either key.
            keys = {key, f"r{reply.id}"}
            for post in await poster.recent_bot_posts(conv.channel_id, since):
                props = post.get("props") or {}
                if str(props.get(PROP_MESSAGE)) in keys and int(props.get(PROP_PART, 0)) >= done:
                    self.store.record_reply_part(reply.id, str(post["id"]))
                    done += 1
            first = (self.store.reply(reply.id) or reply).post_ids[:1]
            if ConvKey.is_outgoing(conv.conv_key) and first and first[0]:
                # The thread's first post was made before the crash, and the chat not yet moved into it.
                self.store.rekey_conversation(conv.id, ConvKey.thread(first[0], conv.workspace), first[0])
                conv = self.store.conversation(conv.id) or conv
        else:
            self.store.mark_reply_posting(reply.id)
        root_id = conv.reply_root_id
        for index in range(done, len(posts)):
            text, chunk = posts[index]
            file_ids, missing = await self._bring_files(poster, conv, [reply.attachments[i] for i in chunk])
            if missing:
                lines = "\n".join(f"\U0001f4ce {n} could not be attached ({why})" for n, why in missing)
                text = f"{text}\n\n{lines}" if text else lines
                # Said before the post is made: a crash right after it must not lose the note.
                self._note(reply, conv, f"unattached:{reply.id}:{index}",
                           "These files of your answer did not reach the customer in Mattermost: "
                           + "; ".join(f"{n} ({why})" for n, why in missing))
            post = await poster.create_post(
                conv.channel_id,
                text,
                root_id=root_id,
                props={PROP_MESSAGE: key, PROP_PART: index, "deskie_case_id": str(reply.case_id)},
                pending_post_id=f"{poster.bot_id}:deskie{key}p{index}",
                file_ids=file_ids or None,
            )
            with self.store.lazy_commits():  # still `posting`: after a power cut the channel is looked at first
                self.store.record_reply_part(reply.id, str(post.get("id", "")))
            if ConvKey.is_outgoing(conv.conv_key) and post.get("id"):
                # An agent-started chat in thread mode: its first post is the thread the chat lives in.
                root_id = str(post["id"])
                self.store.rekey_conversation(conv.id, ConvKey.thread(root_id, conv.workspace), root_id)
                conv = self.store.conversation(conv.id) or conv
        with self.store.lazy_commits():
            self.store.finish_reply(reply.id)
            self.store.touch_conversation(conv.id, Speaker.AGENT, reply.message_id or 0)
        # The chat's first answer: its first customer post gets :eyes: (asked for once only).
        self.store.want_reaction(conv.id, "eyes")
        self.posted += 1
        log.info("posted agent answer %s of case %s to %s", key, reply.case_id, conv.channel_id)

    async def _bring_files(
        self, poster: Poster, conv: Conversation, attachments: list[dict[str, Any]]
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Upload a post's files: their ids, and (name, why) of those that can never come."""
        ids: list[str] = []
        missing: list[tuple[str, str]] = []
        for att in attachments:
            try:
                ids.append(await poster.bring_file(conv.channel_id, att))
            except FileNotBrought as e:
                name = file_name(att)
                log.warning("file %s of an answer cannot be brought to Mattermost: %s", name, e)
                missing.append((name if len(name) <= 120 else name[:119] + "\u2026", str(e)))
        return ids, missing
