"""Several workspaces with the bot as a subprocess: kill -9 during a burst in both, /healthz and `status`
while one workspace's server is gone, and a SIGTERM that drains what a working workspace is owed.

Two Mattermost emulators (acme, globex) and one Deskie emulator (the `two_workspaces` fixture); the bot
runs as `python -m deskie_mm_bot run -c …` with a `workspaces:` config, as systemd would run it.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, World
from tests.support.delivery import (
    Customer,
    add_customers,
    all_delivered,
    burst_in_background,
    tokens_by_customer,
    verdict,
)
from tests.support.harness import BotProcess, cli, customer_texts, wait_for
from tests.support.workspaces import TwoWorkspaces

WORKSPACES = ("acme", "globex")


def start_bot(ws: TwoWorkspaces, folder: Path, **chats: Any) -> BotProcess:
    chats.setdefault("poll_interval", "1s")
    chats.setdefault("agent_name", False)  # answers are compared word for word
    return BotProcess(ws.write_config(folder, **chats), ws.acme)


def health(bot: BotProcess) -> tuple[int, dict[str, Any]]:
    r = requests.get(bot.health_url, timeout=3)
    return r.status_code, r.json()


def websockets(bot: BotProcess) -> dict[str, str]:
    try:
        _, body = health(bot)
    except requests.RequestException:
        return {}
    return {name: w["websocket"] for name, w in (body.get("workspaces") or {}).items()}


def customers_of(ws: TwoWorkspaces, n: int) -> dict[str, list[Customer]]:
    """n customers in each workspace; globex's are numbered after acme's, so every token is one person's."""
    return {name: add_customers(ws.of(name), n, workspace=name, first=10 * i) for i, name in enumerate(WORKSPACES)}


def answers_in_deskie(ws: TwoWorkspaces) -> dict[str, list[int]]:
    """Agents' answers (message ids, in Deskie's order) by the user_custom_id of their case."""
    out: dict[str, list[int]] = {}
    for case in sorted(ws.cases(), key=lambda c: int(c["case_id"])):
        custom = str(ws.dk.user(case["user_id"]).get("user_custom_id"))
        out.setdefault(custom, []).extend(
            int(m["message_id"]) for m in ws.dk.messages(case["case_id"]) if m["staff_id"] and not m["note"])
    return out


def answers_posted(world: World) -> dict[str, list[int]]:
    """Deskie message ids the bot posted in this workspace, by channel, oldest first; once per post (a
    long answer's further parts are not counted), so a double shows."""
    with world.mm.state.lock:
        channels = {p["channel_id"] for p in world.mm.state.posts.values() if p["user_id"] == world.bot["id"]}
    out: dict[str, list[int]] = {}
    for channel in channels:
        for p in world.mm.posts_in(channel):
            props = p.get("props") or {}
            if p["user_id"] == world.bot["id"] and props.get("deskie_message_id") and not int(
                    props.get("deskie_part", 0) or 0):
                out.setdefault(channel, []).append(int(props["deskie_message_id"]))
    return out


def agents_answer(ws: TwoWorkspaces, rng: random.Random, n: int) -> None:
    """Agents answer on whichever cases exist while the customers are still writing."""
    for i in range(n):
        time.sleep(rng.uniform(0.05, 0.15))
        cases = ws.cases()
        if cases:
            ws.dk.agent_reply(rng.choice(cases)["case_id"], content=f"agent answer {i}")


def in_background(fn: Any, *args: Any) -> threading.Thread:
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


