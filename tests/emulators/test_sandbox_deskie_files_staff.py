"""The Deskie emulator's staff lookup, message files at their URLs (also behind Basic auth, a variant),
rules' messages without staff, and customers' messages carrying `content_html`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from deskie_mm_bot.sandbox.deskie import DeskieEmulator
from tests.emulators.test_sandbox_deskie import CH, EMAIL, KEY, Hook, new_case

__all__ = ["Hook"]


@pytest.fixture
def emu() -> Iterator[DeskieEmulator]:
    with DeskieEmulator() as e:
        e.add_staff(EMAIL, "Relay Bot", api_key=KEY)
        e.add_group("Support")
        e.add_custom_channel(CH, "Mattermost")
        yield e


@pytest.fixture
def s() -> Iterator[requests.Session]:
    with requests.Session() as sess:
        sess.auth = (EMAIL, KEY)
        yield sess


def test_staff_by_id_and_paged_list(emu: DeskieEmulator, s: requests.Session) -> None:
    anna = emu.add_staff("anna@acme.io", "Anna Smith")
    one = s.get(f"{emu.url}/api/staff/{anna['staff_id']}.json")
    assert one.status_code == 200 and one.json()["staff"]["staff_full_name"] == "Anna Smith"
    assert s.get(f"{emu.url}/api/staff/999999.json").json() == {"error": "staff_not_found"}
    page = s.get(f"{emu.url}/api/staff.json", params={"limit": 1, "page": 2}).json()
    assert page["total_count"] == 2 and page["0"]["staff"]["staff_id"] == anna["staff_id"]


def test_message_files_are_served_at_their_urls(emu: DeskieEmulator, s: requests.Session) -> None:
    case = new_case(emu, s)
    msg = emu.agent_reply(case["case_id"], content="see attached",
                          attachments=[{"file_name": "price list.pdf", "data": b"%PDF", "mime_type": "application/pdf"}])
    (att,) = msg["attachments"]
    assert set(att) == {"file_id", "file_name", "file_size", "mime_type", "url"}
    assert att["url"].endswith("/price%20list.pdf") and att["file_size"] == 4
    got = requests.get(att["url"], timeout=5)
    assert got.status_code == 200 and got.content == b"%PDF" and got.headers["Content-Type"] == "application/pdf"
    emu.delete_file(att["file_id"])
    assert requests.get(att["url"], timeout=5).status_code == 404


def test_file_urls_can_need_the_api_credentials(emu: DeskieEmulator, s: requests.Session) -> None:
    emu.variants.file_urls_need_auth = True
    case = new_case(emu, s)
    msg = emu.agent_reply(case["case_id"], content="x", attachments=[{"file_name": "a.txt", "data": b"abc"}])
    url = msg["attachments"][0]["url"]
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=(EMAIL, "wrong"), timeout=5).status_code == 401
    assert s.get(url).content == b"abc"
    assert emu.file_downloads == [msg["attachments"][0]["file_id"]]


def test_a_rules_message_has_no_staff(emu: DeskieEmulator, s: requests.Session) -> None:
    hook = Hook()
    try:
        emu.set_webhook_url(CH, hook.url)
        case = new_case(emu, s)
        msg = emu.rule_message(case["case_id"], "We are closed on Sundays.")
        assert msg["staff_id"] == 0 and msg["sent_via_rule"] is True
        emu.wait_for(lambda: hook.received)
        body = hook.received[0]["body"]
        assert body["object[staff_id]"] == "0" and body["object[sent_via_rule]"] == "1"
    finally:
        hook.close()


def test_a_customer_message_keeps_its_html(emu: DeskieEmulator, s: requests.Session) -> None:
    case = new_case(emu, s, content="**hi**", content_html="<p><strong>hi</strong></p>")
    (msg,) = emu.messages(case["case_id"])
    assert (msg["content"], msg["content_html"]) == ("**hi**", "<p><strong>hi</strong></p>")
