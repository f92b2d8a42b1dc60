"""The SQLite state store: migrations (fresh, upgrade, too new), outbox, batches, conversations, replies, cursors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import deskie_mm_bot.store as store_pkg
from deskie_mm_bot.store import Store, content_hash
from deskie_mm_bot.store.migrate import latest_version, migrate
from tests.support.fakes import FakeClock

MIGRATIONS_DIR = Path(store_pkg.__file__).parent / "migrations"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock):
    s = Store(tmp_path / "state.sqlite3", clock=clock)
    yield s
    s.close()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def post(store: Store, post_id: str, conv_key: str = "ch:c1", *, text: str = "hi", at: float = 1.0) -> bool:
    return store.enqueue_post(
        post_id=post_id,
        conv_key=conv_key,
        channel_id=conv_key.split(":", 1)[1],
        reply_root_id="",
        user_custom_id="u:jane",
        user_full_name="Jane Doe (@jane)",
        author="Jane Doe (@jane)",
        show_author=False,
        text=text,
        file_ids=["f1"],
        posted_at=at,
    )


def conversation(store: Store, conv_key: str = "ch:c1", case_id: int = 2000):
    return store.create_conversation(
        conv_key=conv_key,
        channel_id=conv_key.split(":", 1)[1],
        reply_root_id="",
        user_custom_id="u:jane",
        user_full_name="Jane Doe (@jane)",
        case_id=case_id,
        case_number=f"1-{case_id}",
        deskie_user_id=123,
        last_message_id=10,
        case_updated_at=None,
    )


# ---- migrations ---------------------------------------------------------------------------------------


def test_fresh_store_reaches_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite3"
    Store(path).close()
    n_files = len(list(MIGRATIONS_DIR.glob("*.sql")))
    assert n_files >= 2
    assert latest_version() == n_files
    assert user_version(path) == n_files
    assert {"conversations", "outbox", "batches", "cursors", "errors", "replies"} <= tables(path)


def test_store_missing_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.sqlite3"
    Store(path).close()
    assert path.exists()


def test_upgrade_from_first_version_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=1) == 1
    assert "replies" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.execute(
        "INSERT INTO conversations (conv_key, channel_id, user_custom_id, user_full_name, case_id, case_number,"
        " deskie_user_id, state, last_activity_at, created_at)"
        " VALUES ('ch:c1', 'c1', 'u:jane', 'Jane Doe (@jane)', 2000, '1-2000', 123, 'active', 50.0, 40.0)"
    )
    conn.execute(
        "INSERT INTO outbox (post_id, conv_key, channel_id, user_custom_id, user_full_name, author, text,"
        " posted_at, created_at) VALUES ('p1', 'ch:c1', 'c1', 'u:jane', 'Jane Doe (@jane)', 'Jane', 'old text',"
        " 41.0, 41.0)"
    )
    conn.close()
    assert user_version(path) == 1

    s = Store(path)
    try:
        conv = s.current_conversation("ch:c1")
        assert conv is not None and conv.case_id == 2000 and conv.deskie_user_id == 123
        item = s.outbox_item("p1")
        assert item is not None and item.text == "old text" and item.state == "pending"
        assert s.pending_conv_keys() == ["ch:c1"]
        # New tables from later migrations exist and work.
        assert s.add_reply(message_id=1, case_id=2000, conversation_id=conv.id, body="x", attachments=[], source="webhook")
        # A chat from before several workspaces belongs to the single form's ('').
        assert conv.workspace == "" and s.count_conversations("active", "") == 1
    finally:
        s.close()
    assert user_version(path) == latest_version()
    assert "replies" in tables(path)


def test_migrate_is_a_no_op_when_current(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    Store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn) == latest_version()
    finally:
        conn.close()


def test_store_newer_than_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        Store(path)
    assert user_version(path) == latest_version() + 1


# ---- outbox ---------------------------------------------------------------------------------------------


def test_enqueue_post_is_idempotent_per_post_id(store: Store) -> None:
    assert post(store, "p1", text="first") is True
    assert post(store, "p1", text="replayed") is False
    assert store.outbox_item("p1").text == "first"
    assert store.count_outbox("pending") == 1
    assert store.has_post("p1") and not store.has_post("p2")


def test_outbox_item_round_trips_fields(store: Store) -> None:
    post(store, "p1", at=12.5)
    item = store.outbox_item("p1")
    assert item.file_ids == ["f1"] and item.show_author is False and item.kind == "message"
    assert item.posted_at == 12.5 and item.batch_id is None


def test_pending_conv_keys_ordered_by_oldest_pending(store: Store) -> None:
    post(store, "a1", "ch:a")
    post(store, "b1", "ch:b")
    post(store, "a2", "ch:a")
    post(store, "c1", "ch:c")
    assert store.pending_conv_keys() == ["ch:a", "ch:b", "ch:c"]
    # Once a's work is done, a new post for a goes to the back of the line.
    items = store.pending_items("ch:a")
    batch = store.begin_batch("ch:a", None, "create_case", "x", [i.id for i in items], 0)
    assert store.pending_conv_keys() == ["ch:a", "ch:b", "ch:c"], "in-flight work still counts"
    store.finish_batch(batch.id)
    assert store.pending_conv_keys() == ["ch:b", "ch:c"]
    post(store, "a3", "ch:a")
    assert store.pending_conv_keys() == ["ch:b", "ch:c", "ch:a"]


def test_begin_inflight_finish_batch(store: Store, clock: FakeClock) -> None:
    post(store, "p1")
    post(store, "p2")
    ids = [i.id for i in store.pending_items("ch:c1")]
    assert store.inflight_batch("ch:c1") is None
    clock.now = 2000.0
    batch = store.begin_batch("ch:c1", None, "create_case", "p1\np2", ids, 0)
    post(store, "p3")  # arrives while the batch is in flight: not part of it
    assert [i.post_id for i in store.pending_items("ch:c1")] == ["p3"]

    found = store.inflight_batch("ch:c1")
    assert found == batch
    assert (found.op, found.content, found.state, found.started_at) == ("create_case", "p1\np2", "inflight", 2000.0)
    members = store.batch_items(batch.id)
    assert [i.post_id for i in members] == ["p1", "p2"]
    assert all(i.state == "inflight" and i.batch_id == batch.id for i in members)

    store.retarget_batch(batch.id, 7, "add_message", 55)
    again = store.inflight_batch("ch:c1")
    assert (again.conversation_id, again.op, again.since_message_id) == (7, "add_message", 55)

    store.finish_batch(batch.id)
    assert store.inflight_batch("ch:c1") is None
    assert {i.state for i in store.batch_items(batch.id)} == {"sent"}
    assert store.count_outbox("sent") == 2 and store.count_outbox("pending") == 1


def test_begin_batch_does_not_take_items_already_in_flight(store: Store) -> None:
    post(store, "p1")
    ids = [i.id for i in store.pending_items("ch:c1")]
    first = store.begin_batch("ch:c1", None, "create_case", "p1", ids, 0)
    second = store.begin_batch("ch:c1", None, "create_case", "p1", ids, 0)
    assert [i.post_id for i in store.batch_items(first.id)] == ["p1"]
    assert store.batch_items(second.id) == []


def test_finish_batch_failed_state(store: Store) -> None:
    post(store, "p1")
    batch = store.begin_batch("ch:c1", None, "add_note", "n", [store.outbox_item("p1").id], 0)
    store.finish_batch(batch.id, state="failed")
    assert store.outbox_item("p1").state == "failed"
    assert store.pending_conv_keys() == []


# ---- conversations -----------------------------------------------------------------------------------


def test_current_conversation_skips_closed_ones(store: Store) -> None:
    assert store.current_conversation("ch:c1") is None
    first = conversation(store, case_id=1)
    assert store.current_conversation("ch:c1").id == first.id
    store.set_conversation_state(first.id, "ended")
    assert store.current_conversation("ch:c1").id == first.id, "an ended chat continues its case"
    store.set_conversation_state(first.id, "closed")
    assert store.current_conversation("ch:c1") is None
    second = conversation(store, case_id=2)
    assert store.current_conversation("ch:c1").id == second.id
    assert store.conversation_by_case(1).state == "closed"
    assert store.known_case_ids([1, 2, 3]) == {1, 2}


def test_idle_conversations(store: Store, clock: FakeClock) -> None:
    clock.now = 100.0
    old = conversation(store, "ch:old", case_id=1)
    clock.now = 200.0
    recent = conversation(store, "ch:new", case_id=2)
    clock.now = 300.0
    ended = conversation(store, "ch:ended", case_id=3)
    store.set_conversation_state(ended.id, "ended")
    assert [c.id for c in store.idle_conversations(150.0)] == [old.id]
    assert [c.id for c in store.idle_conversations(1000.0)] == [old.id, recent.id]
    # Activity restarts the idle clock.
    clock.now = 400.0
    store.touch_conversation(old.id, "agent", message_id=99)
    assert [c.id for c in store.idle_conversations(350.0)] == [recent.id]
    touched = store.conversation(old.id)
    assert touched.last_speaker == "agent" and touched.last_message_id == 99


def test_touch_revives_ended_but_not_closed(store: Store) -> None:
    conv = conversation(store)
    store.set_conversation_state(conv.id, "ended")
    store.touch_conversation(conv.id, "customer")
    assert store.conversation(conv.id).state == "active"
    store.set_conversation_state(conv.id, "closed")
    store.touch_conversation(conv.id, "customer")
    assert store.conversation(conv.id).state == "closed"


def test_touch_never_lowers_last_message_id(store: Store) -> None:
    conv = conversation(store)  # last_message_id 10
    store.touch_conversation(conv.id, "customer", message_id=5)
    assert store.conversation(conv.id).last_message_id == 10


# ---- replies --------------------------------------------------------------------------------------------


def reply(store: Store, message_id: int | None, body: str = "Answer", case_id: int = 2000) -> bool:
    return store.add_reply(
        message_id=message_id, case_id=case_id, conversation_id=None, body=body, attachments=[], source="webhook"
    )


def test_add_reply_dedups_by_message_id(store: Store) -> None:
    assert reply(store, 501) is True
    assert reply(store, 501, body="different text, same message") is False
    assert store.count_replies("pending") == 1
    assert store.known_message_ids([501, 502]) == {501}


def test_add_reply_without_id_dedups_by_case_and_content_hash(store: Store) -> None:
    assert reply(store, None, "Hello there") is True
    assert reply(store, None, "  Hello there \n") is False, "same text on the same case is a repeat"
    assert reply(store, None, "Hello there", case_id=3000) is True
    assert reply(store, None, "Something else") is True
    assert store.count_replies("pending") == 3


def test_resolve_reply_returns_false_when_another_row_has_that_id(store: Store) -> None:
    assert reply(store, None, "Hi")
    assert reply(store, 501, "Hi")  # the poll, by id: recorded, resolution decides which row wins
    rid = store.unresolved_reply(2000, content_hash("Hi"))
    assert rid is not None
    assert store.resolve_reply(rid, 501) is False
    assert store.reply(rid).message_id is None
    assert store.resolve_reply(rid, 502) is True
    assert store.reply(rid).message_id == 502
    assert store.unresolved_reply(2000, content_hash("Hi")) is None


def test_a_webhook_without_id_for_an_answer_the_poll_already_has_is_a_duplicate(store: Store) -> None:
    assert reply(store, 501, "Hi")
    assert reply(store, None, "Hi") is False
    assert reply(store, None, "Hi", case_id=2001) is True  # another case: another answer


def test_due_replies_honours_next_attempt_at(store: Store, clock: FakeClock) -> None:
    reply(store, 1, "one", case_id=2000)
    reply(store, 2, "two", case_id=2001)
    [first, second] = store.due_replies(clock.now)
    store.retry_reply_later(first.id, 30.0, "mattermost down")
    assert [r.id for r in store.due_replies(clock.now + 29)] == [second.id]
    due = store.due_replies(clock.now + 30)
    assert [r.id for r in due] == [first.id, second.id]
    assert due[0].attempts == 1
    store.finish_reply(second.id)
    assert [r.id for r in store.due_replies(clock.now + 30)] == [first.id]


def test_an_answer_waiting_for_retry_holds_back_the_later_answers_of_its_chat(store: Store, clock: FakeClock) -> None:
    reply(store, 1, "one")
    reply(store, 2, "two")
    reply(store, 3, "other chat", case_id=2001)
    [first, other] = store.due_replies(clock.now)
    assert [first.body, other.body] == ["one", "other chat"]
    store.retry_reply_later(first.id, 30.0, "mattermost down")
    assert [r.body for r in store.due_replies(clock.now + 1)] == ["other chat"]
    store.finish_reply(first.id)
    assert [r.body for r in store.due_replies(clock.now + 1)] == ["two", "other chat"]


def test_posting_replies_stay_due_and_parts_are_recorded(store: Store) -> None:
    reply(store, 1, "long")
    [r] = store.due_replies(1e12)
    store.mark_reply_posting(r.id)
    store.record_reply_part(r.id, "mmpost1")
    store.record_reply_part(r.id, "mmpost2")
    [again] = store.due_replies(1e12)
    assert again.state == "posting" and again.parts_posted == 2 and again.post_ids == ["mmpost1", "mmpost2"]


# ---- cursors, errors, durability ---------------------------------------------------------------------


def test_advance_cursor_never_lowers(store: Store) -> None:
    store.advance_cursor("poll", 9)
    store.advance_cursor("poll", 10)
    assert store.get_cursor("poll") == "10", "compared as numbers, not text"
    store.advance_cursor("poll", 5)
    assert store.get_cursor("poll") == "10"
    store.advance_cursor("poll", 12)
    assert store.get_cursor("poll") == "12"


def test_set_cursor_overwrites(store: Store) -> None:
    assert store.get_cursor("since") is None
    store.set_cursor("since", "a")
    store.set_cursor("since", "b")
    assert store.get_cursor("since") == "b"


def test_errors_keep_only_recent(store: Store) -> None:
    for i in range(60):
        store.record_error("deskie", f"error {i}")
    last = store.last_errors(3)
    assert [e["message"] for e in last] == ["error 59", "error 58", "error 57"]
    assert len(store.last_errors(100)) == 50


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "wal.sqlite3"
    s = Store(path)
    assert s._conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    post(s, "p1")
    conv = conversation(s)
    s.advance_cursor("poll", 42)
    reply(s, 7)
    s.close()

    s2 = Store(path)
    try:
        assert s2.has_post("p1") and s2.pending_conv_keys() == ["ch:c1"]
        assert s2.current_conversation("ch:c1").id == conv.id
        assert s2.get_cursor("poll") == "42"
        assert s2.known_message_ids([7]) == {7}
        assert post(s2, "p1") is False
    finally:
        s2.close()


def test_transaction_rolls_back_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as c:
        c.execute("INSERT INTO cursors (name, value) VALUES ('x', '1')")
        raise RuntimeError("boom")
    assert store.get_cursor("x") is None


def test_a_chat_belongs_to_the_workspace_its_customer_names(store: Store) -> None:
    acme = store.create_conversation(
        conv_key="acme:ch:c1", channel_id="c1", reply_root_id="", user_custom_id="acme:u:jane",
        user_full_name="Jane \u00b7 acme", case_id=1, case_number="1", deskie_user_id=None, last_message_id=0,
        case_updated_at=None)
    single = conversation(store, "ch:c2", case_id=2)
    assert (acme.workspace, single.workspace) == ("acme", "")
    assert store.count_conversations("active", "acme") == 1
    assert store.count_conversations("active") == 2
    assert store.chat_channels("acme") == ["c1"] and store.chat_channels("") == ["c2"]


def test_each_workspace_keeps_its_own_channel_cursors(store: Store) -> None:
    from deskie_mm_bot.store import catchup_floor_name, channel_cursor_prefix

    store.advance_cursor(channel_cursor_prefix("") + "c1", 10)
    store.advance_cursor(channel_cursor_prefix("acme") + "c1", 20)
    store.advance_cursor(channel_cursor_prefix("channel") + "c3", 30)  # a workspace named like the prefix
    assert store.channel_cursors("") == {"c1": 10}
    assert store.channel_cursors("acme") == {"c1": 20}
    assert store.channel_cursors("channel") == {"c3": 30}
    assert sorted(store.known_channels("acme")) == ["c1"]
    # The single form's names are the ones stores written before several workspaces hold.
    assert channel_cursor_prefix("") == "mm.channel." and catchup_floor_name("") == "mm.catchup_floor_ms"
    assert catchup_floor_name("acme") != catchup_floor_name("")