# ---- 1. kill -9 during a burst in both workspaces -------------------------------------------------
@pytest.mark.parametrize("kills", [1, 2])
def test_kill9_during_a_burst_in_both_workspaces_loses_nothing_doubles_nothing_and_mixes_nothing(
    two_workspaces: TwoWorkspaces, tmp_path: Path, kills: int
) -> None:
    ws = two_workspaces
    rng = random.Random(4200 + kills)
    customers = customers_of(ws, 3)
    bot = start_bot(ws, tmp_path)
    bot.start()
    wait_for(lambda: websockets(bot) == {"acme": "connected", "globex": "connected"}, 20, "both websockets")
    everyone = customers["acme"] + customers["globex"]
    senders = [burst_in_background(ws.of(name), customers[name], 10, gap=0.2, rng=random.Random(rng.random()))
               for name in WORKSPACES]
    agents = in_background(agents_answer, ws, random.Random(rng.random()), 20)
    for k in range(kills):
        if k == 1:
            # The next write is applied but answered late: this kill may land in that window.
            ws.dk.slow_next_write(1, seconds=1.0)
        time.sleep(rng.uniform(0.3, 0.8))
        bot.kill()
        if k == 0:
            sent = sum(len(c.sent) for c in everyone)
            assert 0 < sent < 60, f"the kill came with {sent} of 60 posts made: not mid-burst"
        bot.start()  # the second kill comes while it catches up on what the first one missed
    for t in (*senders, agents):
        t.join(60)
    wait_for(lambda: all_delivered(ws.acme, everyone), 45, "all 60 customer messages in Deskie")
    expected = answers_in_deskie(ws)
    assert sum(map(len, expected.values())) == 20

    def all_answers_posted() -> bool:
        posted = {ch: ids for name in WORKSPACES for ch, ids in answers_posted(ws.of(name)).items()}
        return all(set(expected.get(c.custom_id, [])) <= set(posted.get(c.dm["id"], [])) for c in everyone)

    wait_for(all_answers_posted, 30, "all 20 answers posted")
    time.sleep(1.5)  # more polls and webhook retries: a double would have time to show

    v = verdict(ws.acme, everyone)  # Deskie is shared: any world reads it
    assert v.ok, f"lost={v.lost} doubled={v.doubled} out_of_order={v.out_of_order}\n{bot.log()[-3000:]}"
    # Each token in its own customer's case only, and that customer is of the workspace it wrote in.
    held = tokens_by_customer(ws.acme)  # Deskie is shared: every case of both workspaces
    by_custom = {c.custom_id: c for c in everyone}
    assert set(held) == set(by_custom), f"cases of {sorted(set(held) - set(by_custom))}"
    for custom, tokens in held.items():
        assert set(tokens) <= set(by_custom[custom].sent), f"{custom} holds others' messages: {tokens}"
    for case in ws.cases():
        user = ws.dk.user(case["user_id"])
        name = by_custom[user["user_custom_id"]].workspace
        assert user["user_full_name"].endswith(f" \u00b7 {name}"), user
        assert case["channel"] == CHANNEL_CODE
    # Each answer once, in order, in its own customer's DM of its own workspace, and nowhere else.
    for name in WORKSPACES:
        posted = answers_posted(ws.of(name))
        dms = {c.dm["id"]: c for c in customers[name]}
        assert set(posted) <= set(dms), f"{name}: answers posted outside the customers' DMs: {posted}"
        for dm, c in dms.items():
            assert posted.get(dm, []) == expected.get(c.custom_id, []), (
                f"{name} {c.name}: posted {posted.get(dm)} expected {expected.get(c.custom_id)}\n{bot.log()[-3000:]}")
    assert bot.stop() == 0


