"""The inbound relay getting over trouble, with a real store and a fake Deskie: retry bookkeeping dropped once a
chat recovers, verification after an interrupted write, a follow-up that must read the case's user, an
attachment Mattermost cannot serve yet."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest

from deskie_mm_bot.deskie.client import DeskieClient, DeskieUnavailable, Page
from deskie_mm_bot.deskie.helpdesk import DeskieHelpdesk
from deskie_mm_bot.deskie.ratebudget import RateBudget
from deskie_mm_bot.relay.inbound import InboundRelay
from deskie_mm_bot.store import Store
from tests.support.fakes import FakeClock

pytestmark = pytest.mark.timeout(10)


class Deskie:
    def __init__(self) -> None:
        self.budget = RateBudget(1000)
        self.outage = 1
        self.cases: list[dict[str, Any]] = []

    def create_case(self, **fields: Any) -> dict[str, Any]:
        if self.outage:
            self.outage -= 1
            raise DeskieUnavailable("Deskie unreachable: ConnectionError", maybe_applied=False)
        case = {"case_id": 100 + len(self.cases), "case_number": "n", "user_id": 5, **fields}
        self.cases.append(case)
        return case

    def list_cases(self, priority: Any = None, **params: Any) -> Page:
        return Page([], 0)

    def list_groups(self) -> list[dict[str, Any]]:
        return [{"group_id": 1, "group_title": "Support"}]


def _helpdesk(deskie: object, pool: Executor) -> DeskieHelpdesk:
    # The fakes stand in for the HTTP client: the relay runs over the real Deskie helpdesk.
    return DeskieHelpdesk(cast(DeskieClient, deskie), "cch1", pool, default_group="Support")


def test_retry_bookkeeping_of_a_chat_is_dropped_once_it_recovers(tmp_path: Path) -> None:
    """In thread mode every top-level post is its own chat: per-chat retry state kept after recovery
    would grow for as long as the bot runs."""
    clock = FakeClock(1_000_000.0)
    store = Store(tmp_path / "s.sqlite3", clock=clock)
    deskie = Deskie()
    with ThreadPoolExecutor(2) as pool:
        relay = InboundRelay(store, _helpdesk(deskie, pool), clock=clock)
        store.enqueue_post(post_id="p1", conv_key="th:p1", channel_id="c", reply_root_id="p1",
                           user_custom_id="u:jane", user_full_name="Jane", author="Jane", show_author=False,
                           text="hello", file_ids=[], posted_at=clock.now)
        asyncio.run(relay.drain())
        assert "th:p1" in relay._retry_at
        clock.now += 60
        asyncio.run(relay.drain())
    assert len(deskie.cases) == 1 and store.count_outbox("sent") == 1
    assert relay._retry_at == {} and relay._backoffs == {}
    store.close()


class NoteDeskie:
    def __init__(self) -> None:
        self.budget = RateBudget(1000)
        self.messages: list[dict[str, Any]] = [
            {"message_id": 10, "user_id": 5, "staff_id": 0, "note": False, "content": "hello"},
        ]
        self.fail_next = False

    def add_note(self, case_id: int, content: str) -> dict[str, Any]:
        if self.fail_next:
            self.fail_next = False
            raise DeskieUnavailable("Deskie unreachable: ConnectionError", maybe_applied=False)
        msg = {"message_id": 10 + len(self.messages), "user_id": 0, "staff_id": 3, "note": True, "content": content}
        self.messages.append(msg)
        return msg

    def list_messages(self, case_id: int, *, order: str = "desc", limit: int = 100, page: int = 1,
                      priority: Any = None) -> Page:
        items = list(self.messages) if order == "asc" else list(reversed(self.messages))
        return Page(items[:limit], len(items))


def _note(store: Store, post_id: str, text: str, at: float) -> None:
    store.enqueue_post(post_id=post_id, conv_key="ch:dm", channel_id="dm", reply_root_id="", user_custom_id="u:jane",
                       user_full_name="Jane", author="Jane", show_author=False, text=text, file_ids=[],
                       posted_at=at, kind="note")


def test_a_second_note_with_the_same_text_is_not_taken_for_the_first_when_verified(tmp_path: Path) -> None:
    """Two deletions of two messages that both said "ok" give two notes with the same text. The second,
    refused before it reached Deskie, must not be found "already applied" by matching the first."""
    clock = FakeClock(1_000_000.0)
    store = Store(tmp_path / "s.sqlite3", clock=clock)
    store.create_conversation(conv_key="ch:dm", channel_id="dm", reply_root_id="", user_custom_id="u:jane",
                              user_full_name="Jane", case_id=7, case_number="7", deskie_user_id=5,
                              last_message_id=0, case_updated_at=None)
    deskie = NoteDeskie()
    text = "Jane deleted a message: \u201cok\u201d"
    with ThreadPoolExecutor(2) as pool:
        relay = InboundRelay(store, _helpdesk(deskie, pool), clock=clock)
        clock.now += 10  # past the hold for bursts on a small plan
        _note(store, "delete:a", text, clock.now)
        asyncio.run(relay.drain())
        clock.now += 10
        _note(store, "delete:b", text, clock.now)
        deskie.fail_next = True
        asyncio.run(relay.drain())
        assert store.count_outbox("inflight") == 1
        clock.now += 60
        asyncio.run(relay.drain())
    assert [m["content"] for m in deskie.messages if m["note"]] == [text, text]
    store.close()


def test_follow_up_reads_the_case_user_when_the_create_answer_lacked_it(tmp_path: Path) -> None:
    """A Deskie whose create answer has no user_id: the follow-up still names the case's user."""
    store = Store(tmp_path / "s.sqlite3")
    conv = store.create_conversation(
        conv_key="ch:dm", channel_id="dm", reply_root_id="", user_custom_id="u:jane", user_full_name="Jane",
        case_id=77, case_number="77", deskie_user_id=None, last_message_id=0, case_updated_at=None,
    )

    class Deskie:
        budget = type("B", (), {"scarce": lambda self: False, "available": lambda self: 100.0,
                                "paused_for": lambda self: 0.0})()
        sent: list[tuple[int, int, str]] = []

        def get_case(self, case_id: int, priority: Any = None) -> dict[str, Any]:
            return {"case_id": case_id, "user_id": 555, "status": "open"}

        def add_user_message(self, case_id: int, user_id: int, content: str, files: Any = None,
                             content_html: str | None = None) -> dict[str, Any]:
            self.sent.append((case_id, user_id, content))
            return {"message_id": 900}

    store.enqueue_post(post_id="p1", conv_key="ch:dm", channel_id="dm", reply_root_id="", user_custom_id="u:jane",
                       user_full_name="Jane", author="Jane", show_author=False, text="again", file_ids=[],
                       posted_at=0.0)
    deskie = Deskie()

    async def go() -> None:
        with ThreadPoolExecutor(1) as pool:
            relay = InboundRelay(store, _helpdesk(deskie, pool))
            await relay.process("ch:dm")

    asyncio.run(go())
    assert deskie.sent == [(77, 555, "again")]
    after = store.conversation(conv.id)
    assert after is not None and after.deskie_user_id == 555


