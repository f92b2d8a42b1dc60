"""Outbox -> Deskie: customers' posts become cases and messages, in order, once each.

Per conversation, pending posts go out as one API message (each line keeps its author and time).
Every write is recorded as an in-flight batch before it is sent; a batch found in flight (after a
crash, a timeout or a 5xx) is looked for in Deskie before it is sent again, since Deskie has no
idempotency key.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from .. import errors
from ..markup.markdown import markdown_to_html, text_to_html
from ..model import (
    BatchOp,
    CaseMessage,
    CaseRef,
    CaseStatus,
    ConvKey,
    ConvState,
    Customer,
    ItemKind,
    OutboxState,
    Priority,
    Speaker,
)
from ..retry import Backoff
from ..store import Batch, Conversation, OutboxItem, Store
from .loops import PerWorkspace
from .ports import Helpdesk

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_FILE = 25 * 1024 * 1024
MAX_MESSAGE_FILES = 50 * 1024 * 1024
HOLD_WHEN_SCARCE = 3.0  # seconds a burst may gather before it is sent, when budget is short
_TAGS = re.compile(r"<[^>]+>")

# (workspace, file id) -> (file info, bytes): the workspace is the customer's ('' in the single form).
FileFetcher = Callable[[str, str], Awaitable[tuple[dict[str, Any], bytes]]]


def take_turns(keys: list[str]) -> list[str]:
    """Chats with work waiting, oldest first within each workspace and the workspaces taking turns: a
    workspace with a backlog of chats does not hold another's customers behind it (one shared budget)."""
    queues: dict[str, list[str]] = {}
    for key in keys:
        queues.setdefault(ConvKey.workspace_of(key), []).append(key)
    if len(queues) < 2:
        return keys
    return [k for turn in itertools.zip_longest(*queues.values()) for k in turn if k is not None]


def _workspace_of(user_custom_id: str) -> str:
    who = Customer.parse(user_custom_id)
    return who.workspace if who is not None else ""


FileUnavailable = errors.FileUnavailable


def normalise(text: str) -> str:
    text = html.unescape(_TAGS.sub(" ", text or ""))
    return " ".join(text.split())


def subject_of(items: list[OutboxItem]) -> str:
    for item in items:
        for line in item.text.splitlines():
            if line.strip():
                s = line.strip()
                return s if len(s) <= 100 else s[:99] + "\u2026"
    return "Message from Mattermost"


def compose(items: list[OutboxItem]) -> str:
    """One API message from one or more posts; batches keep each line's author and time."""
    if len(items) == 1:
        it = items[0]
        return f"{it.author}: {it.text}" if it.show_author else it.text
    lines = []
    for it in items:
        stamp = datetime.fromtimestamp(it.posted_at, tz=timezone.utc).strftime("%H:%M:%S UTC")
        who = f"{it.author}: " if it.show_author else ""
        lines.append(f"[{stamp}] {who}{it.text}")
    return "\n".join(lines)


def compose_html(items: list[OutboxItem], problems: Sequence[str] = ()) -> str:
    """The same message as `compose`, with each post's Markdown rendered as the customer saw it."""
    parts = []
    for it in items:
        head = []
        if len(items) > 1:
            stamp = datetime.fromtimestamp(it.posted_at, tz=timezone.utc).strftime("%H:%M:%S UTC")
            head.append(f"[{stamp}]")
        if it.show_author:
            head.append(f"<strong>{text_to_html(it.author)}</strong>:")
        if head:
            parts.append(f"<p>{' '.join(head)}</p>")
        parts.append(markdown_to_html(it.text))
    parts.extend(f"<p>{text_to_html(p)}</p>" for p in problems)
    return "\n".join(p for p in parts if p)