# ---- 2. /healthz and `status` with one workspace gone --------------------------------------------
def test_healthz_and_status_name_both_workspaces_and_a_stopped_server_leaves_the_bot_healthy(
    two_workspaces: TwoWorkspaces, tmp_path: Path
) -> None:
    ws = two_workspaces
    bot = start_bot(ws, tmp_path)
    bot.start()
    wait_for(lambda: websockets(bot) == {"acme": "connected", "globex": "connected"}, 20, "both websockets")
    code, body = health(bot)
    assert code == 200 and body["mattermost"]["websocket"] == "connected"
    assert body["workspaces"]["acme"]["problem"] is None and body["workspaces"]["globex"]["problem"] is None
    info = json.loads(cli("status", "--json", "-c", str(bot.config_path)).stdout)
    assert {n: w["websocket"] for n, w in info["workspaces"].items()} == {"acme": "connected", "globex": "connected"}
    lines = cli("status", "-c", str(bot.config_path)).stdout.splitlines()
    assert any(ln.startswith("workspace acme: websocket connected") for ln in lines), lines
    assert any(ln.startswith("workspace globex: websocket connected") for ln in lines), lines

    ws.globex.mm.stop()  # globex's server goes away altogether
    wait_for(lambda: websockets(bot).get("globex") == "disconnected", 20, "globex disconnected in /healthz")
    for _ in range(3):  # not a moment's state: the bot keeps serving acme
        code, body = health(bot)
        assert code == 200, body
        assert body["workspaces"]["acme"]["websocket"] == "connected"
        assert body["workspaces"]["globex"]["websocket"] == "disconnected"
        time.sleep(0.5)
    acme = ws.acme
    acme.mm.post_as(acme.jane["id"], acme.jane_dm["id"], "acme still served?")
    case = wait_for(lambda: ws.case_of(f"acme:u:{acme.jane['id']}"), 20, "acme Jane's case")
    assert [m["content"] for m in ws.dk.messages(case["case_id"])] == ["acme still served?"]
    info = json.loads(cli("status", "--json", "-c", str(bot.config_path)).stdout)
    assert info["workspaces"]["acme"]["websocket"] == "connected"
    assert info["workspaces"]["globex"]["websocket"] == "disconnected"
    assert bot.stop() == 0


# ---- 3. SIGTERM drains --------------------------------------------------------------------------
def outbox_count(bot: BotProcess) -> int:
    """Posts the bot has taken into its outbox (read from its store, as `status` does)."""
    path = bot.config_path.parent / "state.sqlite3"
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def answer_texts(world: World, channel_id: str) -> list[str]:
    return [p["message"] for p in world.mm.posts_in(channel_id) if p["user_id"] == world.bot["id"]]