def test_an_attachment_mattermost_cannot_serve_right_now_is_retried_not_dropped(tmp_path: Path) -> None:
    from deskie_mm_bot.relay.inbound import FileUnavailable

    clock = FakeClock(1_000_000.0)
    store = Store(tmp_path / "s.sqlite3", clock=clock)
    deskie = Deskie()
    deskie.outage = 0
    attempts: list[str] = []

    async def fetch(workspace: str, file_id: str) -> tuple[dict[str, Any], bytes]:
        assert workspace == ""
        attempts.append(file_id)
        if file_id == "gone":
            raise FileUnavailable("HTTP 404")
        if len(attempts) == 1:
            raise ConnectionError("Mattermost REST unavailable")  # transient
        return {"name": "log.txt", "mime_type": "text/plain"}, b"data"

    store.enqueue_post(post_id="p1", conv_key="ch:dm", channel_id="dm", reply_root_id="", user_custom_id="u:jane",
                       user_full_name="Jane", author="Jane", show_author=False, text="see files",
                       file_ids=["f1", "gone"], posted_at=clock.now)
    with ThreadPoolExecutor(2) as pool:
        relay = InboundRelay(store, _helpdesk(deskie, pool), fetch, clock=clock)
        asyncio.run(relay.drain())
        assert deskie.cases == []  # not sent without its file
        clock.now += 60
        asyncio.run(relay.drain())
    (case,) = deskie.cases
    assert [f[0] for f in case["files"]] == ["log.txt"]
    assert "gone could not be fetched" in case["content"]
