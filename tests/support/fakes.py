"""Fakes the kinds of tests share, so each test module does not write its own: one clock, the two ports
(`FakeChat` for one workspace's Mattermost, `FakeHelpdesk` for Deskie) and `FakeEdge`, one workspace as
the core sees it. Each is typed to pass where the core's protocol is expected, without a cast.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deskie_mm_bot import errors
from deskie_mm_bot.model import (
    AgentAnswer,
    Budget,
    CaseMessage,
    CaseRef,
    CaseState,
    CaseStatus,
    CaseSummary,
    ChangedCases,
    Customer,
    Priority,
    WrittenMessage,
)
from deskie_mm_bot.model import attachment_name as file_name

if TYPE_CHECKING:
    from deskie_mm_bot.deskie.ratebudget import RateBudget


class FakeClock:
    """Time that moves only when the test moves it (set `now`, or `advance`).

    Code waiting on a RateBudget sleeps on the budget's condition with a real timeout; given the budget,
    `advance` wakes those waiters so they re-read the clock at once instead of after their timeout.
    `FakeClock.passing()` is time that also passes by itself, from now: the in-process bot waits on
    real timers, and only jumps (an idle chat's ten minutes) are the test's.
    """

    def __init__(self, now: float = 1000.0, budget: RateBudget | None = None) -> None:
        self.now = now
        self.budget = budget
        self._passing_since: float | None = None  # monotonic start, when time passes by itself

    @classmethod
    def passing(cls) -> FakeClock:
        clock = cls(time.time())
        clock._passing_since = time.monotonic()
        return clock

    def __call__(self) -> float:
        if self._passing_since is None:
            return self.now
        return self.now + (time.monotonic() - self._passing_since)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.budget is not None:
            with self.budget._cond:
                self.budget._cond.notify_all()


class FakeHelpdesk:
    """A `Helpdesk` kept in memory: cases' statuses, their answers, and the listing `changed_cases` returns.

    `during_set_status(case_id)` runs while a status write is "on its way" (before it returns);
    `gone` cases answer GONE / raise errors.Gone; `refused` cases raise errors.Rejected.
    """

    def __init__(self) -> None:
        self.statuses: dict[int, CaseStatus] = {}
        self.answers_of: dict[int, list[AgentAnswer]] = {}
        self.listing: list[CaseSummary] = []
        self.next_cursor: str | None = None
        self.gone: set[int] = set()
        self.refused: set[int] = set()
        self.status_writes: list[tuple[int, CaseStatus]] = []
        self.cursors_asked: list[str | None] = []
        self.during_set_status: Callable[[int], None] | None = None
        self.budget = Budget(ok_now=True, scarce=False, wait_s=0.0)
        self.holds: list[float] = []
        self.cases: list[CaseSummary] = []
        self.written: list[tuple[int, str]] = []  # (case id, content) of every case, message and note
        self.messages_of: dict[int, list[CaseMessage]] = {}
        self.customers: dict[int, str] = {}  # Deskie user id -> user_custom_id (cases agents started)
        self.groups: dict[int, str | None] = {}  # case id -> the group it was opened in (None: the default)
        self.customer_of_case: dict[int, str] = {}  # case id -> the user_custom_id it was opened for
        self.files_of: dict[int, list[str]] = {}  # case id -> names of the files its first message carried

    async def case_ref(self, case_id: int) -> CaseRef:
        if case_id in self.refused or case_id in self.gone:
            raise errors.Rejected(f"case {case_id} refused")
        return CaseRef(case_id, f"N{case_id}", case_id, None)

    async def customer_of(self, user_id: int) -> str:
        return self.customers.get(user_id, "")

    async def open_case(
        self, *, user_custom_id: str, user_full_name: str, subject: str, content: str,
        files: list[tuple[str, bytes, str]] | None, content_html: str, group: str | None = None,
    ) -> CaseRef:
        case_id = 100 + len(self.cases)
        self.cases.append(CaseSummary(case_id, CaseStatus.OPEN, user_id=case_id, subject=subject))
        self.groups[case_id] = group
        self.customer_of_case[case_id] = user_custom_id
        self.files_of[case_id] = [name for name, _, _ in files or []]
        self.written.append((case_id, content))
        self.messages_of[case_id] = [CaseMessage(1000 + len(self.written), note=False, from_staff=False, content=content)]
        return CaseRef(case_id, str(case_id), case_id)

    async def add_message(
        self, case_id: int, user_id: int, content: str, files: list[tuple[str, bytes, str]] | None, *,
        content_html: str,
    ) -> WrittenMessage:
        return self._write(case_id, content, note=False)

    async def add_note(self, case_id: int, content: str) -> WrittenMessage:
        return self._write(case_id, content, note=True)

    def _write(self, case_id: int, content: str, *, note: bool) -> WrittenMessage:
        if case_id in self.gone:
            raise errors.Gone(f"case {case_id} not found")
        self.written.append((case_id, content))
        mid = 1000 + len(self.written)
        self.messages_of.setdefault(case_id, []).append(CaseMessage(mid, note=note, from_staff=note, content=content))
        return WrittenMessage(mid)

    async def recent_cases_of(self, user_custom_id: str) -> list[CaseSummary]:
        return list(reversed(self.cases))

    async def case_is_of(self, case: CaseSummary, user_custom_id: str) -> bool:
        return True

    async def messages(self, case_id: int, *, oldest_first: bool, limit: int) -> list[CaseMessage]:
        msgs = list(self.messages_of.get(case_id, []))
        return (msgs if oldest_first else list(reversed(msgs)))[:limit]

    def write_budget(self) -> Budget:
        return self.budget

    def hold_for_customers(self, seconds: float) -> None:
        self.holds.append(seconds)

    async def case_state(self, case_id: int, *, priority: Priority) -> CaseState:
        if case_id in self.gone:
            return CaseState(CaseStatus.GONE)
        return CaseState(self.statuses.get(case_id, CaseStatus.OPEN), "Wed, 25 Nov 2026 22:00:00 +0300")

    async def set_status(self, case_id: int, status: CaseStatus, *, priority: Priority) -> CaseState:
        if case_id in self.gone:
            return CaseState(CaseStatus.GONE)
        self.status_writes.append((case_id, status))
        if self.during_set_status is not None:
            self.during_set_status(case_id)
        self.statuses[case_id] = status
        return CaseState(status, "Wed, 25 Nov 2026 22:00:01 +0300")

    async def changed_cases(self, cursor: str | None) -> ChangedCases:
        self.cursors_asked.append(cursor)
        return ChangedCases(list(self.listing), self.next_cursor)

    async def answers(self, case_id: int) -> list[AgentAnswer]:
        if case_id in self.gone:
            raise errors.Gone(f"case {case_id} not found")
        if case_id in self.refused:
            raise errors.Rejected(f"case {case_id} refused")
        return list(self.answers_of.get(case_id, []))

    def nothing_newer_than_own_write(self, case: CaseSummary, own_updated_at: str | None) -> bool:
        return bool(case.updated_at) and case.updated_at == own_updated_at and not case.more_than_a_message


class FakeChat:
    """A `Chat` (one workspace's Mattermost) kept in memory: posts by channel, uploaded files, reactions.

    Like Mattermost, a post made again with the same `pending_post_id` is the same post (a retried
    request does not post twice). Switches: `down` makes every call fail as a server that cannot be
    reached does (transient: the core retries); `gate`, while not set, holds every call as a server
    that hangs does; `refused_channels` refuse posts for good (the bot left);
    `unbringable` names files that can never come (name -> why); `refuse_reactions` refuses them for good.
    """

    def __init__(self, bot_id: str = "bot", clock: Callable[[], float] = time.time) -> None:
        self.bot_id = bot_id
        self.clock = clock
        self.posts: dict[str, list[dict[str, Any]]] = {}  # channel id -> its posts, oldest first
        self.files: dict[str, tuple[str, str]] = {}  # Mattermost file id -> (channel id, file name)
        self.reactions: list[tuple[str, str]] = []  # (post id, emoji name), in the order made
        self.down = False
        self.gate: asyncio.Event | None = None
        self.refused_channels: set[str] = set()
        self.unbringable: dict[str, str] = {}
        self.refuse_reactions = False
        self.calls = 0  # calls that failed because the chat was down count too
        self._by_pending: dict[str, dict[str, Any]] = {}

    async def _call(self) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise errors.Unavailable("Mattermost unreachable (FakeChat.down)")

    def already_posted(self, channel_id: str, post_id: str, *, root_id: str = "", message: str = "",
                       props: dict[str, Any] | None = None) -> dict[str, Any]:
        """A bot post the channel has before the test starts (one made before a crash)."""
        post = {"id": post_id, "channel_id": channel_id, "root_id": root_id, "message": message,
                "props": dict(props or {}), "user_id": self.bot_id, "create_at": int(self.clock() * 1000)}
        self.posts.setdefault(channel_id, []).append(post)
        return post

    def made(self) -> list[dict[str, Any]]:
        """Every post in every channel, channel by channel."""
        return [p for posts in self.posts.values() for p in posts]

    def texts(self, channel_id: str) -> list[str]:
        return [str(p["message"]) for p in self.posts.get(channel_id, [])]

    async def create_post(
        self, channel_id: str, message: str, *, root_id: str, props: dict[str, Any], pending_post_id: str,
        file_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        await self._call()
        if channel_id in self.refused_channels:
            raise errors.PostRefused(f"HTTP 403 (the bot is not in channel {channel_id})")
        if pending_post_id in self._by_pending:
            return dict(self._by_pending[pending_post_id])
        n = sum(len(posts) for posts in self.posts.values())
        post = {"id": f"{self.bot_id}-post{n}", "channel_id": channel_id, "root_id": root_id, "message": message,
                "props": dict(props), "user_id": self.bot_id, "file_ids": list(file_ids or []),
                "pending_post_id": pending_post_id, "create_at": int(self.clock() * 1000)}
        self.posts.setdefault(channel_id, []).append(post)
        self._by_pending[pending_post_id] = post
        return dict(post)

    async def recent_bot_posts(self, channel_id: str, since_ms: int) -> list[dict[str, Any]]:
        await self._call()
        return [dict(p) for p in self.posts.get(channel_id, [])
                if p["user_id"] == self.bot_id and int(p["create_at"]) >= since_ms]

    async def bring_file(self, channel_id: str, attachment: dict[str, Any]) -> str:
        await self._call()
        name = file_name(attachment)
        if name in self.unbringable:
            raise errors.FileNotBrought(self.unbringable[name])
        file_id = f"{self.bot_id}-file{len(self.files)}"
        self.files[file_id] = (channel_id, name)
        return file_id

    async def react(self, post_id: str, emoji_name: str) -> None:
        await self._call()
        if self.refuse_reactions:
            raise errors.ReactionRefused("HTTP 403")
        if (post_id, emoji_name) not in self.reactions:  # Mattermost saves a reaction as an upsert
            self.reactions.append((post_id, emoji_name))


class FakeEdge:
    """One workspace as the core sees it (an `Edge`): its name, its `FakeChat`, customers' files, the
    routes of its channels and the places of its customers.

    `places` is keyed by the customer's Mattermost id (a user's or a channel's); a customer of another
    workspace has no place here, whatever its id. `asked_places` records every customer asked about.
    """

    def __init__(self, name: str, chat: FakeChat | None = None, *, first_start_ms: int = 0) -> None:
        self.name = name
        self.chat = chat if chat is not None else FakeChat(bot_id=f"{name or 'single'}-bot")
        self.customer_files: dict[str, tuple[dict[str, Any], bytes]] = {}  # file id -> (info, bytes)
        self.routes: dict[str, str] = {}  # channel id -> Deskie group
        self.places: dict[str, tuple[str, str]] = {}  # customer's id -> (channel id, full name)
        self.asked_places: list[Customer] = []
        self.first_start_ms = first_start_ms

    async def fetch_file(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        if self.chat.down:
            raise errors.Unavailable("Mattermost unreachable (FakeChat.down)")
        if file_id not in self.customer_files:
            raise errors.FileUnavailable("HTTP 404")
        return self.customer_files[file_id]

    async def route_of(self, channel_id: str) -> str | None:
        return self.routes.get(channel_id)

    async def place_of(self, who: Customer) -> tuple[str, str] | None:
        self.asked_places.append(who)
        if self.chat.down:
            raise errors.Unavailable("Mattermost unreachable (FakeChat.down)")
        if who.workspace != self.name:
            return None
        return self.places.get(who.id)

    def floor(self) -> int:
        return self.first_start_ms
