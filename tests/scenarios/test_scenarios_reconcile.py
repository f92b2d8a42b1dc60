"""Reconciliation scenarios (design §3.2): answers whose webhook was missed, cases closed in Deskie, and the
cost of a poll. The bot runs in-process; the test runs each poll itself (the scheduled one is paused)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import requests

from deskie_mm_bot.relay.reconcile import CURSOR
from deskie_mm_bot.sandbox.deskie.webhook import form_fields
from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, World
from tests.support.harness import bot_posts, cases_of, customer_texts, wait_for
from tests.support.inproc import InProcessBot


def start_quiet(inproc_bot: Callable[..., InProcessBot], **chats: Any) -> InProcessBot:
    """The bot with its scheduled reconciliation paused: only the test's polls run."""
    bot = inproc_bot(**chats).start()

    async def pause() -> None:
        assert bot.app is not None and bot.app.scheduler is not None
        bot.app.scheduler.pause_job("reconcile")

    bot.call(pause)
    return bot


def poll(bot: InProcessBot) -> int:
    assert bot.app is not None
    return bot.call(bot.app.reconciler.poll)


def settled(bot: InProcessBot) -> bool:
    """No answer waiting in the ledger or being posted."""
    assert bot.app is not None
    store = bot.app.store
    return store.count_replies("pending") + store.count_replies("posting") == 0


def answers(world: World, channel_id: str) -> list[str]:
    return [p["message"] for p in bot_posts(world, channel_id)]


def jane_opens_a_case(world: World, text: str = "my screen is blank") -> dict[str, Any]:
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], text)
    jane = f"u:{world.jane['id']}"
    return wait_for(lambda: next((c for c in cases_of(world) if world.dk.user(c["user_id"])["user_custom_id"] == jane
                                  and text in customer_texts(world, c["case_id"])), None), what="jane's case")


