"""The core's view of the helpdesk: model types in, model types out, nothing of Deskie's protocol.

`deskie/helpdesk.py` implements it (and owns the thread pool, the search syntax, the time formats,
the one-second edge rule and the budget's units); tests pass `tests/support/fakes.FakeHelpdesk`.
"""

from __future__ import annotations

from typing import Protocol

from ..model import (
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

File = tuple[str, bytes, str]  # name, content, MIME type


class Helpdesk(Protocol):
    def write_budget(self) -> Budget:
        """Whether a customer's write may go now, whether the budget is short, and the wait."""
        ...

    def hold_for_customers(self, seconds: float) -> None:
        """Keep the budget's next room for customers' writes for `seconds` (a write that waits on
        purpose must not lose its turn to reconciliation)."""
        ...

    async def open_case(
        self, *, user_custom_id: str, user_full_name: str, subject: str, content: str,
        files: list[File] | None, content_html: str, group: str | None = None,
    ) -> CaseRef:
        """Open a case in the bot's channel for the customer, with its first message, in `group` (an id
        or exact title: a channel's route) or the default group; errors.ConfigError when the group
        does not exist."""
        ...

    async def add_message(
        self, case_id: int, user_id: int, content: str, files: list[File] | None, *, content_html: str
    ) -> WrittenMessage:
        """The customer's next message; raises errors.Gone when the case no longer exists."""
        ...

    async def add_note(self, case_id: int, content: str) -> WrittenMessage:
        """An internal note for the agent; raises errors.Gone when the case no longer exists."""
        ...

    async def case_ref(self, case_id: int) -> CaseRef:
        """A case an agent started (its number and customer); errors.Rejected when it cannot be read."""
        ...

    async def customer_of(self, user_id: int) -> str:
        """The `user_custom_id` of a helpdesk user ("" when it has none); errors.Rejected when unreadable."""
        ...

    async def recent_cases_of(self, user_custom_id: str) -> list[CaseSummary]:
        """The customer's latest cases in the bot's channel (merged ones too), newest first."""
        ...

    async def case_is_of(self, case: CaseSummary, user_custom_id: str) -> bool:
        """Whether a case found by search is this customer's (True when that cannot be checked)."""
        ...

    async def messages(self, case_id: int, *, oldest_first: bool, limit: int) -> list[CaseMessage]:
        """A case's messages and notes, for finding an interrupted write."""
        ...

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
