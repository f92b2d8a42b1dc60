"""The webhook answers hostile or broken input with a 4xx, and a service outage with a 503,
never with aiohttp's 500; and the bot keeps working afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable

import requests

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import BotProcess, cases_of, wait_for

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def _post(world: World, body: bytes, ctype: str) -> requests.Response:
    return requests.post(world.webhook_url, data=body, headers={"Content-Type": ctype}, timeout=60)


def test_hostile_webhook_bodies_get_a_4xx_not_a_500(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "a case to aim at")
    case_id = wait_for(lambda: cases_of(world), what="a case")[0]["case_id"]
    hostile = {
        "deeply nested JSON array": (b"[" * 100_000 + b"]" * 100_000, JSON),
        "deeply nested JSON object": (b'{"object":' * 50_000 + b"1" + b"}" * 50_000, JSON),
        "case_id beyond 64 bits": (json.dumps({"type": "message_new", "object": {"case_id": 10**30}}).encode(), JSON),
        "attachment index of 5000 digits": (
            b"type=message_new&object[case_id]=99&object[attachments][" + b"9" * 5000 + b"][url]=x", FORM),
        "message_id beyond 64 bits on a known case": (json.dumps(
            {"type": "message_new", "object": {"case_id": case_id, "message_id": 10**30, "content": "x"}}).encode(), JSON),
        "negative message_id on a known case": (json.dumps(
            {"type": "message_new", "object": {"case_id": case_id, "message_id": -7, "content": "x"}}).encode(), JSON),
    }
    for name, (body, ctype) in hostile.items():
        r = _post(world, body, ctype)
        assert 400 <= r.status_code < 500, f"{name}: HTTP {r.status_code} {r.text[:200]}"
    assert bot.proc is not None and bot.proc.poll() is None
    assert bot.healthy()
    assert "Traceback" not in bot.log()


def test_outgoing_case_while_mattermost_is_down_is_a_503(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot().start()
    world.mm.rest_outage(60)
    body = json.dumps({"type": "message_new", "object": {
        "case_id": 4242, "message_id": 1, "custom_user_id": f"u:{world.jane['id']}", "content": "hello"}}).encode()
    r = _post(world, body, JSON)
    assert r.status_code == 503, r.text
    assert bot.proc is not None and bot.proc.poll() is None
    assert "Traceback" not in bot.log()
