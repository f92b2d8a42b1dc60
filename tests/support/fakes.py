"""Fakes the kinds of tests share, so each test module does not write its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

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
    Priority,
    WrittenMessage,
)

if TYPE_CHECKING:
    from deskie_mm_bot.deskie.ratebudget import RateBudget


class FakeClock:
    """Time that moves only when the test moves it (set `now`, or `advance`).

    Code waiting on a RateBudget sleeps on the budget's condition with a real timeout; given the budget,
    `advance` wakes those waiters so they re-read the clock at once instead of after their timeout.
    (The in-process bot needs time that also passes by itself: that clock is tests.support.inproc's.)
    """

    def __init__(self, now: float = 1000.0, budget: RateBudget | None = None) -> None:
        self.now = now
        self.budget = budget

    def __call__(self) -> float:
        return self.now

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
