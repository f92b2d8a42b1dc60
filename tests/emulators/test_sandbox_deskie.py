"""Behaviour of the Deskie (Omnidesk) API emulator, driven over real loopback HTTP."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests

from deskie_mm_bot.sandbox.deskie import DeskieEmulator

EMAIL, KEY = "bot@acme.io", "secret-key"
CH = "cch12"


# ----------------------------------------------------------------------------- helpers
class Hook:
    """A tiny loopback webhook receiver."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[dict[str, Any]] = []
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ctype = self.headers.get("Content-Type", "")
                body: Any = json.loads(raw) if "json" in ctype else dict(parse_qsl(raw.decode()))
                hook.received.append({"content_type": ctype, "body": body})
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def emu() -> Iterator[DeskieEmulator]:
    with DeskieEmulator() as e:
        e.add_staff(EMAIL, "Relay Bot", api_key=KEY)
        e.add_staff("alice@acme.io", "Alice Agent")
        e.add_group("Support")
        e.add_custom_channel(CH, "Mattermost", channel_type="async")  # mail-like: lists show every case
        yield e


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def s() -> Iterator[requests.Session]:
    with requests.Session() as sess:
        sess.auth = (EMAIL, KEY)
        yield sess


def new_case(
    emu: DeskieEmulator,
    s: requests.Session,
    custom_id: str = "mm:u1",
    content: str = "Hello",
    channel: str = CH,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "case": {
            "channel": channel,
            "user_custom_id": custom_id,
            "user_full_name": "Jane Doe",
            "subject": "Question",
            "content": content,
            **extra,
        }
    }
    r = s.post(f"{emu.url}/api/cases.json", json=body)
    assert r.status_code == 201, r.text
    return r.json()["case"]


def rows(data: dict[str, Any], root: str) -> list[dict[str, Any]]:
    return [data[k][root] for k in sorted((k for k in data if k != "total_count"), key=int)]


# ------------------------------------------------------------------------------ auth
def test_bad_credentials_401(emu: DeskieEmulator) -> None:
    assert requests.get(f"{emu.url}/api/cases.json").status_code == 401
    r = requests.get(f"{emu.url}/api/cases.json", auth=(EMAIL, "wrong"))
    assert r.status_code == 401 and "error" in r.json()
    # a staff member without an API key cannot authenticate
    assert requests.get(f"{emu.url}/api/cases.json", auth=("alice@acme.io", "")).status_code == 401
    assert requests.get(f"{emu.url}/api/cases.json", auth=(EMAIL, KEY)).status_code == 200


def test_unknown_staff_email_403_wrong_api_key_401(emu: DeskieEmulator) -> None:
    # How live code reads them (reference §3): 401 = wrong API key, 403 = wrong staff login.
    assert requests.get(f"{emu.url}/api/cases.json", auth=("nobody@acme.io", KEY)).status_code == 403
    assert requests.get(f"{emu.url}/api/cases.json", auth=(EMAIL, "wrong")).status_code == 401


# ----------------------------------------------------------------------------- cases
def test_create_case_returns_201_with_case_and_first_customer_message(
    emu: DeskieEmulator, s: requests.Session
) -> None:
    case = new_case(emu, s, content="I need help")
    assert isinstance(case["case_id"], int)
    assert re.fullmatch(r"\d{3}-\d{6}", case["case_number"])
    assert case["status"] == "open" and case["channel"] == CH and case["subject"] == "Question"
    assert case["closed_at"] == "-" and case["closing_speed"] == "-"
    assert case["group_id"] == emu.state.groups[min(emu.state.groups)].group_id
    msgs = emu.messages(case["case_id"])
    assert len(msgs) == 1
    assert msgs[0]["user_id"] == case["user_id"] and msgs[0]["staff_id"] == 0
    assert msgs[0]["content"] == "I need help" and msgs[0]["note"] is False


def test_create_case_in_custom_channel_reuses_user_by_custom_id(
    emu: DeskieEmulator, s: requests.Session
) -> None:
    emu.add_custom_channel("cch13", "Other", channel_type="async")
    a = new_case(emu, s, "mm:u1")
    b = new_case(emu, s, "mm:u1")
    c = new_case(emu, s, "mm:u1", channel="cch13")
    assert a["case_id"] != b["case_id"]
    assert a["user_id"] == b["user_id"] != c["user_id"]
    u = emu.user(a["user_id"])
    assert (
        u["user_custom_id"] == "mm:u1"
        and u["user_custom_channel"] == CH
        and u["user_full_name"] == "Jane Doe"
    )


def test_create_case_validation_errors(emu: DeskieEmulator, s: requests.Session) -> None:
    r = s.post(
        f"{emu.url}/api/cases.json",
        json={"case": {"channel": CH, "user_custom_id": "x", "content": "hi", "group_id": 999}},
    )
    assert (r.status_code, r.json()) == (400, {"error": "group_not_found"})
    r = s.post(f"{emu.url}/api/cases.json", json={"case": {"channel": CH, "user_custom_id": "x"}})
    assert (r.status_code, r.json()) == (400, {"error": "wrong_params"})
    r = s.post(f"{emu.url}/api/cases.json", json={"nope": {}})
    assert (r.status_code, r.json()) == (400, {"error": "wrong_params"})
    assert emu.cases() == []


