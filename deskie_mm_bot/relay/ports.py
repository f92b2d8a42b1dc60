"""The core's view of the helpdesk: model types in, model types out, nothing of Deskie's protocol.

`deskie/helpdesk.py` implements it (and owns the thread pool, the search syntax, the time formats,
the one-second edge rule and the budget's units); tests pass `tests/fakes.FakeHelpdesk`.
"""

from __future__ import annotations

from typing import Protocol

from ..model import AgentAnswer, CaseState, CaseStatus, CaseSummary, ChangedCases, Priority


class Helpdesk(Protocol):
    async def case_state(self, case_id: int, *, priority: Priority) -> CaseState:
        """The case's status now; GONE when the helpdesk will not show it."""
        ...

    async def set_status(self, case_id: int, status: CaseStatus, *, priority: Priority) -> CaseState:
        """Set the case's status; the state after the write (GONE when the case no longer exists)."""
        ...

    async def changed_cases(self, cursor: str | None) -> ChangedCases:
        """The bot's channel's cases changed since `cursor` (None: the most recent changes)."""
        ...

    async def answers(self, case_id: int) -> list[AgentAnswer]:
        """The case's agent answers (no notes), oldest first; raises errors.Gone when the case is
        not shown any more, errors.Rejected when this one read is refused."""
        ...

    def nothing_newer_than_own_write(self, case: CaseSummary, own_updated_at: str | None) -> bool:
        """Whether the listed case shows nothing newer than the bot's own last write (stamped
        `own_updated_at`): then it need not be read now, but once later, as someone else may have
        written in that same second."""
        ...
