"""The sandbox console without a browser: the command that serves it, the server that forwards the page's
calls, and the emulator controls the page relies on (change feeds, snapshots, files, end chat, the plan)."""

from __future__ import annotations

import base64
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from deskie_mm_bot.sandbox.console import ConsoleServer
from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, DESKIE_KEY, STAFF_EMAIL, World, console_config
from tests.support.harness import cli, wait_for
from tests.support.sandbox_process import running_sandbox


def _in_background(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


# ------------------------------------------------------------------ the command
def test_sandbox_prints_the_console_url_first_and_serves_the_page(tmp_path: Path) -> None:
    with running_sandbox("--no-browser", "--port", "0", workdir=tmp_path) as sb:
        assert sb.url.startswith("http://127.0.0.1:") and sb.url.endswith("/")
        page = requests.get(sb.url, timeout=5)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert '<script src="/static/console.js">' in page.text
        for asset in ("static/console.js", "static/console.css"):
            assert requests.get(sb.url + asset, timeout=5).status_code == 200, asset
        config = requests.get(sb.url + "console/config.json", timeout=5).json()
        assert config["bot"]["username"] == "helpbot" and config["bot"]["mention_only"] is True
        health = wait_for(lambda: requests.get(sb.url + "bot/healthz", timeout=5).status_code == 200,
                          what="the bot's /healthz through the console")
        assert health
        snap = requests.get(sb.url + "mm/_emu/snapshot", timeout=5).json()
        assert {"jane", "bob", "helpbot"} <= {u["username"] for u in snap["users"]}
        assert requests.get(sb.url + "mm/api/v4/users/me", timeout=5).status_code == 404
        sb.proc.terminate()
        assert sb.proc.wait(timeout=20) == 0, sb.output()


def test_sandbox_console_port_in_use_exits_1_naming_the_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("sandbox", "--no-browser", "--port", str(port))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"cannot serve the console on port {port}" in r.stderr
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------ the console server
def test_console_forwards_only_control_apis_and_public_endpoints(world: World) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    bot = f"http://127.0.0.1:{dead.getsockname()[1]}"  # nothing listens: the bot is down
    dead.close()
    with ConsoleServer({"mm": world.mm.url, "dk": world.dk.url, "bot": bot},
                       console_config(world, "group_chat", True)) as console:
        base = console.url
        r = requests.post(base + "mm/_emu/post_as", json={"user_id": world.jane["id"],
                          "channel_id": world.jane_dm["id"], "message": "through the console"}, timeout=5)
        assert r.status_code == 201
        assert [p["message"] for p in world.mm.posts_in(world.jane_dm["id"])] == ["through the console"]
        assert requests.get(base + "dk/_emu/cases", timeout=5).json() == {"cases": []}
        # The bot's webhook, the APIs a bot uses and anything else stay out of the page's reach.
        for path in ("bot/deskie/webhook/x", "mm/api/v4/users/me", "dk/api/cases.json", "dk/files/1/x",
                     "elsewhere/_emu/cases"):
            assert requests.get(base + path, timeout=5).status_code == 404, path
        down = requests.get(base + "bot/healthz", timeout=5)
        assert down.status_code == 502 and "not answering" in down.json()["error"]
        assert requests.get(base + "static/../server.py", timeout=5).status_code == 404


# ------------------------------------------------------------------ change feeds
def test_mattermost_change_feed_wakes_a_waiting_page(world: World) -> None:
    mm = world.mm
    since = requests.get(f"{mm.url}/_emu/snapshot", timeout=5).json()["version"]
    idle = requests.get(f"{mm.url}/_emu/changes", params={"since": since, "timeout": 1}, timeout=5).json()
    assert idle["version"] == since  # nothing happened: the same version, after the timeout
    t0 = time.monotonic()
    waiter, out = _in_background(lambda: requests.get(f"{mm.url}/_emu/changes",
                                                      params={"since": since, "timeout": 20}, timeout=30).json())
    time.sleep(0.3)
    assert waiter.is_alive()  # a long poll, not an answer at once
    mm.post_as(world.jane["id"], world.jane_dm["id"], "wake up")
    waiter.join(10)
    assert out and out[0]["version"] > since
    assert time.monotonic() - t0 < 5


def test_deskie_change_feed_wakes_on_api_and_control_writes(world: World) -> None:
    dk = world.dk
    since = requests.get(f"{dk.url}/_emu/snapshot", timeout=5).json()["version"]
    waiter, out = _in_background(lambda: requests.get(f"{dk.url}/_emu/changes",
                                                      params={"since": since, "timeout": 20}, timeout=30).json())
    time.sleep(0.3)
    assert waiter.is_alive()
    created = requests.post(f"{dk.url}/api/cases.json", auth=(STAFF_EMAIL, DESKIE_KEY), timeout=5, json={
        "case": {"channel": CHANNEL_CODE, "user_custom_id": "u:x", "user_full_name": "X", "content": "hi",
                 "subject": "hi", "group_id": world.group["group_id"]}})
    assert created.status_code == 201
    waiter.join(10)
    assert out and out[0]["version"] > since
    after_api = out[0]["version"]
    dk.agent_reply(created.json()["case"]["case_id"], content="hello")
    assert requests.get(f"{dk.url}/_emu/changes", params={"since": after_api, "timeout": 5},
                        timeout=10).json()["version"] > after_api


# ------------------------------------------------------------------ snapshots and controls
def test_snapshots_show_the_workspace_and_the_cases_with_their_messages(world: World) -> None:
    mm, dk = world.mm, world.dk
    mm_snap = requests.get(f"{mm.url}/_emu/snapshot", timeout=5).json()
    support = next(c for c in mm_snap["channels"] if c["id"] == world.support["id"])
    assert set(support["members"]) == {world.bot["id"], world.jane["id"], world.bob["id"]}
    assert "token" not in str(mm_snap).lower()
    case = dk.create_outgoing_case(CHANNEL_CODE, f"u:{world.jane['id']}", "Jane Doe (@jane)", "Hello Jane")
    dk.agent_reply(case["case_id"], content="only agents see this", note=True)
    snap = requests.get(f"{dk.url}/_emu/snapshot", timeout=5).json()
    [shown] = snap["cases"]
    assert shown["user"]["user_full_name"] == "Jane Doe (@jane)" and shown["chat_active"] is True
    assert [(m["content"], m["note"]) for m in shown["messages"]] == [("Hello Jane", False),
                                                                      ("only agents see this", True)]
    assert {s["staff_full_name"] for s in snap["staff"]} == {"Bot Agent", "Anna Agent"}
    assert snap["counters"]["rate_limit_per_minute"] == 1500


def test_end_chat_keeps_the_status_and_the_next_message_makes_it_live_again(world: World) -> None:
    dk = world.dk
    created = requests.post(f"{dk.url}/api/cases.json", auth=(STAFF_EMAIL, DESKIE_KEY), timeout=5, json={
        "case": {"channel": CHANNEL_CODE, "user_custom_id": "u:jane", "user_full_name": "Jane", "content": "help",
                 "group_id": world.group["group_id"]}}).json()["case"]
    case_id = created["case_id"]
    assert dk.chat_active(case_id)
    r = requests.post(f"{dk.url}/_emu/end_chat", json={"case_id": case_id}, timeout=5)
    assert r.status_code == 200 and r.json()["case"]["status"] == "open"
    assert not dk.chat_active(case_id) and dk.get_case(case_id)["status"] == "open"
    requests.post(f"{dk.url}/api/cases/{case_id}/messages.json", auth=(STAFF_EMAIL, DESKIE_KEY), timeout=5,
                  json={"message": {"user_id": created["user_id"], "content": "still there?"}}).raise_for_status()
    assert dk.chat_active(case_id)
    dk.close_case(case_id)
    assert not dk.chat_active(case_id)
    assert requests.post(f"{dk.url}/_emu/end_chat", json={"case_id": 999999}, timeout=5).status_code == 404


def test_files_sent_from_a_browser_reach_both_emulators(world: World) -> None:
    mm, dk = world.mm, world.dk
    data = b"\x89PNG\r\n\x1a\n binary \x00\xff"
    b64 = base64.b64encode(data).decode()
    info = requests.post(f"{mm.url}/_emu/upload", timeout=5, json={
        "user_id": world.jane["id"], "channel_id": world.jane_dm["id"], "name": "shot.png", "data_base64": b64})
    assert info.status_code == 201 and info.json()["size"] == len(data)
    post = mm.post_as(world.jane["id"], world.jane_dm["id"], "see", file_ids=[info.json()["id"]])
    assert post["metadata"]["files"][0]["name"] == "shot.png"
    got = requests.get(f"{mm.url}/_emu/files/{info.json()['id']}", timeout=5)
    assert got.content == data and got.headers["Content-Type"] == "image/png"
    bad = requests.post(f"{mm.url}/_emu/upload", timeout=5, json={
        "user_id": world.jane["id"], "channel_id": world.jane_dm["id"], "name": "x", "data_base64": "%%%"})
    assert bad.status_code == 400

    case = dk.create_outgoing_case(CHANNEL_CODE, "u:jane", "Jane", "hi")
    r = requests.post(f"{dk.url}/_emu/agent_reply", timeout=5, json={
        "case_id": case["case_id"], "html": "<b>here</b>",
        "attachments": [{"file_name": "shot.png", "mime_type": "image/png", "data_base64": b64}]})
    assert r.status_code == 200
    [att] = r.json()["message"]["attachments"]
    assert att["file_size"] == len(data) and requests.get(att["url"], timeout=5).content == data
    bad = requests.post(f"{dk.url}/_emu/agent_reply", timeout=5, json={
        "case_id": case["case_id"], "content": "x", "attachments": [{"file_name": "x", "data_base64": "%%%"}]})
    assert bad.status_code == 400


@pytest.mark.parametrize("rpm", [20, 50])
def test_plan_control_sets_the_account_budget(world: World, rpm: int) -> None:
    dk = world.dk
    assert requests.post(f"{dk.url}/_emu/rate_limit", json={"rate_limit_per_minute": rpm}, timeout=5).ok
    counters = requests.get(f"{dk.url}/_emu/counters", timeout=5).json()
    assert counters["rate_limit_per_minute"] == rpm and counters["api_calls_left"] == rpm
    assert requests.post(f"{dk.url}/_emu/rate_limit", json={"rate_limit_per_minute": 0}, timeout=5).status_code == 400
    requests.post(f"{dk.url}/_emu/faults", json={"kind": "5xx", "seconds": 20}, timeout=5).raise_for_status()
    assert 19 < requests.get(f"{dk.url}/_emu/counters", timeout=5).json()["outage_left"] <= 20