def test_list_is_object_keyed_with_total_count(emu: DeskieEmulator, s: requests.Session) -> None:
    assert s.get(f"{emu.url}/api/cases.json").json() == {"total_count": 0}
    for i in range(3):
        new_case(emu, s, f"mm:u{i}")
    data = s.get(f"{emu.url}/api/cases.json").json()
    assert set(data) == {"0", "1", "2", "total_count"} and data["total_count"] == 3
    assert all(set(data[k]) == {"case"} for k in ("0", "1", "2"))
    # default sort created_at_desc (ties broken by id)
    assert [c["case_id"] for c in rows(data, "case")] == sorted(
        (c["case_id"] for c in emu.cases()), reverse=True
    )


def test_times_are_rfc2822_with_offset(s: requests.Session) -> None:
    with DeskieEmulator(utc_offset_minutes=180) as e:
        e.add_staff(EMAIL, "Bot", api_key=KEY)
        e.add_custom_channel(CH)
        case = new_case(e, s)
        for field in ("created_at", "updated_at"):
            value = case[field]
            assert re.fullmatch(
                r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0300", value
            ), value
            assert abs(parsedate_to_datetime(value).timestamp() - time.time()) < 5
    with DeskieEmulator(utc_offset_minutes=-300) as e:
        e.add_staff(EMAIL, "Bot", api_key=KEY)
        e.add_custom_channel(CH)
        assert new_case(e, s)["created_at"].endswith(" -0500")


def test_get_case_by_id_or_number(emu: DeskieEmulator, s: requests.Session) -> None:
    case = new_case(emu, s)
    by_id = s.get(f"{emu.url}/api/cases/{case['case_id']}.json").json()["case"]
    by_num = s.get(f"{emu.url}/api/cases/{case['case_number']}.json").json()["case"]
    assert by_id == by_num and by_id["case_id"] == case["case_id"]


def test_unknown_case_404_case_not_found(emu: DeskieEmulator, s: requests.Session) -> None:
    for r in (
        s.get(f"{emu.url}/api/cases/999999.json"),
        s.get(f"{emu.url}/api/cases/999999/messages.json"),
        s.post(f"{emu.url}/api/cases/999999/messages.json", json={"message": {"user_id": 1, "content": "x"}}),
        s.put(f"{emu.url}/api/cases/111-222333.json", json={"case": {"status": "closed"}}),
    ):
        assert (r.status_code, r.json()) == (404, {"error": "case_not_found"})


def test_update_status_sets_closed_at_and_updated_at(emu: DeskieEmulator, s: requests.Session) -> None:
    case = new_case(emu, s)
    emu.advance_clock(120)
    r = s.put(f"{emu.url}/api/cases/{case['case_id']}.json", json={"case": {"status": "closed"}})
    assert r.status_code == 200
    closed = r.json()["case"]
    assert closed["status"] == "closed" and closed["closed_at"] != "-" and closed["closing_speed"] == 2
    assert closed["updated_at"] != case["updated_at"]
    r = s.put(f"{emu.url}/api/cases/{case['case_id']}.json", json={"case": {"status": "bogus"}})
    assert (r.status_code, r.json()) == (400, {"error": "wrong_params"})
    reopened = s.put(f"{emu.url}/api/cases/{case['case_id']}.json", json={"case": {"status": "open"}}).json()[
        "case"
    ]
    assert reopened["closed_at"] == "-" and reopened["status"] == "open"


def test_from_updated_time_filters_and_sorts(emu: DeskieEmulator, s: requests.Session) -> None:
    a = new_case(emu, s, "mm:a")
    emu.advance_clock(3600)
    b = new_case(emu, s, "mm:b")
    emu.advance_clock(3600)
    emu.agent_reply(a["case_id"], "answer")  # a is now the most recently updated
    t_b = int(parsedate_to_datetime(emu.get_case(b["case_id"])["updated_at"]).timestamp())

    def ids(**params: Any) -> list[int]:
        r = s.get(f"{emu.url}/api/cases.json", params=params)
        assert r.status_code == 200, r.text
        return [c["case_id"] for c in rows(r.json(), "case")]

    assert ids(from_updated_time=t_b, sort="updated_at_asc") == [b["case_id"], a["case_id"]]
    assert ids(from_updated_time=t_b + 1, sort="updated_at_asc") == [a["case_id"]]
    assert ids(to_updated_time=t_b) == [b["case_id"]]
    assert ids(sort="updated_at_desc") == [a["case_id"], b["case_id"]]
    assert ids(sort="created_at_asc") == [a["case_id"], b["case_id"]]
    # string forms are wall-clock times in the account offset (+03:00)
    from datetime import datetime, timedelta, timezone

    local = datetime.fromtimestamp(t_b, tz=timezone(timedelta(hours=3)))
    assert ids(from_updated_time=local.strftime("%Y-%m-%d %H:%M:%S"), sort="updated_at_asc") == [
        b["case_id"],
        a["case_id"],
    ]
    assert ids(from_time=local.strftime("%Y-%m-%d %H:%M:%S")) == [b["case_id"]]
    assert set(ids(from_time=local.strftime("%d.%m.%Y"), to_time="2999-01-01")) >= {b["case_id"]}
    r = s.get(f"{emu.url}/api/cases.json", params={"from_updated_time": "yesterday"})
    assert (r.status_code, r.json()) == (400, {"error": "wrong_params"})