class InboundRelay:
    def __init__(
        self,
        store: Store,
        helpdesk: Helpdesk,
        fetch_file: FileFetcher | None = None,
        *,
        clock: Callable[[], float] = time.time,
        route_of: Callable[[str, str], Awaitable[str | None]] | None = None,
        workspaces: Sequence[str] = ("",),
    ) -> None:
        self.store = store
        self.helpdesk = helpdesk
        self.fetch_file = fetch_file
        # (workspace, channel id) -> the Deskie group a chat started there goes to (routes, the
        # workspace's default_group); None: deskie.default_group.
        self.route_of = route_of
        self.clock = clock
        # One loop per workspace: a Mattermost that is slow to give a customer's file (or a channel's
        # route) holds back only its own chats; the shared budget still decides whose write goes first.
        self._loops = PerWorkspace(workspaces)
        self.workspaces = self._loops.workspaces
        self._retry_at: dict[str, float] = {}
        self._backoffs: dict[str, Backoff] = {}
        self.sent_batches = 0
        self.failures = 0  # postponed writes since start (a stop's drain watches it)
        self.flushing = False  # stopping: send what is queued now, no burst is held back

    def wake(self) -> None:
        self._loops.wake()

    async def run(self, stopping: asyncio.Event) -> None:
        await self._loops.run(stopping, self._drain_then_pause)

    async def _drain_then_pause(self, workspace: str) -> float:
        next_due = await self.drain(workspace)
        return 1.0 if next_due is None else max(0.05, min(1.0, next_due - self.clock()))

    def _loop_of(self, key: str) -> str:
        """The loop a chat's writes go through: its workspace's (an `out:` key, or a workspace no
        longer configured, goes through the first)."""
        workspace = ConvKey.workspace_of(key)
        return workspace if workspace in self.workspaces else self.workspaces[0]

    async def drain(self, workspace: str | None = None) -> float | None:
        """Work through every conversation with pending posts (of one workspace's loop, or all);
        returns when to look again."""
        next_due: float | None = None
        keys = take_turns(self.store.pending_conv_keys())
        if workspace is not None:
            keys = [k for k in keys if self._loop_of(k) == workspace]
        for key in keys:
            due = self._retry_at.get(key, 0.0)
            if due > self.clock() and not self.flushing:  # a stop tries each chat once more, now
                next_due = due if next_due is None else min(next_due, due)
                continue
            try:
                later = await self.process(key)
            except (errors.CredentialsRejected, errors.Stopping):
                raise  # the helpdesk refuses the bot (its edge sorts Mattermost's out), or the bot stops
            except errors.Unavailable as e:
                later = self._fail(key, str(e))
            except Exception as e:  # one chat's failure must not stop the others
                log.exception("relaying %s failed", key)
                later = self._fail(key, f"{type(e).__name__}: {e}")
            if later is not None:
                next_due = later if next_due is None else min(next_due, later)
        return next_due

    def _fail(self, key: str, error: str) -> float:
        backoff = self._backoffs.setdefault(key, Backoff(base=1.0, cap=30.0))
        due = self.clock() + backoff.next_delay()
        self._retry_at[key] = due
        self.failures += 1
        self.store.record_error("deskie", error)
        log.warning("Deskie write for %s postponed: %s", key, error)
        return due

    async def process(self, key: str) -> float | None:
        batch = self.store.inflight_batch(key)
        if batch is not None:
            if not await self._already_applied(batch):
                await self._send(batch, self.store.batch_items(batch.id))
            self._recovered(key)
        items = self.store.pending_items(key)
        if not items:
            return None
        budget = self.helpdesk.write_budget()
        if not self.flushing and budget.scarce and self._in_a_burst(key, items):
            # Short of budget: let a burst gather so it goes out in a few writes, not one write each.
            # A lone message is not held: only what follows it closely waits.
            oldest = self.store.oldest_pending_at(key) or self.clock()
            due = oldest + HOLD_WHEN_SCARCE
            if self.clock() < due:
                self.helpdesk.hold_for_customers(due - self.clock() + 1.0)
                return due
        if not budget.ok_now:
            # Waiting for budget happens here, before the batch is fixed, so posts arriving
            # meanwhile join it; the claim keeps reconciliation from taking the next window first.
            wait = min(1.0, max(0.1, budget.wait_s))
            self.helpdesk.hold_for_customers(wait + 1.0)
            return self.clock() + wait
        items = self.store.pending_items(key)
        run = [items[0]]
        for it in items[1:]:
            if it.kind != run[0].kind:
                break
            run.append(it)
        conv = await self._live_conversation(key)
        if run[0].kind == ItemKind.NOTE:
            if conv is None or conv.case_id is None:
                # The case a change refers to no longer exists: nothing to annotate.
                self.store.finish_batch(self.store.begin_batch(key, None, BatchOp.ADD_NOTE, "", [i.id for i in run], 0).id,
                                        state=OutboxState.SENT)
                return self.clock()
            op = BatchOp.ADD_NOTE
        else:
            op = BatchOp.ADD_MESSAGE if conv is not None else BatchOp.CREATE_CASE
        content = compose(run)
        batch = self.store.begin_batch(
            key, conv.id if conv else None, op, content, [i.id for i in run], conv.last_message_id if conv else 0
        )
        await self._send(batch, run)
        self._recovered(key)
        return self.clock() if self.store.pending_items(key) else None

    def _recovered(self, key: str) -> None:
        """A write for this chat went through: forget its retry state (one entry per chat would pile up)."""
        self._backoffs.pop(key, None)
        self._retry_at.pop(key, None)

    def _in_a_burst(self, key: str, items: list[OutboxItem]) -> bool:
        if len(items) > 1:
            return True
        conv = self.store.current_conversation(key)
        return conv is not None and conv.last_speaker == Speaker.CUSTOMER and (
            self.clock() - conv.last_activity_at < HOLD_WHEN_SCARCE
        )

    async def _live_conversation(self, key: str) -> Conversation | None:
        """The conversation posts should go to: an ended chat continues only while its case is open."""
        conv = self.store.current_conversation(key)
        if conv is None or conv.state != ConvState.ENDED or conv.case_id is None:
            return conv
        return None if await self._closed_in_deskie(conv) else conv

    async def _attachments(self, items: list[OutboxItem]) -> tuple[list[tuple[str, bytes, str]], list[str]]:
        files: list[tuple[str, bytes, str]] = []
        problems: list[str] = []
        total = 0
        for it in items:
            for fid in it.file_ids:
                if self.fetch_file is None:
                    problems.append(f"(attachment {fid} could not be sent)")
                    continue
                try:
                    info, blob = await self.fetch_file(_workspace_of(it.user_custom_id), fid)
                except FileUnavailable as e:
                    # Gone for good (deleted, no access): said in the message. Anything else is
                    # transient and fails the write, which is retried.
                    problems.append(f"(attachment {fid} could not be fetched from Mattermost: {e})")
                    continue
                name = str(info.get("name") or fid)
                size = len(blob)
                if size > MAX_FILE:
                    problems.append(f"(attachment {name} not sent: {size / 1e6:.1f} MB is over Deskie's 25 MB limit)")
                    continue
                if total + size > MAX_MESSAGE_FILES:
                    problems.append(f"(attachment {name} not sent: the message would exceed Deskie's 50 MB limit)")
                    continue
                total += size
                files.append((name, blob, str(info.get("mime_type") or "application/octet-stream")))
        return files, problems

    async def _send(self, batch: Batch, items: list[OutboxItem]) -> None:
        files, problems = await self._attachments(items) if batch.op != BatchOp.ADD_NOTE else ([], [])
        content = batch.content
        if problems:
            content = (content + "\n" + "\n".join(problems)).strip()
        if not content.strip() and not files:
            content = "(empty message)"
        content_html = compose_html(items, problems) or text_to_html(content)
        conv = self.store.conversation(batch.conversation_id) if batch.conversation_id else None
        try:
            if batch.op == BatchOp.CREATE_CASE:
                first = items[0]
                case = await self.helpdesk.open_case(
                    user_custom_id=first.user_custom_id,
                    user_full_name=first.user_full_name,
                    subject=subject_of(items),
                    content=content,
                    files=files or None,
                    content_html=content_html,
                    group=(await self.route_of(_workspace_of(first.user_custom_id), first.channel_id)
                           if self.route_of is not None else None),
                )
                self._adopt_case(batch, items[0], case)
                self.sent_batches += 1
                log.info("relayed %d post(s) of %s to Deskie (new case %s)", len(items), batch.conv_key,
                         case.case_id)
                return
            elif batch.op == BatchOp.ADD_MESSAGE:
                assert conv is not None and conv.case_id is not None
                msg = await self.helpdesk.add_message(
                    conv.case_id, await self._case_user(conv), content, files or None, content_html=content_html
                )
                with self.store.lazy_commits():  # the write is made: an in-flight batch is looked for first
                    self.store.touch_conversation(conv.id, Speaker.CUSTOMER, msg.message_id)
                    self.store.record_own_write(conv.id, msg.created_at)
                    self.store.finish_batch(batch.id)
                self.sent_batches += 1
                log.info("relayed %d post(s) of %s to Deskie (%s)", len(items), batch.conv_key, batch.op)
                return
            else:
                assert conv is not None and conv.case_id is not None
                note = await self.helpdesk.add_note(conv.case_id, content)
                # Without this, a later note with the same text would be matched to this one when verified.
                self.store.saw_message_id(conv.id, note.message_id)
                self.store.record_own_write(conv.id, note.created_at)
        except errors.Rejected as e:
            if batch.op in (BatchOp.ADD_MESSAGE, BatchOp.ADD_NOTE) and conv is not None and await self._case_gone(conv, e):
                if batch.op == BatchOp.ADD_NOTE:
                    self.store.finish_batch(batch.id, state=OutboxState.SENT)
                    return
                # The case was closed in Deskie: this message starts a new case.
                self.store.retarget_batch(batch.id, None, BatchOp.CREATE_CASE, 0)
                retargeted = self.store.inflight_batch(batch.conv_key)
                assert retargeted is not None
                await self._send(retargeted, items)
                return
            self.store.finish_batch(batch.id, state=OutboxState.FAILED)
            self.store.record_error("deskie", f"{batch.op} refused: {e}")
            log.error("Deskie refused %s for %s: %s", batch.op, batch.conv_key, e)
            return
        self.store.finish_batch(batch.id)
        self.sent_batches += 1
        log.info("relayed %d post(s) of %s to Deskie (%s)", len(items), batch.conv_key, batch.op)

    async def _case_user(self, conv: Conversation) -> int:
        """The case's Deskie user id, which follow-ups must carry; read from the case if the create
        answer did not give it."""
        if conv.deskie_user_id:
            return int(conv.deskie_user_id)
        assert conv.case_id is not None
        case = await self.helpdesk.case_state(conv.case_id, priority=Priority.CUSTOMER)
        if case.status == CaseStatus.GONE:
            raise errors.Gone(f"case {conv.case_id} not found")
        user_id = case.user_id
        if user_id:
            self.store.set_deskie_user_id(conv.id, user_id)
        return user_id

    def _adopt_case(self, batch: Batch, first: OutboxItem, case: CaseRef) -> None:
        if self.store.conversation_by_case(case.case_id) is not None:
            # Recorded meanwhile through another door (an answer's webhook): the batch is done.
            self.store.finish_batch(batch.id)
            return
        conv = self.store.create_conversation(
            conv_key=batch.conv_key,
            channel_id=first.channel_id,
            reply_root_id=first.reply_root_id,
            user_custom_id=first.user_custom_id,
            user_full_name=first.user_full_name,
            case_id=case.case_id,
            case_number=case.number,
            deskie_user_id=case.user_id,
            last_message_id=0,
            case_updated_at=None,
            finishes_batch=batch.id,
        )
        self.store.record_own_write(conv.id, case.updated_at)
        # Where the chat's status reactions go: its first post, or the thread's root in thread mode.
        self.store.note_first_post(conv.id, first.channel_id, first.reply_root_id or first.post_id)

    async def _case_gone(self, conv: Conversation, err: errors.Rejected) -> bool:
        if isinstance(err, errors.Gone):
            self.store.set_conversation_state(conv.id, ConvState.CLOSED)
            return True
        return await self._closed_in_deskie(conv)

    async def _closed_in_deskie(self, conv: Conversation) -> bool:
        """Ask Deskie whether the chat's case can still take messages; remember when it cannot."""
        assert conv.case_id is not None
        case = await self.helpdesk.case_state(conv.case_id, priority=Priority.CUSTOMER)
        closed = case.status == CaseStatus.CLOSED
        gone = closed or case.removed or case.status == CaseStatus.GONE
        if gone:
            self.store.set_conversation_state(conv.id, ConvState.CLOSED)
        if closed:  # seen at this write: the chat's first post gets its check mark
            self.store.want_reaction(conv.id, "closed_mark")
        return gone

    # ---- was an in-flight write applied? -----------------------------------------------------
    async def _already_applied(self, batch: Batch) -> bool:
        items = self.store.batch_items(batch.id)
        if not items:
            self.store.finish_batch(batch.id)
            return True
        if batch.op == BatchOp.CREATE_CASE:
            return await self._case_exists(batch, items)
        conv = self.store.conversation(batch.conversation_id) if batch.conversation_id else None
        if conv is None or conv.case_id is None:
            return False
        found = await self._message_exists(batch, conv)
        if found is not None:
            self.store.touch_conversation(conv.id, Speaker.CUSTOMER, found)
            self.store.finish_batch(batch.id)
            log.info("in-flight write for %s was already in Deskie; not sent again", batch.conv_key)
            return True
        return False

    async def _case_exists(self, batch: Batch, items: list[OutboxItem]) -> bool:
        first = items[0]
        candidates = await self.helpdesk.recent_cases_of(first.user_custom_id)
        known = self.store.known_case_ids([c.case_id for c in candidates if c.case_id])
        subject = normalise(subject_of(items))
        for case in candidates:
            cid = case.case_id
            if not cid or normalise(case.subject) != subject:
                continue
            if not await self.helpdesk.case_is_of(case, first.user_custom_id):
                continue
            if cid in known:
                # Known already: only this batch's own case may be, recorded through another door
                # (an agent's answer arrived before Deskie's answer to the create did).
                conv = self.store.conversation_by_case(cid)
                if conv is None or conv.conv_key != batch.conv_key or conv.created_at < batch.started_at:
                    continue
            msgs = await self.helpdesk.messages(cid, oldest_first=True, limit=1)
            if msgs and self._same_text(msgs[0], batch.content):
                if cid in known:
                    self.store.finish_batch(batch.id)
                else:
                    self._adopt_case(batch, first, case.ref())
                log.info("in-flight case for %s was already created (case %s); not sent again", batch.conv_key, cid)
                return True
        return False

    async def _message_exists(self, batch: Batch, conv: Conversation) -> int | None:
        assert conv.case_id is not None
        if batch.since_message_id:
            candidates = await self.helpdesk.messages(conv.case_id, oldest_first=False, limit=100)
        else:
            # Nothing sent after the case was opened: its first message is the case's own content,
            # which must not be mistaken for this one.
            candidates = (await self.helpdesk.messages(conv.case_id, oldest_first=True, limit=100))[1:]
        want_note = batch.op == BatchOp.ADD_NOTE
        for m in candidates:
            mid = m.message_id
            if mid <= batch.since_message_id:
                continue
            if m.note != want_note:
                continue
            if not want_note and m.from_staff:
                continue
            if self._same_text(m, batch.content):
                return mid
        return None

    @staticmethod
    def _same_text(message: CaseMessage, content: str) -> bool:
        want = normalise(content)
        got = normalise(message.content) or normalise(message.content_html)
        # Attachment problems may have been appended to what was sent.
        return got == want or got.startswith(want)
