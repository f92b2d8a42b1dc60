"""Several workspaces (`workspaces:`): one bot, two Mattermost servers (acme, globex), one Deskie account.

Both servers have a @jane and a @bob (same usernames, different people). What is checked: each
workspace's customers are its own Deskie users (`<name>:u:<id>`, `... · <name>`); answers, outgoing
chats and routes stay in their workspace; one workspace down or with a revoked token leaves the other
working (and /healthz says which); both bursting on a 20-a-minute plan share the budget without a 429.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, World
from tests.support.harness import customer_texts, wait_for
from tests.support.inproc import InProcessBot
from tests.support.workspaces import TwoWorkspaces

Bot = Callable[..., InProcessBot]


def answers(world: World, channel_id: str) -> list[str]:
    return [p["message"] for p in world.mm.posts_in(channel_id) if p["user_id"] == world.bot["id"]]


def bot_post_requests(world: World) -> list[dict[str, Any]]:
    return [e for e in world.mm.request_log if e["method"] == "POST" and e["path"] == "/api/v4/posts"]


def dm_with(world: World, user: dict[str, Any]) -> str:
    return str(world.mm.direct_channel(world.bot["id"], user["id"])["id"])


def both_janes_open_cases(ws: TwoWorkspaces) -> tuple[dict[str, Any], dict[str, Any]]:
    """Jane of acme and Jane of globex each write the bot a DM: (acme's case, globex's case)."""
    acme, globex = ws.acme, ws.globex
    acme.mm.post_as(acme.jane["id"], acme.jane_dm["id"], "acme here: the printer is jammed")
    globex.mm.post_as(globex.jane["id"], globex.jane_dm["id"], "globex here: the VPN is down")
    a = wait_for(lambda: ws.case_of(f"acme:u:{acme.jane['id']}"), 20, "acme Jane's case")
    g = wait_for(lambda: ws.case_of(f"globex:u:{globex.jane['id']}"), 20, "globex Jane's case")
    return a, g


BATCH_STAMP = re.compile(r"^\[\d\d:\d\d:\d\d UTC\] ")


def texts_of(world: World, case: dict[str, Any]) -> list[str]:
    """The customer's posts as the case holds them, one a line (a batch of posts is one message whose
    lines carry their time)."""
    return [BATCH_STAMP.sub("", line) for text in customer_texts(world, case["case_id"])
            for line in text.splitlines()]


# ---- 1. intake -------------------------------------------------------------------------------------
def test_a_dm_in_each_workspace_opens_a_case_for_its_own_customer_named_after_the_workspace(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws, dk = two_workspaces, two_workspaces.dk
    workspaces_bot().start()
    a, g = both_janes_open_cases(ws)
    assert len(ws.cases()) == 2
    assert a["case_id"] != g["case_id"]
    assert dk.user(a["user_id"])["user_full_name"] == "Jane Doe (@jane) \u00b7 acme"
    assert dk.user(g["user_id"])["user_full_name"] == "Jane Doe (@jane) \u00b7 globex"
    assert wait_for(lambda: texts_of(ws.acme, a)) == ["acme here: the printer is jammed"]
    assert wait_for(lambda: texts_of(ws.globex, g)) == ["globex here: the VPN is down"]
    assert a["group_id"] == g["group_id"] == ws.acme.group["group_id"]
    status, body = ws.health()
    assert status == 200, body
    assert {name: w["websocket"] for name, w in body["workspaces"].items()} == {"acme": "connected",
                                                                                 "globex": "connected"}
    assert body["workspaces"]["acme"]["problem"] is None and body["workspaces"]["globex"]["problem"] is None
    samples = ws.metrics()
    assert float(samples['deskie_mm_workspace_connected{workspace="acme"}']) == 1
    assert float(samples['deskie_mm_workspace_connected{workspace="globex"}']) == 1


# ---- 2. answers ------------------------------------------------------------------------------------
def test_agents_answers_land_only_in_their_own_workspace_and_replies_find_their_own_case(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws, dk = two_workspaces, two_workspaces.dk
    acme, globex = ws.acme, ws.globex
    workspaces_bot().start()
    a, g = both_janes_open_cases(ws)
    acme.mm.clear_request_log()
    globex.mm.clear_request_log()
    dk.agent_reply(a["case_id"], content="acme: open the front tray")
    dk.agent_reply(g["case_id"], content="globex: reconnect with the new profile")
    wait_for(lambda: answers(acme, acme.jane_dm["id"]), 15, "the answer in acme")
    wait_for(lambda: answers(globex, globex.jane_dm["id"]), 15, "the answer in globex")
    time.sleep(0.5)  # a stray second post would have come by now
    assert answers(acme, acme.jane_dm["id"]) == ["acme: open the front tray"]
    assert answers(globex, globex.jane_dm["id"]) == ["globex: reconnect with the new profile"]
    assert len(bot_post_requests(acme)) == 1 and len(bot_post_requests(globex)) == 1
    # Each Jane's reply goes to her own case, however alike the two are.
    globex.mm.post_as(globex.jane["id"], globex.jane_dm["id"], "globex: works now, thanks")
    acme.mm.post_as(acme.jane["id"], acme.jane_dm["id"], "acme: tray open, paper out")
    wait_for(lambda: len(texts_of(acme, a)) == 2 and len(texts_of(globex, g)) == 2, 15, "both replies")
    assert texts_of(acme, a) == ["acme here: the printer is jammed", "acme: tray open, paper out"]
    assert texts_of(globex, g) == ["globex here: the VPN is down", "globex: works now, thanks"]
    assert len(ws.cases()) == 2


# ---- 3. outgoing chats -----------------------------------------------------------------------------
def test_an_outgoing_chat_to_a_member_of_the_second_workspace_opens_the_dm_there_only(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws, dk = two_workspaces, two_workspaces.dk
    acme, globex = ws.acme, ws.globex
    workspaces_bot().start()
    acme.mm.clear_request_log()
    bob = globex.bob
    case = dk.create_outgoing_case(CHANNEL_CODE, f"globex:u:{bob['id']}", "Bob Stone (@bob) \u00b7 globex",
                                   "Bob, your new laptop is ready")
    bob_dm = dm_with(globex, bob)
    wait_for(lambda: answers(globex, bob_dm), 15, "the agent's message in globex Bob's DM")
    time.sleep(0.5)
    assert answers(globex, bob_dm) == ["Bob, your new laptop is ready"]
    assert bot_post_requests(acme) == []
    assert [e for e in acme.mm.request_log if bob["id"] in e["path"] + str(e["query"])] == []
    globex.mm.post_as(bob["id"], bob_dm, "great, I'll pick it up")
    wait_for(lambda: "great, I'll pick it up" in customer_texts(globex, case["case_id"]), 15, "Bob's reply")
    assert len(ws.cases()) == 1


def test_an_outgoing_chat_whose_webhook_is_lost_is_opened_by_the_poll_in_its_own_workspace(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws, dk = two_workspaces, two_workspaces.dk
    acme, globex = ws.acme, ws.globex
    bot = workspaces_bot(poll_interval="1s").start()
    assert bot.app is not None
    wait_for(lambda: bot.app is not None and bot.app.reconciler.polls >= 1, 15, "the first poll")
    acme.mm.clear_request_log()
    dk.set_webhook_enabled(False)
    jane = globex.jane
    dk.create_outgoing_case(CHANNEL_CODE, f"globex:u:{jane['id']}", "Jane Doe (@jane) \u00b7 globex",
                            "Jane, about your VPN ticket")
    wait_for(lambda: answers(globex, globex.jane_dm["id"]), 20, "the agent's message by poll")
    polls = bot.app.reconciler.polls
    wait_for(lambda: bot.app is not None and bot.app.reconciler.polls >= polls + 2, 15, "two more polls")
    assert answers(globex, globex.jane_dm["id"]) == ["Jane, about your VPN ticket"]
    assert answers(acme, acme.jane_dm["id"]) == [] and bot_post_requests(acme) == []


# ---- 4. one workspace down -------------------------------------------------------------------------
def test_one_workspace_down_leaves_the_other_relaying_and_is_caught_up_once_when_it_returns(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws, dk = two_workspaces, two_workspaces.dk
    acme, globex = ws.acme, ws.globex
    workspaces_bot().start()
    a, g = both_janes_open_cases(ws)

    globex.mm.stop()  # comes back on the same port, the one in the config
    wait_for(lambda: ws.health()[1]["workspaces"]["globex"]["websocket"] == "disconnected", 10,
             "globex's websocket down in /healthz")
    status, body = ws.health()
    assert status == 200, body
    assert body["workspaces"]["acme"]["websocket"] == "connected"
    assert body["mattermost"]["websocket"] == "connected"
    samples = ws.metrics()
    assert float(samples['deskie_mm_workspace_connected{workspace="globex"}']) == 0
    assert float(samples['deskie_mm_workspace_connected{workspace="acme"}']) == 1

    # acme goes on both ways.
    acme.mm.post_as(acme.jane["id"], acme.jane_dm["id"], "acme: still here while globex is down")
    wait_for(lambda: "acme: still here while globex is down" in texts_of(acme, a), 15, "acme's post")
    dk.agent_reply(a["case_id"], content="acme: we see you")
    wait_for(lambda: answers(acme, acme.jane_dm["id"]) == ["acme: we see you"], 15, "acme's answer")

    # globex's Jane writes on (her server stores the posts; the bot cannot hear them), an agent answers.
    for i in range(3):
        globex.mm.post_as(globex.jane["id"], globex.jane_dm["id"], f"globex meanwhile {i}")
    dk.agent_reply(g["case_id"], content="globex: answered while your server was down")
    time.sleep(1.0)
    assert ws.health()[0] == 200
    globex.mm.start()

    expected = ["globex here: the VPN is down"] + [f"globex meanwhile {i}" for i in range(3)]
    wait_for(lambda: texts_of(globex, g) == expected, 40, "globex's posts caught up")
    wait_for(lambda: answers(globex, globex.jane_dm["id"]), 30, "the answer posted in globex")
    wait_for(lambda: ws.health()[1]["workspaces"]["globex"]["websocket"] == "connected", 30, "globex reconnected")
    time.sleep(1.5)  # a second catch-up or retry would double something by now
    assert texts_of(globex, g) == expected
    assert answers(globex, globex.jane_dm["id"]) == ["globex: answered while your server was down"]
    assert texts_of(acme, a) == ["acme here: the printer is jammed", "acme: still here while globex is down"]
    assert len(ws.cases()) == 2
    assert ws.health()[0] == 200


# ---- 5. both bursting on a small plan --------------------------------------------------------------
PLAN_RPM = 20
WINDOW = 6.0  # the emulator's window, shortened: 20 units per 6 s behaves as 20 a minute, ten times faster
TOKEN = re.compile(r"\b(?:acme|globex)-c\d-m\d\d\b")


def test_both_workspaces_bursting_on_a_20_rpm_plan_deliver_everything_once_in_order_without_a_429(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws, dk = two_workspaces, two_workspaces.dk
    customers: list[tuple[World, dict[str, Any], str, str]] = []  # (workspace, user, dm, name)
    custom_ids: dict[str, str] = {}  # name -> user_custom_id
    for workspace in ("acme", "globex"):
        world = ws.of(workspace)
        for i in range(3):
            user = world.mm.add_user(f"cust{i}", f"Cust{i}", workspace.title())
            world.mm.add_team_member(world.team["id"], user["id"])
            name = f"{workspace}-c{i}"
            customers.append((world, user, dm_with(world, user), name))
            custom_ids[name] = f"{workspace}:u:{user['id']}"
    bot = workspaces_bot(poll_interval="3s").start()
    assert bot.app is not None
    wait_for(lambda: any(e["path"] == "/api/groups.json" for e in dk.request_log), 15, "the group lookup")
    time.sleep(0.3)
    dk.set_rate_limit(PLAN_RPM, WINDOW)
    # The emulator's window edges, on the clock its request log uses.
    window_start = time.time() - (time.monotonic() - dk.limiter._window_start)
    dk.clear_request_log()

    per_customer = 4
    rng = random.Random(7)
    order = [c for c in customers for _ in range(per_customer)]
    rng.shuffle(order)
    sent: dict[str, list[str]] = {c[3]: [] for c in customers}
    for world, user, dm, name in order:
        token = f"{name}-m{len(sent[name]):02d}"
        world.mm.post_as(user["id"], dm, f"question {token} please")
        sent[name].append(token)
        time.sleep(0.25)  # spread over a window and more, so that batching alone cannot absorb it

    def held() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for world, _, _, name in customers:
            case = ws.case_of(custom_ids[name])
            if case is not None:
                for text in customer_texts(world, case["case_id"]):
                    out.setdefault(name, []).extend(TOKEN.findall(text))
        return out

    wait_for(lambda: all(set(sent[n]) <= set(held().get(n, [])) for n in sent), 60, "the burst delivered")
    # Then the agents answer every chat twice, while the budget is still tight.
    cases = {name: ws.case_of(custom_ids[name]) for name in sent}
    for name, case in cases.items():
        assert case is not None
        for k in range(2):
            dk.agent_reply(case["case_id"], content=f"answer {k} for {name}")
    for world, _, dm, name in customers:
        wait_for(lambda world=world, dm=dm: len(answers(world, dm)) >= 2, 30, f"the answers to {name}")
    time.sleep(1.0)

    got = held()
    for name, tokens in sent.items():
        assert got[name] == tokens, f"{name}: sent {tokens}, Deskie holds {got[name]}"
    for world, _, dm, name in customers:
        assert answers(world, dm) == [f"answer 0 for {name}", f"answer 1 for {name}"]
    assert len(ws.cases()) == len(customers)
    assert dk.count_429 == 0
    used: dict[int, int] = {}
    for e in dk.request_log:
        if e.get("cost"):
            k = int((e["t"] - window_start) // WINDOW)
            used[k] = used.get(k, 0) + int(e["cost"])
    assert used and max(used.values()) <= PLAN_RPM, used
    assert dk.counters()["rate_limit_per_minute"] == PLAN_RPM  # the plan was in force throughout


# ---- 6. routes and default groups per workspace ----------------------------------------------------
def test_routes_and_the_default_group_of_a_workspace_send_its_chats_to_their_groups(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws, dk = two_workspaces, two_workspaces.dk
    acme, globex = ws.acme, ws.globex
    billing_group = dk.add_group("Billing")
    acme_desk = dk.add_group("Acme desk")
    billing = {}
    for world in (acme, globex):  # both have a ~billing; only globex routes it
        channel = world.mm.add_channel(world.team["id"], "billing", "Billing", "O")
        for user in (world.bot, world.bob):
            world.mm.add_channel_member(channel["id"], user["id"])
        billing[world.team["name"]] = channel
    workspaces_bot(acme={"default_group": "Acme desk"}, globex={"routes": {"billing": "Billing"}}).start()
    acme.mm.post_as(acme.bob["id"], billing["acme"]["id"], "@helpbot acme invoice question")
    globex.mm.post_as(globex.bob["id"], billing["globex"]["id"], "@helpbot globex invoice question")
    acme.mm.post_as(acme.jane["id"], acme.jane_dm["id"], "acme DM")
    globex.mm.post_as(globex.jane["id"], globex.jane_dm["id"], "globex DM")
    globex.mm.post_as(globex.bob["id"], globex.support["id"], "@helpbot globex support question")
    wait_for(lambda: len(ws.cases()) == 5, 20, "five cases")
    groups = {dk.user(c["user_id"])["user_full_name"]: c["group_id"] for c in ws.cases()}
    assert groups == {
        "Billing (~billing) \u00b7 acme": acme_desk["group_id"],
        "Jane Doe (@jane) \u00b7 acme": acme_desk["group_id"],
        "Billing (~billing) \u00b7 globex": billing_group["group_id"],
        "Jane Doe (@jane) \u00b7 globex": ws.acme.group["group_id"],
        "Support (~support) \u00b7 globex": ws.acme.group["group_id"],
    }, groups


# ---- 7. a revoked token ----------------------------------------------------------------------------
def revoke_globex(ws: TwoWorkspaces) -> dict[str, Any]:
    """Globex's bot token is revoked while the bot runs: /healthz's globex entry once it tells."""
    ws.globex.mm.revoke_token(ws.globex.bot_token)
    wait_for(lambda: ws.health()[1]["workspaces"]["globex"]["problem"], 20, "globex's problem in /healthz")
    entry: dict[str, Any] = ws.health()[1]["workspaces"]["globex"]
    return entry


def test_a_revoked_token_of_one_workspace_is_reported_while_the_other_keeps_working(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws, dk = two_workspaces, two_workspaces.dk
    acme = ws.acme
    bot = workspaces_bot().start()
    assert bot.app is not None
    globex = revoke_globex(ws)
    status, body = ws.health()
    assert status == 200, body
    assert globex["websocket"] == "disconnected"
    assert "rejected the bot token" in globex["problem"], body
    assert body["workspaces"]["acme"] == {"websocket": "connected", "reconnects": 0, "problem": None}
    assert ws.globex.bot_token not in str(body)
    acme.mm.post_as(acme.jane["id"], acme.jane_dm["id"], "acme: are you still there?")
    case = wait_for(lambda: ws.case_of(f"acme:u:{acme.jane['id']}"), 15, "acme's case")
    dk.agent_reply(case["case_id"], content="acme: yes")
    wait_for(lambda: answers(acme, acme.jane_dm["id"]) == ["acme: yes"], 15, "acme's answer")
    assert not bot.app.stopping.is_set() and bot.exit_code is None


def test_a_rejected_workspace_s_problem_names_its_own_token_key(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    """As `check` names it (workspaces[globex]): the single form's key would send the admin to the
    wrong place, in a file that has no mattermost: section."""
    workspaces_bot().start()
    problem = revoke_globex(two_workspaces)["problem"]
    assert "workspaces[globex].bot_token" in problem and "mattermost.bot_token" not in problem, problem


def test_a_rejected_workspace_stays_reported_between_its_retries(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    """Retried with backoff, and reported all along: a /healthz scrape during a retry must not see
    the workspace fine while its token is still refused."""
    ws = two_workspaces
    workspaces_bot().start()
    revoke_globex(ws)
    seen = []
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        seen.append(ws.health()[1]["workspaces"]["globex"]["problem"])
        time.sleep(0.05)
    assert all(seen), f"problem cleared in {seen.count(None)} of {len(seen)} scrapes while still rejected"


def test_a_workspace_whose_token_is_rejected_at_start_does_not_stop_the_others(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws = two_workspaces
    acme, globex = ws.acme, ws.globex
    globex.mm.revoke_token(globex.bot_token)
    bot = workspaces_bot().start(connected=["acme"])
    assert bot.app is not None
    wait_for(lambda: ws.health()[1]["workspaces"]["globex"]["problem"], 15, "globex's problem in /healthz")
    assert ws.health()[0] == 200
    acme.mm.post_as(acme.jane["id"], acme.jane_dm["id"], "acme: hello")
    wait_for(lambda: ws.case_of(f"acme:u:{acme.jane['id']}"), 15, "acme's case")
    assert not bot.app.stopping.is_set()


def test_the_process_exits_1_once_every_workspace_token_is_rejected(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws = two_workspaces
    bot = workspaces_bot().start()
    assert bot.app is not None
    ws.globex.mm.revoke_token(ws.globex.bot_token)
    wait_for(lambda: ws.health()[1]["workspaces"]["globex"]["problem"], 20, "globex's problem")
    assert not bot.app.stopping.is_set()
    ws.acme.mm.revoke_token(ws.acme.bot_token)
    wait_for(lambda: bot.exit_code is not None, 40, "the bot to exit")
    assert bot.exit_code == 1
    assert "every workspace" in bot.app.exit_message and "acme" in bot.app.exit_message
    assert "globex" in bot.app.exit_message


# ---- and more ---------------------------------------------------------------------------------------
def test_a_workspace_unreachable_at_start_is_reported_then_joins_when_its_server_comes_up(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws = two_workspaces
    acme, globex = ws.acme, ws.globex
    globex.mm.stop()
    bot = workspaces_bot().start(connected=["acme"])
    assert bot.app is not None
    wait_for(lambda: ws.health()[1]["workspaces"]["globex"]["problem"], 15, "globex's problem in /healthz")
    assert ws.health()[0] == 200
    acme.mm.post_as(acme.jane["id"], acme.jane_dm["id"], "acme: hello")
    wait_for(lambda: ws.case_of(f"acme:u:{acme.jane['id']}"), 15, "acme's case")
    globex.mm.start()
    wait_for(lambda: ws.health()[1]["workspaces"]["globex"] == {"websocket": "connected", "reconnects": 0,
                                                                  "problem": None}, 30, "globex connected")
    globex.mm.post_as(globex.jane["id"], globex.jane_dm["id"], "globex: hello at last")
    g = wait_for(lambda: ws.case_of(f"globex:u:{globex.jane['id']}"), 15, "globex's case")
    assert texts_of(globex, g) == ["globex: hello at last"]
    assert not bot.app.stopping.is_set()


def test_an_outgoing_chat_for_a_workspace_the_bot_does_not_serve_goes_nowhere(
    two_workspaces: TwoWorkspaces, workspaces_bot: Bot
) -> None:
    ws, dk = two_workspaces, two_workspaces.dk
    acme, globex = ws.acme, ws.globex
    bot = workspaces_bot(poll_interval="1s").start()
    assert bot.app is not None
    acme.mm.clear_request_log()
    globex.mm.clear_request_log()
    # An id of acme's Jane under another workspace's name, and one in the single form's shape.
    dk.create_outgoing_case(CHANNEL_CODE, f"initech:u:{acme.jane['id']}", "Jane Doe (@jane) \u00b7 initech",
                            "not for this bot")
    dk.create_outgoing_case(CHANNEL_CODE, f"u:{globex.jane['id']}", "Jane Doe (@jane)", "nor this")
    polls = bot.app.reconciler.polls
    wait_for(lambda: bot.app is not None and bot.app.reconciler.polls >= polls + 2, 15, "two polls")
    assert bot_post_requests(acme) == [] and bot_post_requests(globex) == []
    assert answers(acme, acme.jane_dm["id"]) == [] and answers(globex, globex.jane_dm["id"]) == []
    assert not bot.app.stopping.is_set()