def test_case_filters_channel_status_user_custom_id_anchors(emu: DeskieEmulator, s: requests.Session) -> None:
    emu.add_custom_channel("cch13", "Other", channel_type="async")
    c1 = new_case(emu, s, "mm:abc")
    c2 = new_case(emu, s, "mm:abcd")
    c3 = new_case(emu, s, "x-mm:abc", channel="cch13")
    emu.close_case(c2["case_id"])

    def ids(params: Any) -> set[int]:
        return {c["case_id"] for c in rows(s.get(f"{emu.url}/api/cases.json", params=params).json(), "case")}

    assert ids({"user_custom_id": "mm:abc"}) == {c1["case_id"], c2["case_id"], c3["case_id"]}
    assert ids({"user_custom_id": "^mm:abc^"}) == {c1["case_id"]}
    assert ids({"user_custom_id": "^mm:abc"}) == {c1["case_id"], c2["case_id"]}
    assert ids({"user_custom_id": "mm:abc^"}) == {c1["case_id"], c3["case_id"]}
    assert ids({"channel": "cch13"}) == {c3["case_id"]}
    assert ids({"status": "closed"}) == {c2["case_id"]}
    assert ids([("status[]", "open"), ("status[]", "closed")]) == {
        c1["case_id"],
        c2["case_id"],
        c3["case_id"],
    }
    assert ids({"user_id": c1["user_id"]}) == {c1["case_id"]}


def test_cases_paging_and_limit_bounds(emu: DeskieEmulator, s: requests.Session) -> None:
    for i in range(5):
        new_case(emu, s, f"mm:{i}")
    p2 = s.get(f"{emu.url}/api/cases.json", params={"limit": 2, "page": 2, "sort": "created_at_asc"}).json()
    assert p2["total_count"] == 5
    assert [c["case_id"] for c in rows(p2, "case")] == [c["case_id"] for c in emu.cases()[2:4]]
    assert s.get(f"{emu.url}/api/cases.json", params={"page": 9}).json() == {"total_count": 5}
    for bad in ({"limit": 101}, {"limit": 0}, {"page": 501}):
        assert s.get(f"{emu.url}/api/cases.json", params=bad).status_code == 400


def test_lenient_shapes_trailing_slash_page_zero_php_arrays_documented_sorts(
    emu: DeskieEmulator, s: requests.Session
) -> None:
    r = s.post(f"{emu.url}/api/cases.json/", json={"case": {"channel": CH, "user_custom_id": "mm:t",
                                                           "subject": "s", "content": "c"}})
    assert r.status_code == 201
    c2 = new_case(emu, s, "mm:u2")
    emu.close_case(c2["case_id"])
    assert s.get(f"{emu.url}/api/cases.json", params={"page": 0}).json()["total_count"] == 2
    closed = s.get(f"{emu.url}/api/cases.json", params={"status[0]": "closed"}).json()
    assert [c["case_id"] for c in rows(closed, "case")] == [c2["case_id"]]
    both = s.get(f"{emu.url}/api/cases.json", params={"status[0]": "closed", "status[1]": "open"}).json()
    assert both["total_count"] == 2
    for sort in ("response_desc", "priority_asc", "status_desc", "created_at_asc"):
        assert s.get(f"{emu.url}/api/cases.json", params={"sort": sort}).status_code == 200
    by_status = rows(s.get(f"{emu.url}/api/cases.json", params={"sort": "status_desc"}).json(), "case")
    assert [c["status"] for c in by_status] == ["closed", "open"]
    assert s.get(f"{emu.url}/api/cases.json", params={"sort": "nonsense"}).status_code == 400


def test_active_chats_are_left_out_of_lists_unless_asked_for(s: requests.Session) -> None:
    with DeskieEmulator() as e:
        e.add_staff(EMAIL, "Bot", api_key=KEY)
        e.add_custom_channel("cch5", "Chat", channel_type="sync")
        case = new_case(e, s, "mm:chat", channel="cch5")
        listed = s.get(f"{e.url}/api/cases.json", params={"channel": "cch5"}).json()
        assert listed == {"total_count": 0} and e.chat_active(case["case_id"])
        shown = s.get(f"{e.url}/api/cases.json", params={"channel": "cch5", "show_active_chats": "true"}).json()
        assert [c["case_id"] for c in rows(shown, "case")] == [case["case_id"]]
        # an agent's "end chat" moves it to the lists; a new message reactivates it
        e.end_chat(case["case_id"])
        assert s.get(f"{e.url}/api/cases.json").json()["total_count"] == 1
        e.agent_reply(case["case_id"], content="hi")
        assert s.get(f"{e.url}/api/cases.json").json()["total_count"] == 0
        # Deskie's own inactivity timeout ends it too (an account setting, 10 minutes by default)
        assert e.chat_timeout == 600
        e.advance_clock(601)
        assert s.get(f"{e.url}/api/cases.json").json()["total_count"] == 1 and not e.chat_active(case["case_id"])
        # closing the case ends the chat; notes do not reactivate it
        s.post(f"{e.url}/api/cases/{case['case_id']}/messages.json",
               json={"message": {"user_id": case["user_id"], "content": "again"}})
        assert e.chat_active(case["case_id"])
        e.close_case(case["case_id"])
        assert not e.chat_active(case["case_id"])
        e.agent_reply(case["case_id"], content="note", note=True)
        assert not e.chat_active(case["case_id"])


