"""Reconciliation against an account that takes `from_updated_time` in another format than the first tried."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from deskie_mm_bot.deskie.client import DeskieRejected, Page
from deskie_mm_bot.relay.reconcile import CURSOR, FORMAT_CURSOR, Reconciler, filter_value
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

    def list_messages(self, *a: Any, **k: Any) -> Page:
        return Page([], 0)


def test_cursor_value_is_written_in_the_accounts_offset() -> None:
    assert filter_value("2026-11-25T22:00:05+03:00", "%Y-%m-%d %H:%M:%S") == "2026-11-25 22:00:05"
    assert filter_value("2026-11-25T22:00:05+03:00", "unix") == "1795633205"
    assert filter_value("2026-11-25T22:00:05+03:00", "%d.%m.%Y") == "25.11.2026"


def test_the_first_accepted_format_is_found_and_remembered(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.set_cursor(CURSOR, "2026-11-25T22:00:05+03:00")
    deskie = UnixOnlyDeskie()
    with ThreadPoolExecutor(1) as pool:
        rec = Reconciler(store, deskie, "cch12", pool)  # type: ignore[arg-type]
        asyncio.run(rec.poll())
        assert deskie.queries == ["2026-11-25 22:00:05", "1795633205"]
        assert store.get_cursor(FORMAT_CURSOR) == "unix"
        deskie.queries.clear()
        asyncio.run(rec.poll())
        assert len(deskie.queries) == 1 and deskie.queries[0].isdigit()  # straight to the one that works


def test_an_account_refusing_every_format_still_gets_polled_for_the_latest_changes(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.set_cursor(CURSOR, "2026-11-25T22:00:05+03:00")
    deskie = UnixOnlyDeskie(accept="none")
    with ThreadPoolExecutor(1) as pool:
        asyncio.run(Reconciler(store, deskie, "cch12", pool).poll())  # type: ignore[arg-type]
    assert deskie.queries[-1] == "latest" and len(deskie.queries) == 4


def test_a_case_deskie_will_not_show_does_not_stop_the_poll_for_the_others(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.set_cursor(CURSOR, "2026-11-25T22:00:05+03:00")
    store.set_cursor(FORMAT_CURSOR, "unix")
    convs = {}
    for case_id in (1, 2):
        convs[case_id] = store.create_conversation(
            conv_key=f"ch:{case_id}", channel_id=f"c{case_id}", reply_root_id="", user_custom_id=f"u:{case_id}",
            user_full_name="x", case_id=case_id, case_number=str(case_id), deskie_user_id=case_id,
            last_message_id=0, case_updated_at=None,
        )

    class Deskie(UnixOnlyDeskie):
        def iter_cases(self, priority: Any = None, **params: Any) -> list[dict[str, Any]]:
            return [{"case_id": 1, "updated_at": "Wed, 25 Nov 2026 22:00:10 +0300", "status": "open"},
                    {"case_id": 2, "updated_at": "Wed, 25 Nov 2026 22:00:11 +0300", "status": "waiting"}]

        def list_messages(self, case_id: int, **k: Any) -> Page:
            if case_id == 1:
                raise DeskieRejected(404, "case_not_found", "/api/cases/1/messages.json")
            return Page([{"message_id": 50, "staff_id": 7, "user_id": 0, "content": "answer", "note": False}], 1)

    with ThreadPoolExecutor(1) as pool:
        queued = asyncio.run(Reconciler(store, Deskie(), "cch12", pool).poll())  # type: ignore[arg-type]
    assert queued == 1
    assert store.known_message_ids([50]) == {50}
    assert store.conversation(convs[1].id).state == "closed"
