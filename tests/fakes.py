"""Shared fakes of the core's ports (relay/ports.py), for tests that run the core without sockets."""

from __future__ import annotations

from collections.abc import Callable

from deskie_mm_bot import errors
from deskie_mm_bot.model import AgentAnswer, CaseState, CaseStatus, CaseSummary, ChangedCases, Priority


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
        self.own_write_seconds: set[str] = set()

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
