"""The Mattermost emulator's REST fault switches, seen through a client nobody here wrote."""

from __future__ import annotations

import time

import pytest
import requests
from mattermostautodriver import TypedDriver
from mattermostautodriver.exceptions import TooManyRequests

from deskie_mm_bot.sandbox.mattermost import MattermostEmulator


@pytest.fixture
def emu() -> MattermostEmulator:
    with MattermostEmulator() as mm:
        yield mm


def driver(mm: MattermostEmulator, token: str, retries: int = 3) -> TypedDriver:
    d = TypedDriver({"url": "127.0.0.1", "port": int(mm.url.rsplit(":", 1)[1]), "scheme": "http",
                     "token": token, "max_retries": retries, "request_timeout": 10})
    d.login()
    return d


def test_429_is_plain_text_with_retry_after_and_the_driver_waits_it_out(emu: MattermostEmulator) -> None:
    bot, token = emu.add_bot("bot")
    d = driver(emu, token)
    emu.throttle_rest_next(1, retry_after=1)
    started = time.monotonic()
    assert d.users.get_user("me")["id"] == bot["id"]
    assert time.monotonic() - started >= 0.9
    statuses = [e["status"] for e in emu.request_log if e["path"] == "/api/v4/users/me"]
    assert statuses[-2:] == [429, 200]


def test_429_without_retries_raises_too_many_requests(emu: MattermostEmulator) -> None:
    _, token = emu.add_bot("bot")
    d = driver(emu, token, retries=0)
    emu.throttle_rest_next(1, retry_after=1)
    with pytest.raises(TooManyRequests):
        d.users.get_user("me")


def test_failed_request_does_nothing(emu: MattermostEmulator) -> None:
    bot, token = emu.add_bot("bot")
    user = emu.add_user("jane")
    dm = emu.direct_channel(bot["id"], user["id"])
    emu.fail_rest_next(1, status=500)
    r = requests.post(f"{emu.url}/api/v4/posts", json={"channel_id": dm["id"], "message": "x"},
                      headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert r.status_code == 500 and r.headers["Content-Type"] == "application/json"
    assert set(r.json()) >= {"id", "message", "request_id", "status_code"}
    assert emu.posts_in(dm["id"]) == []


def test_outage_covers_every_request_until_it_ends(emu: MattermostEmulator) -> None:
    _, token = emu.add_bot("bot")
    h = {"Authorization": f"Bearer {token}"}
    emu.rest_outage(0.5, "5xx")
    assert requests.get(f"{emu.url}/api/v4/users/me", headers=h, timeout=5).status_code == 503
    time.sleep(0.6)
    assert requests.get(f"{emu.url}/api/v4/users/me", headers=h, timeout=5).status_code == 200


def test_hang_answers_504_after_the_wait(emu: MattermostEmulator) -> None:
    _, token = emu.add_bot("bot")
    emu.hang_rest_next(1, seconds=0.3)
    started = time.monotonic()
    r = requests.get(f"{emu.url}/api/v4/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert r.status_code == 504 and time.monotonic() - started >= 0.3
