"""The Deskie helpdesk's listing of changed cases on an account that takes `from_updated_time` in another
format than the first tried, and its reading of a case's answers."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest

from deskie_mm_bot import errors
from deskie_mm_bot.deskie.client import DeskieClient, DeskieRejected, Page
from deskie_mm_bot.deskie.helpdesk import FORMAT_CURSOR, DeskieHelpdesk, filter_value
from deskie_mm_bot.model import CaseStatus
from deskie_mm_bot.store import Store


class UnixOnlyDeskie:
    """Lists cases only when the time filter is a unix timestamp, like some accounts may."""

    def __init__(self, accept: str = "unix") -> None:
        self.accept = accept
        self.queries: list[str] = []

    def iter_cases(self, priority: Any = None, **params: Any) -> list[dict[str, Any]]:
        value = str(params["from_updated_time"])
        self.queries.append(value)
        ok = value.isdigit() if self.accept == "unix" else False
        if not ok:
            raise DeskieRejected(400, "wrong_params", "/api/cases.json")
        return [{"case_id": 1, "updated_at": "Wed, 25 Nov 2026 22:00:10 +0300", "status": "open"}]

    def list_cases(self, priority: Any = None, **params: Any) -> Page:
        self.queries.append("latest")
        return Page([], 0)

    def list_messages(self, case_id: int, **k: Any) -> Page:
        if case_id == 404:
            raise DeskieRejected(404, "case_not_found", f"/api/cases/{case_id}/messages.json")
        return Page([{"message_id": 51, "staff_id": 7, "content": "later", "note": False},
                     {"message_id": 50, "staff_id": 7, "content": "first", "note": False},
                     {"message_id": 52, "staff_id": 0, "user_id": 3, "content": "customer", "note": False},
                     {"message_id": 53, "staff_id": 7, "content": "internal", "note": True}], 4)


def _helpdesk(store: Store, client: UnixOnlyDeskie, pool: Executor) -> DeskieHelpdesk:
    # A stand-in for the HTTP client: the helpdesk's rules are what is tested here.
    return DeskieHelpdesk(cast(DeskieClient, client), "cch12", pool,
                          get_setting=store.get_cursor, set_setting=store.set_cursor)


def test_cursor_value_is_written_in_the_accounts_offset() -> None:
    assert filter_value("2026-11-25T22:00:05+03:00", "%Y-%m-%d %H:%M:%S") == "2026-11-25 22:00:05"
    assert filter_value("2026-11-25T22:00:05+03:00", "unix") == "1795633205"
    assert filter_value("2026-11-25T22:00:05+03:00", "%d.%m.%Y") == "25.11.2026"


def test_the_first_accepted_format_is_found_and_remembered(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    deskie = UnixOnlyDeskie()
    with ThreadPoolExecutor(1) as pool:
        helpdesk = _helpdesk(store, deskie, pool)
        changed = asyncio.run(helpdesk.changed_cases("2026-11-25T22:00:05+03:00"))
        assert deskie.queries == ["2026-11-25 22:00:05", "1795633205"]
        assert store.get_cursor(FORMAT_CURSOR) == "unix"
        assert [c.case_id for c in changed.cases] == [1] and changed.cases[0].status == CaseStatus.OPEN
        assert changed.cases[0].at_edge  # the newest second of the listing
        assert changed.cursor == "2026-11-25T22:00:05+03:00"  # the newest change less the overlap
        deskie.queries.clear()
        asyncio.run(helpdesk.changed_cases("2026-11-25T22:00:05+03:00"))
        assert len(deskie.queries) == 1 and deskie.queries[0].isdigit()  # straight to the one that works


def test_an_account_refusing_every_format_still_gets_polled_for_the_latest_changes(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    deskie = UnixOnlyDeskie(accept="none")
    with ThreadPoolExecutor(1) as pool:
        changed = asyncio.run(_helpdesk(store, deskie, pool).changed_cases("2026-11-25T22:00:05+03:00"))
    assert deskie.queries[-1] == "latest" and len(deskie.queries) == 4
    assert changed.cases == []


def test_answers_are_the_agents_non_note_messages_oldest_first_and_a_missing_case_is_gone(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    with ThreadPoolExecutor(1) as pool:
        helpdesk = _helpdesk(store, UnixOnlyDeskie(), pool)
        answers = asyncio.run(helpdesk.answers(9))
        assert [(a.message_id, a.text, a.staff_id) for a in answers] == [(50, "first", 7), (51, "later", 7)]
        with pytest.raises(errors.Gone):
            asyncio.run(helpdesk.answers(404))