def test_missed_webhook_reply_is_posted_once_by_reconcile(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    dk, dm = world.dk, world.jane_dm["id"]
    bot = start_quiet(inproc_bot)
    case = jane_opens_a_case(world)
    dk.set_webhook_enabled(False)
    dk.agent_reply(case["case_id"], content="please hold the power button for 10 s")

    assert poll(bot) == 1
    wait_for(lambda: answers(world, dm), what="the missed answer")
    wait_for(lambda: settled(bot), what="the ledger to settle")
    assert answers(world, dm) == ["please hold the power button for 10 s"]

    assert poll(bot) == 0
    assert settled(bot)
    assert answers(world, dm) == ["please hold the power button for 10 s"]

    dk.set_webhook_enabled(True)
    dk.agent_reply(case["case_id"], content="did that help?")
    wait_for(lambda: len(answers(world, dm)) == 2, what="the live answer")
    assert poll(bot) == 0
    wait_for(lambda: settled(bot), what="the ledger to settle")
    assert answers(world, dm) == ["please hold the power button for 10 s", "did that help?"]
    assert [p["root_id"] for p in bot_posts(world, dm)] == ["", ""]


def test_webhook_and_poll_never_post_the_same_message_twice(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    dk, dm = world.dk, world.jane_dm["id"]
    bot = start_quiet(inproc_bot)
    case = jane_opens_a_case(world)

    # Webhook first, then the poll sees the same message.
    dk.agent_reply(case["case_id"], content="first answer")
    wait_for(lambda: answers(world, dm), what="the webhook answer")
    assert poll(bot) == 0

    # Poll first, then the webhook for the same message arrives late (Deskie retried it).
    dk.set_webhook_enabled(False)
    late = dk.agent_reply(case["case_id"], content="second answer")
    assert poll(bot) == 1
    wait_for(lambda: len(answers(world, dm)) == 2, what="the polled answer")
    obj = {
        "message_id": late["message_id"], "case_id": case["case_id"], "case_number": case["case_number"],
        "custom_user_id": f"u:{world.jane['id']}", "user_id": case["user_id"], "staff_id": late["staff_id"],
        "content": "second answer", "note": 0, "sent_via_rule": 0, "attachments": [],
    }
    r = requests.post(world.webhook_url, data=form_fields(obj), timeout=5)
    assert r.status_code == 200
    assert poll(bot) == 0
    wait_for(lambda: settled(bot), what="the ledger to settle")
    assert answers(world, dm) == ["first answer", "second answer"]


def test_reconcile_sees_case_closed_in_deskie(world: World, inproc_bot: Callable[..., InProcessBot]) -> None:
    dk, mm = world.dk, world.mm
    bot = start_quiet(inproc_bot)
    assert bot.app is not None
    store = bot.app.store
    first = jane_opens_a_case(world, "cannot print")
    assert poll(bot) == 0
    conv = store.conversation_by_case(first["case_id"])
    assert conv is not None and conv.state == "active"

    dk.close_case(first["case_id"])
    dk.advance_clock(60)
    assert poll(bot) == 0
    conv = store.conversation_by_case(first["case_id"])
    assert conv is not None and conv.state == "closed"

    # The bot already knows: the next message opens a new case without first trying the closed one.
    dk.clear_request_log()
    mm.post_as(world.jane["id"], world.jane_dm["id"], "now I cannot scan either")
    wait_for(lambda: len(cases_of(world)) == 2, what="a new case")
    second = cases_of(world)[1]
    assert customer_texts(world, second["case_id"]) == ["now I cannot scan either"]
    assert customer_texts(world, first["case_id"]) == ["cannot print"]
    assert dk.user(second["user_id"])["user_custom_id"] == f"u:{world.jane['id']}"
    assert not [e for e in dk.request_log if e["path"].startswith(f"/api/cases/{first['case_id']}")]

    dk.agent_reply(second["case_id"], content="scanner fixed")
    wait_for(lambda: answers(world, world.jane_dm["id"]), what="the answer on the new case")
    assert answers(world, world.jane_dm["id"]) == ["scanner fixed"]


def test_reconcile_cost_does_not_grow_with_open_chats(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    dk, mm = world.dk, world.mm
    bot = start_quiet(inproc_bot)
    assert bot.app is not None
    store = bot.app.store
    bob_dm = mm.direct_channel(world.bot["id"], world.bob["id"])
    group_id = world.group["group_id"]

    # 999 open chats that were last active a minute ago (created straight in the emulator's account
    # state, the same code its HTTP API runs), with their conversations in the bot's store, in sync.
    chats = [(f"u:{world.bob['id']}", "Bob Stone (@bob)", bob_dm["id"]),
             (f"c:{world.support['id']}", "Support (~support)", world.support["id"])]
    chats += [(f"u:quiet{i:04d}", f"Quiet User {i} (@quiet{i})", f"quietdm{i:04d}") for i in range(997)]
    seeded: list[dict[str, Any]] = []
    dk.advance_clock(-60)
    try:
        for custom_id, name, _ in chats:
            case = dk.state.create_case({"channel": CHANNEL_CODE, "user_custom_id": custom_id,
                                         "user_full_name": name, "group_id": group_id,
                                         "content": f"question from {name}"})
            seeded.append(case.to_api(dk.state.fmt))
    finally:
        dk.advance_clock(60)
    for (custom_id, name, channel_id), case in zip(chats, seeded, strict=True):
        store.create_conversation(
            conv_key=f"ch:{channel_id}", channel_id=channel_id, reply_root_id="", user_custom_id=custom_id,
            user_full_name=name, case_id=case["case_id"], case_number=case["case_number"],
            deskie_user_id=case["user_id"], last_message_id=0, case_updated_at=case["updated_at"],
        )
    # ... and one chat that is live now: jane's, opened through the bot.
    jane_case = jane_opens_a_case(world)
    assert len(cases_of(world)) == 1000
    assert store.count_conversations("active") == 1000

    assert poll(bot) == 0  # sets the cursor
    assert store.get_cursor(CURSOR)
    dk.advance_clock(300)
    dk.set_webhook_enabled(False)
    changed = {jane_case["case_id"]: (world.jane_dm["id"], "jane: reboot it"),
               seeded[0]["case_id"]: (bob_dm["id"], "bob: try the other port"),
               seeded[1]["case_id"]: (world.support["id"], "support: the outage is over")}
    for case_id, (_, text) in changed.items():
        dk.agent_reply(case_id, content=text)
    dk.clear_request_log()

    assert poll(bot) == 3
    log = [e for e in dk.request_log if e["path"].startswith("/api/cases")]
    lists = [e for e in log if e["method"] == "GET" and e["path"] == "/api/cases.json"]
    reads = Counter(e["path"] for e in log if e["method"] == "GET" and e["path"].endswith("/messages.json"))
    assert len(lists) == 1, f"{len(lists)} list pages for 3 changed cases"
    assert lists[0]["query"]["channel"] == CHANNEL_CODE and lists[0]["query"].get("from_updated_time")
    assert reads == Counter({f"/api/cases/{cid}/messages.json": 1 for cid in changed})
    assert len(log) == 4, log

    for channel_id, _ in changed.values():
        wait_for(lambda channel_id=channel_id: answers(world, channel_id), what=f"the answer in {channel_id}")
    wait_for(lambda: settled(bot), what="the ledger to settle")
    for channel_id, text in changed.values():
        assert answers(world, channel_id) == [text]
    assert [p["root_id"] for p in bot_posts(world, world.support["id"])] == [""]

    # Nothing changed since: one list page again. Only cases of the newest second may be read again
    # (a change within that second keeps its updated_at); nothing is posted twice.
    dk.clear_request_log()
    assert poll(bot) == 0
    log = dk.request_log
    assert [e["path"] for e in log if e["path"] == "/api/cases.json"] == ["/api/cases.json"]
    assert {e["path"] for e in log if e["path"] != "/api/cases.json"} <= {
        f"/api/cases/{cid}/messages.json" for cid in changed
    }
    wait_for(lambda: settled(bot), what="the ledger to settle")
    for channel_id, text in changed.values():
        assert answers(world, channel_id) == [text]


def test_a_poll_after_40_chats_opened_at_once_reads_only_the_changed_cases(
    world: World, inproc_bot: Callable[..., InProcessBot], clock: Any
) -> None:
    """The bot knows what it wrote: cases whose only change is the bot's own create are not read on
    every poll (they were, while their second was the newest). Target: each poll makes at most one list
    call + the changed cases + a small constant, and each answer is posted once."""
    dk, mm = world.dk, world.mm
    bot = start_quiet(inproc_bot)
    assert bot.app is not None
    people = [mm.add_user(f"burst{i:02d}", "Burst", f"User{i}") for i in range(40)]
    dms = [mm.direct_channel(world.bot["id"], p["id"]) for p in people]
    for person, dm in zip(people, dms, strict=True):
        mm.post_as(person["id"], dm["id"], "help, please")
    wait_for(lambda: len(cases_of(world)) == 40, 30, "40 cases")
    wait_for(lambda: bot.app is not None and bot.app.store.count_outbox("pending") == 0, 30, "the burst sent")
    dk.set_webhook_enabled(False)
    changed = cases_of(world)[:2]
    dk.advance_clock(5)
    for case in changed:
        dk.agent_reply(case["case_id"], content=f"answer for {case['case_id']}")

    costs = []
    for _ in range(6):
        dk.clear_request_log()
        poll(bot)
        clock.advance(3)  # owed reads come due on later polls
        log = [e for e in dk.request_log if e["path"].startswith("/api/cases")]
        lists = [e for e in log if e["path"] == "/api/cases.json"]
        assert len(lists) == 1
        costs.append(len(log))
    assert max(costs) <= 1 + len(changed) + 2, costs
    wait_for(lambda: settled(bot), what="the ledger to settle")
    for case, dm in ((c, next(d for p, d in zip(people, dms, strict=True)
                             if dk.user(c["user_id"])["user_custom_id"] == f"u:{p['id']}")) for c in changed):
        assert answers(world, dm["id"]) == [f"answer for {case['case_id']}"]
    posted = sum(len(answers(world, dm["id"])) for dm in dms)
    assert posted == len(changed)


def test_outgoing_case_whose_webhook_was_missed_is_opened_by_reconcile(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    dk = world.dk
    bot = start_quiet(inproc_bot)
    poll(bot)  # sets the cursor
    dk.set_webhook_enabled(False)
    case = dk.create_outgoing_case(CHANNEL_CODE, f"u:{world.bob['id']}", "Bob Stone (@bob)", "Bob, a quick question")
    dm = world.mm.direct_channel(world.bot["id"], world.bob["id"])["id"]
    assert poll(bot) == 1
    wait_for(lambda: answers(world, dm), what="the agent's first message in Bob's DM")
    assert poll(bot) == 0
    assert answers(world, dm) == ["Bob, a quick question"]
    world.mm.post_as(world.bob["id"], dm, "go ahead")
    wait_for(lambda: "go ahead" in customer_texts(world, case["case_id"]), what="Bob's answer on that case")
    assert len(cases_of(world)) == 1


def test_cases_from_before_the_bot_started_are_left_alone(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    dk = world.dk
    dk.set_webhook_enabled(False)
    dk.advance_clock(-3600)  # an hour ago, in the account's time
    dk.create_outgoing_case(CHANNEL_CODE, f"u:{world.bob['id']}", "Bob Stone (@bob)", "an old conversation")
    dk.advance_clock(3600)
    bot = start_quiet(inproc_bot)
    assert poll(bot) == 0
    dm = world.mm.direct_channel(world.bot["id"], world.bob["id"])["id"]
    assert answers(world, dm) == []
    user_reads = [e for e in dk.request_log if e["path"].startswith("/api/users/")]
    assert poll(bot) == 0
    # Declined once, not looked up again at every poll.
    assert [e for e in dk.request_log if e["path"].startswith("/api/users/")] == user_reads