@pytest.mark.parametrize("bumps", [False, True])
def test_ending_a_chat_moves_updated_at_only_in_that_variant(s: requests.Session, bumps: bool) -> None:
    with DeskieEmulator() as e:
        e.add_staff(EMAIL, "Bot", api_key=KEY)
        e.add_custom_channel("cch5", "Chat", channel_type="sync")
        e.variants.chat_end_bumps_updated = bumps
        case = new_case(e, s, "mm:chat", channel="cch5")
        e.advance_clock(700)
        after = e.get_case(case["case_id"])
        assert (after["updated_at"] != case["updated_at"]) is bumps


def test_variants_html_only_content_url_only_webhook_attachments_root_key_empty_list(
    emu: DeskieEmulator, s: requests.Session, hook: Hook
) -> None:
    emu.variants.message_content = "html_only"
    emu.variants.webhook_attachments = "url_only"
    emu.variants.empty_list = "root_array"
    assert s.get(f"{emu.url}/api/cases.json").json() == {"case": []}
    emu.set_webhook_url(CH, hook.url)
    case = new_case(emu, s, "mm:v")
    msgs = rows(s.get(f"{emu.url}/api/cases/{case['case_id']}/messages.json").json(), "message")
    assert msgs[0]["content"] == "" and "Hello" in msgs[0]["content_html"]
    emu.agent_reply(case["case_id"], content="see file", attachments=[{"file_name": "a.txt", "data": "x"}])
    body = emulated_wait(lambda: hook.received)[0]["body"]
    att_keys = {k for k in body if k.startswith("object[attachments][0]")}
    assert att_keys == {"object[attachments][0][url]"}