def test_sigterm_with_two_workspaces_exits_0_after_delivering_what_a_working_workspace_is_owed(
    two_workspaces: TwoWorkspaces, tmp_path: Path
) -> None:
    ws = two_workspaces
    acme, globex = ws.acme, ws.globex
    bot = start_bot(ws, tmp_path, poll_interval="1h")
    bot.start()
    wait_for(lambda: websockets(bot) == {"acme": "connected", "globex": "connected"}, 20, "both websockets")
    acme.mm.post_as(acme.jane["id"], acme.jane_dm["id"], "acme: hello")
    globex.mm.post_as(globex.jane["id"], globex.jane_dm["id"], "globex: hello")
    a = wait_for(lambda: ws.case_of(f"acme:u:{acme.jane['id']}"), 20, "acme Jane's case")
    g = wait_for(lambda: ws.case_of(f"globex:u:{globex.jane['id']}"), 20, "globex Jane's case")
    wait_for(lambda: outbox_count(bot) == 2, what="both first posts in the outbox")

    # Answers: acme's first post hangs 2 s and fails (the rest wait behind it); globex takes no posts at all.
    acme.mm.hang_rest_next(1, 2.0, match="POST /api/v4/posts")
    globex.mm.fail_rest_next(1000, 500, match="POST /api/v4/posts")
    replies = [ws.dk.agent_reply(case["case_id"], content=f"{name} answer {i}")
               for i in range(3) for name, case in (("acme", a), ("globex", g))]
    wanted = {int(r["message_id"]) for r in replies}
    wait_for(lambda: wanted <= {d["message_id"] for d in ws.dk.webhook_deliveries if d["status"] == 200},
             what="every answer's webhook taken by the bot")
    # Customers of both workspaces write while Deskie answers each write 2 s late.
    ws.dk.slow_next_write(2, 2.0)
    acme.mm.post_as(acme.jane["id"], acme.jane_dm["id"], "acme: are you there?")
    globex.mm.post_as(globex.jane["id"], globex.jane_dm["id"], "globex: are you there?")
    wait_for(lambda: outbox_count(bot) == 4, what="both follow-ups in the outbox")
    # Deskie has both (each workspace writes on its own) but answers them late: acme's next message
    # waits behind its chat's write in flight, and is owed at the stop.
    wait_for(lambda: all(any(t.endswith("are you there?") for t in customer_texts(ws.acme, c["case_id"]))
                         for c in (a, g)), what="both follow-ups in Deskie, their answers still on the way")
    acme.mm.post_as(acme.jane["id"], acme.jane_dm["id"], "acme: hello?")
    wait_for(lambda: outbox_count(bot) == 5, what="acme's next message in the outbox")
    assert "acme: hello?" not in customer_texts(ws.acme, a["case_id"])
    assert answer_texts(acme, acme.jane_dm["id"]) == []

    started = time.monotonic()
    assert bot.stop() == 0  # SIGTERM
    took = time.monotonic() - started
    assert took < 12, f"the stop took {took:.1f} s (the drain deadline is 10 s)"
    # What the working workspace was owed came before the exit: in order, once each.
    assert answer_texts(acme, acme.jane_dm["id"]) == ["acme answer 0", "acme answer 1", "acme answer 2"]
    assert answer_texts(globex, globex.jane_dm["id"]) == []
    assert customer_texts(ws.acme, a["case_id"]) == ["acme: hello", "acme: are you there?", "acme: hello?"]
    assert customer_texts(ws.acme, g["case_id"]) == ["globex: hello", "globex: are you there?"]
    log = bot.log()
    assert "left for the next start: 0 message(s) to Deskie, 3 to Mattermost" in log, log[-3000:]
    # What globex could not take waits in the store for the next start: its three answers, nothing else.
    assert pending_answers(bot) == sorted(int(r["message_id"]) for r in replies if r["content"].startswith("globex"))

    # Globex is back: the next start posts them at once (the stop's drain tried each chat once and
    # left no backoff behind), in order, once each.
    globex.mm.clear_rest_faults()
    bot.start()
    try:
        wait_for(lambda: len(answer_texts(globex, globex.jane_dm["id"])) == 3, 8, "globex's answers after the restart")
        assert answer_texts(globex, globex.jane_dm["id"]) == ["globex answer 0", "globex answer 1", "globex answer 2"]
        assert answer_texts(acme, acme.jane_dm["id"]) == ["acme answer 0", "acme answer 1", "acme answer 2"]
    finally:
        assert bot.stop() == 0


def pending_answers(bot: BotProcess) -> list[int]:
    """Deskie message ids of the answers the bot's store still has to post."""
    db = sqlite3.connect(bot.config_path.parent / "state.sqlite3")
    try:
        rows = db.execute("SELECT message_id FROM replies WHERE state IN ('pending', 'posting')").fetchall()
    finally:
        db.close()
    return sorted(int(r[0]) for r in rows)


@pytest.mark.parametrize("entry, key", [
    ({"default_group": "Nope"}, "workspaces[globex].default_group"),
    ({"routes": {"billing": "Nope"}}, "workspaces[globex].routes.billing"),
])
def test_a_workspace_naming_a_group_deskie_lacks_stops_the_start_naming_its_key(
    two_workspaces: TwoWorkspaces, tmp_path: Path, entry: dict[str, Any], key: str
) -> None:
    path = two_workspaces.write_config(tmp_path / "bot", globex=entry)
    bot = BotProcess(path, two_workspaces.acme)
    bot.start(wait=False)
    assert bot.wait_exit(30) == 2
    assert f"config error: {key}: Deskie has no group 'Nope'" in bot.log()
    assert two_workspaces.cases() == []
