"""The Deskie API client over a mocked transport (`responses`): auth, bodies, lists, errors, retries, rate limits.

The client gets a recording `sleep` and a budget on a fake clock, so no test waits for a real backoff or pause.
Rate-limit pauses are observed from the test thread while the request thread is held by the budget.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import pytest
import requests
import responses

from deskie_mm_bot.deskie.client import (
    DeskieAuthError,
    DeskieClient,
    DeskieRejected,
    DeskieUnavailable,
    find_group,
    unwrap_list,
)
from deskie_mm_bot.deskie.ratebudget import RateBudget
from tests.support.fakes import FakeClock

pytestmark = pytest.mark.timeout(10)

BASE = "https://acme.deskie.io"
EMAIL = "bot-agent@acme.com"
API_KEY = "k3y-SUPER-secret-0123456789"


class Env:
    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.rsps = rsps
        self.clock = FakeClock(5000.0)
        self.budget = RateBudget(clock=self.clock)
        self.clock.budget = self.budget
        self.sleeps: list[float] = []
        self.client = DeskieClient(BASE, EMAIL, API_KEY, budget=self.budget, sleep=self.sleeps.append)

    @property
    def calls(self) -> list[Any]:
        return list(self.rsps.calls)


@pytest.fixture
def env():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        e = Env(rsps)
        yield e
        e.client.session.close()


def wait_until(predicate, timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


class Call(threading.Thread):
    """Runs one client call in the background; the budget may hold it during a rate-limit pause."""

    def __init__(self, fn) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as e:  # reported to the test
            self.error = e

    def finish(self) -> Any:
        self.join(3)
        assert not self.is_alive(), "call did not finish"
        if self.error is not None:
            raise self.error
        return self.result


CASE = {"case_id": 2000, "case_number": "664-245651", "user_id": 123, "status": "open"}


# ---- auth and bodies ------------------------------------------------------------------------------


def test_requests_carry_basic_auth_with_staff_email_and_api_key(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases/2000.json", json={"case": CASE})
    env.client.get_case(2000)
    expected = "Basic " + base64.b64encode(f"{EMAIL}:{API_KEY}".encode()).decode()
    assert env.calls[0].request.headers["Authorization"] == expected


def test_create_case_sends_root_key_json_and_unwraps_answer(env: Env) -> None:
    env.rsps.post(f"{BASE}/api/cases.json", json={"case": CASE}, status=201)
    case = env.client.create_case(
        channel="cch12",
        user_custom_id="u:abc",
        user_full_name="Jane Doe (@jane)",
        group_id=44,
        subject="Hello",
        content="Hello, I need help",
    )
    assert case == CASE
    req = env.calls[0].request
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.body) == {
        "case": {
            "channel": "cch12",
            "user_custom_id": "u:abc",
            "user_full_name": "Jane Doe (@jane)",
            "group_id": 44,
            "subject": "Hello",
            "content": "Hello, I need help",
        }
    }


def test_add_user_message_wraps_in_message_root_key(env: Env) -> None:
    env.rsps.post(f"{BASE}/api/cases/2000/messages.json", json={"message": {"message_id": 9, "user_id": 123}})
    msg = env.client.add_user_message(2000, 123, "more details")
    assert msg["message_id"] == 9
    assert json.loads(env.calls[0].request.body) == {"message": {"user_id": 123, "content": "more details"}}


def test_set_case_status_puts_case_root_key(env: Env) -> None:
    env.rsps.put(f"{BASE}/api/cases/2000.json", json={"case": {**CASE, "status": "waiting"}})
    assert env.client.set_case_status(2000, "waiting")["status"] == "waiting"
    assert json.loads(env.calls[0].request.body) == {"case": {"status": "waiting"}}


def test_add_note_sends_note_root_key(env: Env) -> None:
    env.rsps.post(f"{BASE}/api/cases/2000/note.json", json={"message": {"message_id": 77, "note": True}})
    assert env.client.add_note(2000, "edited")["message_id"] == 77
    assert json.loads(env.calls[0].request.body) == {"note": {"content": "edited"}}


def test_multipart_upload_uses_bracketed_message_field_names(env: Env) -> None:
    env.rsps.post(f"{BASE}/api/cases/2000/messages.json", json={"message": {"message_id": 10}})
    env.client.add_user_message(
        2000, 123, "see files", files=[("a.txt", b"alpha", "text/plain"), ("b.png", b"\x89PNG", "image/png")]
    )
    req = env.calls[0].request
    assert req.headers["Content-Type"].startswith("multipart/form-data")
    body = req.body if isinstance(req.body, bytes) else req.body.encode()
    assert b'name="message[attachments][0]"; filename="a.txt"' in body
    assert b'name="message[attachments][1]"; filename="b.png"' in body
    assert b'name="message[content]"' in body and b"see files" in body
    assert b'name="message[user_id]"' in body
    assert b"alpha" in body


def test_multipart_create_case_uses_case_prefix(env: Env) -> None:
    env.rsps.post(f"{BASE}/api/cases.json", json={"case": CASE})
    env.client.create_case(
        channel="cch12",
        user_custom_id="c:chan",
        user_full_name="Support (~support)",
        group_id=44,
        subject="S",
        content="C",
        files=[("doc.pdf", b"%PDF", "application/pdf")],
    )
    body = env.calls[0].request.body
    assert b'name="case[attachments][0]"; filename="doc.pdf"' in body
    assert b'name="case[channel]"' in body and b"cch12" in body
    assert b'name="case[user_custom_id]"' in body


# ---- lists ------------------------------------------------------------------------------------------


def test_unwrap_list_reads_object_keyed_rows_in_numeric_order() -> None:
    data = {str(i): {"case": {"case_id": i}} for i in range(12)}
    data["total_count"] = 30
    page = unwrap_list(data, "case")
    assert [c["case_id"] for c in page.items] == list(range(12))
    assert page.total_count == 30


def test_unwrap_list_empty_page() -> None:
    page = unwrap_list({"total_count": 0}, "case")
    assert page.items == [] and page.total_count == 0


def test_unwrap_list_without_total_count_counts_rows() -> None:
    page = unwrap_list({"0": {"group": {"group_id": 1}}, "1": {"group": {"group_id": 2}}}, "group")
    assert page.total_count == 2 and [g["group_id"] for g in page.items] == [1, 2]


def test_list_messages_unwraps_rows(env: Env) -> None:
    env.rsps.get(
        f"{BASE}/api/cases/2000/messages.json",
        json={"0": {"message": {"message_id": 5}}, "1": {"message": {"message_id": 6}}, "total_count": 2},
    )
    page = env.client.list_messages(2000)
    assert [m["message_id"] for m in page.items] == [5, 6] and page.total_count == 2


def _paged_cases(total: int):
    seen_pages: list[tuple[int, int]] = []

    def callback(request: requests.PreparedRequest):
        from urllib.parse import parse_qs, urlparse

        q = parse_qs(urlparse(request.url).query)
        page, limit = int(q["page"][0]), int(q["limit"][0])
        seen_pages.append((page, limit))
        start = (page - 1) * limit
        rows = {
            str(i): {"case": {"case_id": start + i + 1}} for i in range(max(0, min(limit, total - start)))
        }
        rows["total_count"] = total  # type: ignore[assignment]
        return 200, {}, json.dumps(rows)

    return callback, seen_pages


def test_iter_cases_pages_until_total_count(env: Env) -> None:
    callback, pages = _paged_cases(total=5)
    env.rsps.add_callback(responses.GET, f"{BASE}/api/cases.json", callback=callback)
    ids = [c["case_id"] for c in env.client.iter_cases(limit=2, channel="cch12")]
    assert ids == [1, 2, 3, 4, 5]
    assert pages == [(1, 2), (2, 2), (3, 2)]
    assert all("channel=cch12" in c.request.url for c in env.calls)


def test_iter_cases_stops_at_exact_total_without_an_extra_call(env: Env) -> None:
    callback, pages = _paged_cases(total=4)
    env.rsps.add_callback(responses.GET, f"{BASE}/api/cases.json", callback=callback)
    assert len(list(env.client.iter_cases(limit=2))) == 4
    assert pages == [(1, 2), (2, 2)]


def test_iter_cases_stops_when_the_server_ignores_page(env: Env) -> None:
    first_page = {str(i): {"case": {"case_id": i + 1}} for i in range(2)}
    env.rsps.get(f"{BASE}/api/cases.json", json={**first_page, "total_count": 5})
    assert [c["case_id"] for c in env.client.iter_cases(limit=2)] == [1, 2]
    assert len(env.calls) == 2  # page 2 repeated page 1: no third call, nothing doubled


def test_iter_cases_empty(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases.json", json={"total_count": 0})
    assert list(env.client.iter_cases()) == []
    assert len(env.calls) == 1


GROUPS = [
    {"group_id": 44, "group_title": "Support"},
    {"group_id": 45, "group_title": "Support Team"},
    {"group_id": 46, "group_title": "44"},
]


def test_find_group_by_id() -> None:
    assert find_group(GROUPS, "45")["group_title"] == "Support Team"
    assert find_group(GROUPS, " 44 ")["group_title"] == "Support"


def test_find_group_by_exact_title_only() -> None:
    assert find_group(GROUPS, "Support")["group_id"] == 44
    assert find_group(GROUPS, "Support Team")["group_id"] == 45
    assert find_group(GROUPS, "support") is None
    assert find_group(GROUPS, "Supp") is None


def test_find_group_prefers_id_over_a_title_that_looks_like_an_id() -> None:
    assert find_group(GROUPS, "44")["group_id"] == 44


def test_list_groups_through_client(env: Env) -> None:
    env.rsps.get(
        f"{BASE}/api/groups.json",
        json={"0": {"group": GROUPS[0]}, "1": {"group": GROUPS[1]}, "total_count": 2},
    )
    assert find_group(env.client.list_groups(), "Support Team")["group_id"] == 45


# ---- rate limiting ------------------------------------------------------------------------------------


def _paused_then_resent(env: Env, first: dict[str, Any], expected_pause: float) -> dict[str, Any]:
    env.rsps.get(f"{BASE}/api/cases/2000.json", **first)
    env.rsps.get(f"{BASE}/api/cases/2000.json", json={"case": CASE})
    call = Call(lambda: env.client.get_case(2000))
    call.start()
    wait_until(lambda: env.budget.paused_for() > 0)
    assert env.budget.paused_for() == pytest.approx(expected_pause)
    time.sleep(0.02)
    assert len(env.calls) == 1, "the request must not be re-sent before the pause ends"
    assert call.is_alive()
    env.clock.advance(expected_pause)
    result = call.finish()
    assert len(env.calls) == 2
    return result


def test_429_pauses_and_resends(env: Env) -> None:
    result = _paused_then_resent(env, {"status": 429, "headers": {"retry_after": "7"}, "body": ""}, 7)
    assert result == CASE
    assert env.sleeps == [], "the pause is the budget's, not a backoff sleep"


def test_403_rate_limit_exceeded_body_pauses_and_resends(env: Env) -> None:
    result = _paused_then_resent(
        env, {"status": 403, "headers": {"retry_after": "4"}, "json": {"error": "Rate limit exceeded"}}, 4
    )
    assert result == CASE


def test_403_rate_limit_exceeded_without_retry_after_still_resends(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases/2000.json", status=403, body="rate limit exceeded")
    env.rsps.get(f"{BASE}/api/cases/2000.json", json={"case": CASE})
    call = Call(lambda: env.client.get_case(2000))
    call.start()
    wait_until(lambda: env.budget.paused_for() > 0)
    env.clock.advance(env.budget.paused_for())
    assert call.finish() == CASE


def test_retry_after_header_read_case_insensitively(env: Env) -> None:
    assert _paused_then_resent(env, {"status": 429, "headers": {"Retry_After": "9"}}, 9) == CASE


def test_standard_retry_after_header_accepted(env: Env) -> None:
    assert _paused_then_resent(env, {"status": 429, "headers": {"Retry-After": "3"}}, 3) == CASE


def test_429_on_post_is_resent_not_reported(env: Env) -> None:
    env.rsps.post(f"{BASE}/api/cases/2000/messages.json", status=429, headers={"retry_after": "2"})
    env.rsps.post(f"{BASE}/api/cases/2000/messages.json", json={"message": {"message_id": 3}})
    call = Call(lambda: env.client.add_user_message(2000, 123, "hi"))
    call.start()
    wait_until(lambda: env.budget.paused_for() > 0)
    env.clock.advance(2)
    assert call.finish() == {"message_id": 3}
    assert len(env.calls) == 2
    assert env.calls[0].request.body == env.calls[1].request.body


def test_api_calls_left_header_read_case_insensitively(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases/2000.json", json={"case": CASE}, headers={"API_CALLS_LEFT": "1"})
    env.client.get_case(2000)
    assert env.budget.available() == 1


def test_rate_limit_per_minute_header_learned(env: Env) -> None:
    env.rsps.get(
        f"{BASE}/api/cases/2000.json",
        json={"case": CASE},
        headers={"rate_limit_per_minute": "750", "api_calls_left": "700"},
    )
    env.client.get_case(2000)
    assert env.budget.limit == 750
    assert env.budget.available() == 700


# ---- errors ---------------------------------------------------------------------------------------------


def test_plain_403_is_a_credentials_error_naming_the_staff_email(env: Env) -> None:
    # 403 = wrong staff login, or no permission (reference §3): stop and say what to fix, never a
    # per-message refusal that would mark a customer's message failed.
    env.rsps.put(f"{BASE}/api/cases/2000.json", status=403, json={"error": "staff_has_not_access"})
    with pytest.raises(DeskieAuthError) as ei:
        env.client.set_case_status(2000, "open")
    assert "deskie.staff_email" in str(ei.value) and API_KEY not in str(ei.value)
    assert len(env.calls) == 1
    assert env.budget.paused_for() == 0


def test_401_names_the_api_key_and_staff_not_active_names_the_agent(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases/2000.json", status=401, json={"error": "unauthorized"})
    env.rsps.post(f"{BASE}/api/cases/2000/messages.json", status=400, json={"error": "staff_not_active"})
    with pytest.raises(DeskieAuthError, match="deskie.api_key"):
        env.client.get_case(2000)
    with pytest.raises(DeskieAuthError, match="not active"):
        env.client.add_user_message(2000, 1, "hello")


def test_case_lists_always_ask_for_active_chats(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases.json", json={"case": []})
    page = env.client.list_cases(channel="cch12")
    assert page.items == [] and page.total_count == 0
    assert "show_active_chats=true" in env.calls[0].request.url


def test_401_raises_auth_error_without_the_api_key(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases/2000.json", status=401, json={"error": "unauthorized"})
    with pytest.raises(DeskieAuthError) as ei:
        env.client.get_case(2000)
    assert API_KEY not in str(ei.value) and API_KEY not in repr(ei.value)
    assert API_KEY not in (env.client.last_error or "")
    assert len(env.calls) == 1


def test_404_case_not_found_is_rejected_as_not_found(env: Env) -> None:
    env.rsps.post(f"{BASE}/api/cases/999/messages.json", status=404, json={"error": "case_not_found"})
    with pytest.raises(DeskieRejected) as ei:
        env.client.add_user_message(999, 1, "hello")
    assert ei.value.not_found
    assert ei.value.code == "case_not_found" and ei.value.status == 404
    assert len(env.calls) == 1


def test_case_not_found_code_counts_as_not_found_under_another_status(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases/999.json", status=400, json={"error": "case_not_found"})
    with pytest.raises(DeskieRejected) as ei:
        env.client.get_case(999)
    assert ei.value.not_found


def test_get_5xx_is_retried_then_succeeds(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases/2000.json", status=502)
    env.rsps.get(f"{BASE}/api/cases/2000.json", status=503)
    env.rsps.get(f"{BASE}/api/cases/2000.json", json={"case": CASE})
    assert env.client.get_case(2000) == CASE
    assert len(env.calls) == 3
    assert len(env.sleeps) == 2 and all(s > 0 for s in env.sleeps)


def test_get_5xx_forever_gives_up_after_max_attempts(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases/2000.json", status=500)
    with pytest.raises(DeskieUnavailable) as ei:
        env.client.get_case(2000)
    assert len(env.calls) == env.client.max_read_attempts == 6
    assert len(env.sleeps) == 5
    assert ei.value.maybe_applied is False


def test_get_connection_error_is_retried(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases/2000.json", body=requests.ConnectionError("Connection refused"))
    env.rsps.get(f"{BASE}/api/cases/2000.json", json={"case": CASE})
    assert env.client.get_case(2000) == CASE
    assert len(env.calls) == 2 and len(env.sleeps) == 1


def test_post_5xx_is_unavailable_maybe_applied_and_not_retried(env: Env) -> None:
    env.rsps.post(f"{BASE}/api/cases.json", status=500)
    env.rsps.post(f"{BASE}/api/cases.json", json={"case": CASE})
    with pytest.raises(DeskieUnavailable) as ei:
        env.client.create_case(
            channel="cch12", user_custom_id="u:1", user_full_name="J", group_id=1, subject="s", content="c"
        )
    assert ei.value.maybe_applied is True
    assert len(env.calls) == 1
    assert env.sleeps == []


def test_post_connection_refused_is_unavailable_not_applied(env: Env) -> None:
    env.rsps.post(
        f"{BASE}/api/cases/2000/messages.json", body=requests.ConnectionError("[Errno 111] Connection refused")
    )
    with pytest.raises(DeskieUnavailable) as ei:
        env.client.add_user_message(2000, 123, "hello")
    assert ei.value.maybe_applied is False
    assert len(env.calls) == 1


def test_post_read_timeout_is_unavailable_maybe_applied(env: Env) -> None:
    env.rsps.post(f"{BASE}/api/cases/2000/messages.json", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(DeskieUnavailable) as ei:
        env.client.add_user_message(2000, 123, "hello")
    assert ei.value.maybe_applied is True
    assert len(env.calls) == 1


def test_a_response_broken_mid_body_does_not_leak_budget_and_is_a_maybe_applied_write(env: Env) -> None:
    """A connection cut while the body is read (ChunkedEncodingError) is neither a ConnectionError nor a
    Timeout. The units it took must be settled, or every such failure lowers the budget for good and,
    once the server's `api_calls_left` is known, all callers end up waiting forever."""
    # The server has told its window once: from now on the budget trusts it, minus what is in flight.
    env.rsps.get(f"{BASE}/api/cases/1.json", json={"case": {"case_id": 1}},
                 headers={"rate_limit_per_minute": "20", "api_calls_left": "19"})
    env.client.get_case(1)
    before = env.budget.available()
    env.rsps.post(f"{BASE}/api/cases/1/messages.json", body=requests.exceptions.ChunkedEncodingError("cut"))
    for _ in range(3):
        with pytest.raises(DeskieUnavailable) as err:
            env.client.add_user_message(1, 5, "hello")
        assert err.value.maybe_applied
    assert env.budget._in_flight == 0
    assert env.budget.available() >= before - 3 * 2


def test_empty_2xx_body_is_an_empty_dict(env: Env) -> None:
    env.rsps.delete(f"{BASE}/api/labels/5.json", body="")
    assert env.client.request("DELETE", "/api/labels/5.json") == {}


def test_non_json_success_is_unavailable(env: Env) -> None:
    env.rsps.get(f"{BASE}/api/cases/2000.json", body="<html>maintenance</html>")
    with pytest.raises(DeskieUnavailable):
        env.client.get_case(2000)


def test_rate_limit_resends_do_not_use_up_read_retries(env: Env) -> None:
    # retry_after 0: the budget does not pause, so the resends happen without waiting.
    for _ in range(env.client.max_read_attempts):
        env.rsps.get(f"{BASE}/api/cases/2000.json", status=429, headers={"retry_after": "0"})
    env.rsps.get(f"{BASE}/api/cases/2000.json", status=503)
    env.rsps.get(f"{BASE}/api/cases/2000.json", json={"case": CASE})
    assert env.client.get_case(2000) == CASE
    assert len(env.calls) == env.client.max_read_attempts + 2