def emulated_wait(fn: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := fn():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


# -------------------------------------------------------------------------- messages
def test_customer_message_reopens_status_and_changes_updated_at(
    emu: DeskieEmulator, s: requests.Session
) -> None:
    case = new_case(emu, s)
    emu.agent_reply(case["case_id"], "Hi, how can I help?")
    assert emu.get_case(case["case_id"])["status"] == "waiting"
    emu.advance_clock(60)
    r = s.post(
        f"{emu.url}/api/cases/{case['case_id']}/messages.json",
        json={"message": {"user_id": case["user_id"], "content": "More details"}},
    )
    assert r.status_code == 201
    msg = r.json()["message"]
    assert msg["user_id"] == case["user_id"] and msg["staff_id"] == 0 and msg["content"] == "More details"
    after = emu.get_case(case["case_id"])
    assert after["status"] == "open" and after["updated_at"] != case["updated_at"]


def test_message_ids_increase_account_wide(emu: DeskieEmulator, s: requests.Session) -> None:
    a, b = new_case(emu, s, "mm:a"), new_case(emu, s, "mm:b")
    m1 = emu.agent_reply(a["case_id"], "1")
    m2 = emu.agent_reply(b["case_id"], "2")
    m3 = emu.agent_reply(a["case_id"], "3")
    assert m1["message_id"] < m2["message_id"] < m3["message_id"]


def test_message_to_closed_case_refused(emu: DeskieEmulator, s: requests.Session) -> None:
    case = new_case(emu, s)
    emu.close_case(case["case_id"])
    r = s.post(
        f"{emu.url}/api/cases/{case['case_id']}/messages.json",
        json={"message": {"user_id": case["user_id"], "content": "still there?"}},
    )
    assert (r.status_code, r.json()) == (400, {"error": "case_closed"})
    assert len(emu.messages(case["case_id"])) == 1
    assert emu.get_case(case["case_id"])["status"] == "closed"


def test_customer_message_with_wrong_user_refused(emu: DeskieEmulator, s: requests.Session) -> None:
    a, b = new_case(emu, s, "mm:a"), new_case(emu, s, "mm:b")
    r = s.post(
        f"{emu.url}/api/cases/{a['case_id']}/messages.json",
        json={"message": {"user_id": b["user_id"], "content": "hijack"}},
    )
    assert (r.status_code, r.json()) == (400, {"error": "incorrect_user"})
    r = s.post(f"{emu.url}/api/cases/{a['case_id']}/messages.json", json={"message": {"content": "who?"}})
    assert (r.status_code, r.json()) == (400, {"error": "wrong_params"})
    assert len(emu.messages(a["case_id"])) == 1


def test_staff_message_via_api_sets_waiting(emu: DeskieEmulator, s: requests.Session) -> None:
    case = new_case(emu, s)
    staff_id = int(rows(s.get(f"{emu.url}/api/staff.json").json(), "staff")[1]["staff_id"])
    r = s.post(
        f"{emu.url}/api/cases/{case['case_number']}/messages.json",
        json={"message": {"staff_id": staff_id, "content": "Answer"}},
    )
    assert r.status_code == 201 and r.json()["message"]["staff_id"] == staff_id
    after = emu.get_case(case["case_id"])
    assert after["status"] == "waiting" and after["staff_id"] == staff_id and after["last_response_at"] != "-"


def test_messages_default_is_last_100(emu: DeskieEmulator, s: requests.Session) -> None:
    case = new_case(emu, s, content="m0")
    for i in range(1, 105):
        emu.agent_reply(case["case_id"], f"m{i}")
    base = f"{emu.url}/api/cases/{case['case_id']}/messages.json"
    default = s.get(base).json()
    assert default["total_count"] == 105
    contents = [m["content"] for m in rows(default, "message")]
    assert contents == [f"m{i}" for i in range(5, 105)]
    desc = [m["content"] for m in rows(s.get(base, params={"order": "desc"}).json(), "message")]
    assert desc == [f"m{i}" for i in range(104, 4, -1)]
    first_page = [m["content"] for m in rows(s.get(base, params={"page": 1}).json(), "message")]
    assert first_page == [f"m{i}" for i in range(0, 100)]


def test_messages_paging_and_order(emu: DeskieEmulator, s: requests.Session) -> None:
    case = new_case(emu, s, content="m0")
    for i in range(1, 7):
        emu.agent_reply(case["case_id"], f"m{i}")
    base = f"{emu.url}/api/cases/{case['case_id']}/messages.json"
    p2 = s.get(base, params={"page": 2, "limit": 3}).json()
    assert [m["content"] for m in rows(p2, "message")] == ["m3", "m4", "m5"] and p2["total_count"] == 7
    d1 = s.get(base, params={"order": "desc", "limit": 2}).json()
    assert [m["content"] for m in rows(d1, "message")] == ["m6", "m5"]
    fields = {
        "message_id",
        "user_id",
        "staff_id",
        "content",
        "content_html",
        "attachments",
        "note",
        "sent_via_rule",
        "created_at",
        "sent_at",
    }
    assert fields <= set(rows(d1, "message")[0])


def test_note_is_a_message_with_note_flag(emu: DeskieEmulator, s: requests.Session) -> None:
    case = new_case(emu, s)
    emu.advance_clock(30)
    r = s.post(f"{emu.url}/api/cases/{case['case_id']}/note.json", json={"note": {"content": "internal"}})
    assert r.status_code == 201
    note = r.json()["message"]
    assert note["note"] is True and note["staff_id"] > 0
    after = emu.get_case(case["case_id"])
    assert after["status"] == "open" and after["updated_at"] != case["updated_at"]


def test_multipart_message_with_attachment_and_size_limit(emu: DeskieEmulator, s: requests.Session) -> None:
    case = new_case(emu, s)
    url = f"{emu.url}/api/cases/{case['case_id']}/messages.json"
    r = s.post(
        url,
        data={"message[user_id]": str(case["user_id"]), "message[content]": "see file"},
        files={"message[attachments][0]": ("shot.png", b"\x89PNG-data", "image/png")},
    )
    assert r.status_code == 201, r.text
    att = r.json()["message"]["attachments"][0]
    assert (att["file_name"], att["file_size"], att["mime_type"]) == ("shot.png", 9, "image/png")
    assert requests.get(att["url"]).content == b"\x89PNG-data"
    big = b"x" * (25 * 1024 * 1024 + 1)
    r = s.post(
        url,
        data={"message[user_id]": str(case["user_id"]), "message[content]": "too big"},
        files={"message[attachments][0]": ("big.bin", big, "application/octet-stream")},
    )
    assert r.status_code == 400 and "error" in r.json()
    assert len(emu.messages(case["case_id"])) == 2


def test_multipart_create_case(emu: DeskieEmulator, s: requests.Session) -> None:
    r = s.post(
        f"{emu.url}/api/cases.json",
        data={
            "case[channel]": CH,
            "case[user_custom_id]": "mm:f",
            "case[user_full_name]": "F",
            "case[subject]": "files",
            "case[content]": "docs attached",
        },
        files={"case[attachments][1]": ("a.pdf", b"%PDF", "application/pdf")},
    )
    assert r.status_code == 201, r.text
    msg = emu.messages(r.json()["case"]["case_id"])[0]
    assert msg["attachments"][0]["file_name"] == "a.pdf"


# ----------------------------------------------------------- users, groups, staff, channels
def test_users_lookup_by_custom_id_and_channel(emu: DeskieEmulator, s: requests.Session) -> None:
    a = new_case(emu, s, "mm:abc")
    new_case(emu, s, "mm:abcd")
    data = s.get(
        f"{emu.url}/api/users.json", params={"user_custom_id": "^mm:abc^", "user_custom_channel": CH}
    ).json()
    assert data["total_count"] == 1 and rows(data, "user")[0]["user_id"] == a["user_id"]
    assert s.get(f"{emu.url}/api/users.json", params={"user_custom_id": "mm:abc"}).json()["total_count"] == 2
    one = s.get(f"{emu.url}/api/users/{a['user_id']}.json").json()["user"]
    assert one["user_custom_id"] == "mm:abc" and one["user_custom_channel"] == CH
    r = s.get(f"{emu.url}/api/users/424242.json")
    assert (r.status_code, r.json()) == (404, {"error": "user_not_found"})


def test_groups_staff_and_custom_channels(emu: DeskieEmulator, s: requests.Session, hook: Hook) -> None:
    emu.set_webhook_url(CH, hook.url)
    groups = rows(s.get(f"{emu.url}/api/groups.json").json(), "group")
    assert [g["group_title"] for g in groups] == ["Support"]
    assert (
        s.get(f"{emu.url}/api/groups/{groups[0]['group_id']}.json").json()["group"]["group_title"]
        == "Support"
    )
    assert s.get(f"{emu.url}/api/groups/1.json").json() == {"error": "group_not_found"}
    staff = rows(s.get(f"{emu.url}/api/staff.json").json(), "staff")
    assert [x["staff_email"] for x in staff] == [EMAIL, "alice@acme.io"]
    assert (
        s.get(f"{emu.url}/api/staff/{staff[1]['staff_id']}.json").json()["staff"]["staff_full_name"]
        == "Alice Agent"
    )
    chans = rows(s.get(f"{emu.url}/api/custom_channels.json").json(), "custom_channel")
    assert (
        chans[0]["channel_api_key"] == CH
        and chans[0]["webhook_url"] == hook.url
        and chans[0]["channel_id"] == 12
    )


# ------------------------------------------------------------------------ rate limit
def test_every_authenticated_response_has_rate_headers(emu: DeskieEmulator, s: requests.Session) -> None:
    r = s.get(f"{emu.url}/api/cases.json")
    assert r.headers["rate_limit_per_minute"] == "1500" and r.headers["api_calls_left"] == "1499"
    r = s.get(f"{emu.url}/api/cases/1.json")
    assert r.status_code == 404 and r.headers["api_calls_left"] == "1498"


def test_writes_cost_two(emu: DeskieEmulator, s: requests.Session) -> None:
    emu.set_rate_limit(100)
    s.get(f"{emu.url}/api/cases.json")
    new_case(emu, s)
    r = s.get(f"{emu.url}/api/cases.json")
    assert r.headers["api_calls_left"] == str(100 - 1 - 2 - 1)
    assert [e["cost"] for e in emu.request_log] == [1, 2, 1]


def test_over_budget_gets_429_with_retry_after_and_does_nothing(s: requests.Session) -> None:
    with DeskieEmulator(rate_limit_per_minute=5, window_seconds=2.0) as e:
        e.add_staff(EMAIL, "Bot", api_key=KEY)
        e.add_custom_channel(CH)
        new_case(e, s, "mm:1")
        new_case(e, s, "mm:2")  # 4 used, 1 left
        r = s.post(
            f"{e.url}/api/cases.json",
            json={"case": {"channel": CH, "user_custom_id": "mm:3", "content": "x"}},
        )
        assert (r.status_code, r.json()) == (429, {"error": "rate_limit_exceeded"})
        assert 1 <= int(r.headers["retry_after"]) <= 2 and r.headers["api_calls_left"] == "1"
        assert len(e.cases()) == 2
        r = s.get(f"{e.url}/api/cases.json")  # a GET still fits; exhausts the budget
        assert r.status_code == 200 and r.headers["api_calls_left"] == "0" and "retry_after" in r.headers
        assert s.get(f"{e.url}/api/cases.json").status_code == 429
        assert e.count_429 == 2
        assert [x["cost"] for x in e.request_log if x["status"] == 429] == [0, 0]
        time.sleep(int(r.headers["retry_after"]) + 0.05)
        assert (
            s.post(
                f"{e.url}/api/cases.json",
                json={"case": {"channel": CH, "user_custom_id": "mm:3", "content": "x"}},
            ).status_code
            == 201
        )


def test_403_rate_style_variant(s: requests.Session) -> None:
    # No evidence that Deskie answers a rate limit with 403 (reference §3): a variant only.
    with DeskieEmulator(rate_limit_per_minute=1, window_seconds=2.0, rate_limit_style="403") as e:
        e.add_staff(EMAIL, "Bot", api_key=KEY)
        assert s.get(f"{e.url}/api/cases.json").status_code == 200
        r = s.get(f"{e.url}/api/cases.json")
        assert (r.status_code, r.json()) == (403, {"error": "Rate limit exceeded"})
        assert int(r.headers["retry_after"]) >= 1 and e.count_429 == 1


# --------------------------------------------------------------------------- webhooks
def test_agent_reply_posts_form_encoded_webhook(emu: DeskieEmulator, s: requests.Session, hook: Hook) -> None:
    emu.set_webhook_url(CH, hook.url)
    case = new_case(emu, s, "mm:u1")
    assert emu.webhook_deliveries == []  # customer messages do not fire
    msg = emu.agent_reply(
        case["case_id"],
        html="<p>Hello <b>Jane</b></p>",
        attachments=[{"file_name": "a.txt", "mime_type": "text/plain", "data": b"abc"}],
    )
    emu.wait_for(lambda: hook.received)
    got = hook.received[0]
    assert got["content_type"].startswith("application/x-www-form-urlencoded")
    body = got["body"]
    assert body["type"] == "message_new"
    assert body["object[case_id]"] == str(case["case_id"])
    assert body["object[case_number]"] == case["case_number"]
    assert body["object[message_id]"] == str(msg["message_id"])
    assert body["object[custom_user_id]"] == "mm:u1"
    assert body["object[user_id]"] == str(case["user_id"])
    assert body["object[staff_id]"] == str(msg["staff_id"])
    assert body["object[content]"] == "Hello Jane"
    assert body["object[content_html]"] == "<p>Hello <b>Jane</b></p>"
    assert body["object[note]"] == "0" and body["object[sent_via_rule]"] == "0"
    assert body["object[attachments][0][file_name]"] == "a.txt"
    assert requests.get(body["object[attachments][0][url]"]).content == b"abc"
    d = emu.wait_for(lambda: emu.webhook_deliveries)[0]
    assert (d["case_id"], d["message_id"], d["status"]) == (case["case_id"], msg["message_id"], 200)
    assert emu.get_case(case["case_id"])["status"] == "waiting"


def test_plain_agent_reply_webhook_has_no_content_html(
    emu: DeskieEmulator, s: requests.Session, hook: Hook
) -> None:
    emu.set_webhook_url(CH, hook.url)
    case = new_case(emu, s)
    emu.agent_reply(case["case_id"], "plain")
    body = emu.wait_for(lambda: hook.received)[0]["body"]
    assert body["object[content]"] == "plain" and "object[content_html]" not in body


def test_note_webhook_has_note_flag(emu: DeskieEmulator, s: requests.Session, hook: Hook) -> None:
    emu.set_webhook_url(CH, hook.url)
    case = new_case(emu, s)
    emu.agent_reply(case["case_id"], "internal only", note=True)
    body = emu.wait_for(lambda: hook.received)[0]["body"]
    assert body["object[note]"] == "1"
    assert emu.get_case(case["case_id"])["status"] == "open"


def test_api_staff_reply_fires_webhook(emu: DeskieEmulator, s: requests.Session, hook: Hook) -> None:
    emu.set_webhook_url(CH, hook.url)
    case = new_case(emu, s)
    sid = emu.state.default_staff().staff_id
    s.post(
        f"{emu.url}/api/cases/{case['case_id']}/messages.json",
        json={"message": {"staff_id": sid, "content": "A"}},
    )
    assert emu.wait_for(lambda: hook.received)[0]["body"]["object[content]"] == "A"


def test_webhook_json_format(emu: DeskieEmulator, s: requests.Session, hook: Hook) -> None:
    emu.set_webhook_url(CH, hook.url)
    emu.webhook_format = "json"
    case = new_case(emu, s)
    emu.agent_reply(case["case_id"], "json please")
    got = emu.wait_for(lambda: hook.received)[0]
    assert got["content_type"].startswith("application/json")
    assert got["body"]["type"] == "message_new"
    assert (
        got["body"]["object"]["case_id"] == case["case_id"]
        and got["body"]["object"]["content"] == "json please"
    )


def test_webhook_retries_then_records_failure(emu: DeskieEmulator, s: requests.Session) -> None:
    failing = Hook(status=500)
    try:
        emu.set_webhook_url(CH, failing.url)
        case = new_case(emu, s)
        emu.agent_reply(case["case_id"], "retry me")
        deliveries = emu.wait_for(lambda: len(emu.webhook_deliveries) >= 3 and emu.webhook_deliveries)
        assert [d["status"] for d in deliveries] == [500, 500, 500] and len(failing.received) == 3
    finally:
        failing.close()


def test_webhook_connection_error_is_recorded(emu: DeskieEmulator, s: requests.Session) -> None:
    dead = Hook()
    url = dead.url
    dead.close()
    emu.webhook_retries = 0
    emu.set_webhook_url(CH, url)
    case = new_case(emu, s)
    emu.agent_reply(case["case_id"], "nobody home")
    assert emu.wait_for(lambda: emu.webhook_deliveries)[0]["status"] == "error"


def test_webhook_disabled_suppresses_delivery(emu: DeskieEmulator, s: requests.Session, hook: Hook) -> None:
    emu.set_webhook_url(CH, hook.url)
    emu.set_webhook_enabled(False)
    case = new_case(emu, s)
    emu.agent_reply(case["case_id"], "missed")
    emu.set_webhook_enabled(True)
    emu.agent_reply(case["case_id"], "seen")
    emu.wait_for(lambda: hook.received)
    time.sleep(0.1)
    assert [h["body"]["object[content]"] for h in hook.received] == ["seen"]
    assert len(emu.messages(case["case_id"])) == 3


def test_outgoing_case_fires_webhook_with_unseen_case_id(emu: DeskieEmulator, hook: Hook) -> None:
    emu.set_webhook_url(CH, hook.url)
    case = emu.create_outgoing_case(CH, "mm:new", "New Person", "We have news", subject="Heads-up")
    assert case["status"] == "waiting" and case["subject"] == "Heads-up"
    msgs = emu.messages(case["case_id"])
    assert len(msgs) == 1 and msgs[0]["staff_id"] > 0 and msgs[0]["user_id"] == 0
    body = emu.wait_for(lambda: hook.received)[0]["body"]
    assert body["object[case_id]"] == str(case["case_id"]) and body["object[custom_user_id]"] == "mm:new"


# ----------------------------------------------------------------------------- faults
def test_fail_next_returns_5xx_and_does_nothing(emu: DeskieEmulator, s: requests.Session) -> None:
    emu.fail_next(2, status=502)
    body = {"case": {"channel": CH, "user_custom_id": "mm:1", "content": "x"}}
    for _ in range(2):
        r = s.post(f"{emu.url}/api/cases.json", json=body)
        assert (r.status_code, r.json()) == (502, {"error": "internal_error"})
    assert emu.cases() == []
    assert s.post(f"{emu.url}/api/cases.json", json=body).status_code == 201
    assert emu.writes() == 1


def test_hang_next(emu: DeskieEmulator, s: requests.Session) -> None:
    emu.hang_next(1, seconds=0.4)
    t0 = time.monotonic()
    r = s.get(f"{emu.url}/api/cases.json")
    assert r.status_code == 504 and time.monotonic() - t0 >= 0.35
    emu.hang_next(1, seconds=5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        s.get(f"{emu.url}/api/cases.json", timeout=0.3)
    emu.clear_faults()
    assert s.get(f"{emu.url}/api/cases.json").status_code == 200


def test_throttle_next_and_outage(emu: DeskieEmulator, s: requests.Session) -> None:
    emu.throttle_next(1, retry_after=7)
    r = s.get(f"{emu.url}/api/cases.json")
    assert r.status_code == 429 and r.headers["retry_after"] == "7"
    assert emu.count_429 == 1
    emu.outage(0.5, kind="403rate")
    r = s.get(f"{emu.url}/api/cases.json")
    assert (r.status_code, r.json()) == (403, {"error": "Rate limit exceeded"})
    time.sleep(0.55)
    emu.outage(0.3, kind="5xx")
    assert s.get(f"{emu.url}/api/cases.json").status_code == 503
    time.sleep(0.35)
    assert s.get(f"{emu.url}/api/cases.json").status_code == 200
    assert emu.count_429 == 2


def test_writes_counter_and_request_log(emu: DeskieEmulator, s: requests.Session) -> None:
    a, b = new_case(emu, s, "mm:a"), new_case(emu, s, "mm:b")
    s.post(
        f"{emu.url}/api/cases/{a['case_number']}/messages.json",
        json={"message": {"user_id": a["user_id"], "content": "1"}},
    )
    s.put(f"{emu.url}/api/cases/{a['case_id']}.json", json={"case": {"status": "closed"}})
    s.post(
        f"{emu.url}/api/cases/{a['case_id']}/messages.json",
        json={"message": {"user_id": a["user_id"], "content": "2"}},
    )
    s.get(f"{emu.url}/api/cases/{a['case_id']}.json")
    assert emu.writes(a["case_id"]) == 2  # the refused post (case_closed) does not count
    assert emu.writes(b["case_id"]) == 0
    assert emu.writes() == 4
    log = emu.request_log
    assert log[-1]["method"] == "GET" and log[-1]["status"] == 200 and log[-1]["cost"] == 1
    emu.clear_request_log()
    assert emu.request_log == [] and emu.writes() == 0


def test_http_control_endpoints(emu: DeskieEmulator, s: requests.Session, hook: Hook) -> None:
    r = requests.post(f"{emu.url}/_emu/webhook", json={"channel": CH, "url": hook.url, "enabled": True})
    assert r.status_code == 200
    case = new_case(emu, s)
    r = requests.post(f"{emu.url}/_emu/agent_reply", json={"case_id": case["case_id"], "content": "via http"})
    assert r.status_code == 200 and r.json()["message"]["content"] == "via http"
    emu.wait_for(lambda: hook.received)
    msgs = requests.get(f"{emu.url}/_emu/cases/{case['case_id']}/messages").json()["messages"]
    assert [m["content"] for m in msgs] == ["Hello", "via http"]
    r = requests.post(
        f"{emu.url}/_emu/outgoing_case",
        json={"channel": CH, "user_custom_id": "mm:z", "user_full_name": "Z", "content": "ping"},
    )
    assert r.status_code == 200
    assert len(requests.get(f"{emu.url}/_emu/cases").json()["cases"]) == 2
    assert (
        requests.post(f"{emu.url}/_emu/close_case", json={"case_id": case["case_id"]}).json()["case"][
            "status"
        ]
        == "closed"
    )
    assert (
        requests.post(f"{emu.url}/_emu/faults", json={"kind": "fail", "n": 1, "status": 500}).status_code
        == 200
    )
    assert s.get(f"{emu.url}/api/cases.json").status_code == 500
    requests.post(f"{emu.url}/_emu/faults", json={"kind": "throttle", "n": 1, "retry_after": 3})
    assert s.get(f"{emu.url}/api/cases.json").status_code == 429
    counters = requests.get(f"{emu.url}/_emu/counters").json()
    assert counters["count_429"] == 1 and counters["writes"] == 1 and counters["webhook_deliveries"] >= 1
    assert (
        requests.post(f"{emu.url}/_emu/agent_reply", json={"case_id": 1, "content": "x"}).status_code == 404
    )


def test_control_calls_are_thread_safe(emu: DeskieEmulator, s: requests.Session) -> None:
    case = new_case(emu, s)
    errors: list[BaseException] = []

    def spam(n: int) -> None:
        try:
            for i in range(30):
                emu.agent_reply(case["case_id"], f"{n}-{i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=spam, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for _ in range(10):
        assert s.get(f"{emu.url}/api/cases/{case['case_id']}/messages.json").status_code == 200
    for t in threads:
        t.join()
    ids = [m["message_id"] for m in emu.messages(case["case_id"])]
    assert not errors and len(ids) == 121 and ids == sorted(set(ids))
