"""Delivery guarantees with the bot as a subprocess: crashes, outages, drops and a small rate plan."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, World
from tests.support.delivery import add_customers, all_delivered, burst, burst_in_background, verdict
from tests.support.harness import BotProcess, bot_posts, cases_of, first_case, wait_for


@pytest.mark.parametrize("trial", range(3))
def test_kill9_during_a_burst_loses_nothing_and_doubles_nothing(
    world: World, make_bot: Callable[..., BotProcess], trial: int
) -> None:
    rng = random.Random(1000 + trial)
    customers = add_customers(world, 5)
    bot = make_bot().start()
    sender = burst_in_background(world, customers, 10, gap=0.02, rng=rng)
    time.sleep(rng.uniform(0.05, 0.8))
    bot.kill()
    sender.join(30)
    bot.start()
    wait_for(lambda: all_delivered(world, customers), 60, "all 50 messages in Deskie")
    # A little longer, so a double would have time to show.
    time.sleep(1.0)
    v = verdict(world, customers)
    assert v.ok, f"lost={v.lost} doubled={v.doubled} out_of_order={v.out_of_order}\n{bot.log()[-3000:]}"
    assert bot.stop() == 0


def test_agent_answers_during_a_crash_are_posted_once(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello")
    case = first_case(world)
    world.dk.agent_reply(case["case_id"], content="answer 1")
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="answer 1")
    bot.kill()
    for i in (2, 3, 4):
        world.dk.agent_reply(case["case_id"], content=f"answer {i}")
    bot.start()
    wait_for(lambda: len(bot_posts(world, world.jane_dm["id"])) >= 4, 30, "answers 2-4 after the restart")
    time.sleep(2.5)  # more polls: nothing may come twice
    assert [p["message"] for p in bot_posts(world, world.jane_dm["id"])] == [f"answer {i}" for i in range(1, 5)]
    assert all(p["props"].get("deskie_message_id") for p in bot_posts(world, world.jane_dm["id"]))


def test_a_20_second_deskie_outage_delays_but_loses_nothing(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    customers = add_customers(world, 3)
    bot = make_bot().start()
    world.dk.outage(20, "5xx")
    burst(world, customers, 4, gap=0.2)
    time.sleep(3)
    assert not cases_of(world)
    wait_for(lambda: all_delivered(world, customers), 60, "delivery after the outage")
    v = verdict(world, customers)
    assert v.ok, f"{v}"
    assert bot.healthy()


@pytest.mark.parametrize("resumable", [True, False])
def test_websocket_drops_while_customers_post(
    world: World, make_bot: Callable[..., BotProcess], resumable: bool
) -> None:
    customers = add_customers(world, 3)
    bot = make_bot().start()
    sender = burst_in_background(world, customers, 8, gap=0.05, rng=random.Random(7))
    for _ in range(3):
        time.sleep(0.25)
        world.mm.drop_connections(resumable=resumable)
    sender.join(30)
    wait_for(lambda: all_delivered(world, customers), 60, "all messages after the drops")
    time.sleep(1.0)
    v = verdict(world, customers)
    assert v.ok, f"{v}\n{bot.log()[-2000:]}"


def test_silent_server_is_detected_and_replaced(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot()
    text = bot.config_path.read_text().replace("team: ''", "team: ''\n  ping_interval: 1s")
    bot.config_path.write_text(text)
    bot.start()
    world.mm.set_silent(True)
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "are you alive?")
    wait_for(lambda: bot.health()["mattermost"]["reconnects"] >= 1, 20, "dead link noticed")
    world.mm.set_silent(False)
    wait_for(lambda: cases_of(world), 30, "the post delivered after reconnecting")


def test_small_plan_burst_from_several_people_gets_no_429(world: World, make_bot: Callable[..., BotProcess]) -> None:
    world.dk.set_rate_limit(20, window_seconds=10)
    customers = add_customers(world, 3)
    make_bot(poll_interval="30s").start()
    burst(world, customers, 10, gap=0.1, rng=random.Random(3))
    wait_for(lambda: all_delivered(world, customers), 90, "everything delivered")
    v = verdict(world, customers)
    assert v.ok, f"{v}"
    assert world.dk.count_429 == 0


def test_small_plan_burst_to_one_chat_goes_out_in_few_writes(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    world.dk.set_rate_limit(20, window_seconds=10)
    customers = add_customers(world, 1)
    make_bot(poll_interval="30s").start()
    burst(world, customers, 30, gap=0.15, rng=random.Random(4))  # about 2-4 seconds
    wait_for(lambda: all_delivered(world, customers), 90, "everything delivered")
    v = verdict(world, customers)
    assert v.ok, f"{v}"
    assert world.dk.count_429 == 0
    (case,) = cases_of(world)
    writes = 1 + world.dk.writes(case["case_id"])  # the case itself, then its messages
    assert writes <= 5, f"{writes} writes for 30 messages"


def test_stop_while_work_is_queued_loses_nothing(world: World, make_bot: Callable[..., BotProcess]) -> None:
    customers = add_customers(world, 2)
    bot = make_bot().start()
    world.dk.outage(600, "5xx")
    burst(world, customers, 3, gap=0.05)
    time.sleep(1)
    started = time.monotonic()
    assert bot.stop() == 0
    assert time.monotonic() - started < 15
    world.dk.clear_faults()
    bot.start()
    wait_for(lambda: all_delivered(world, customers), 30, "delivery after the restart")
    assert verdict(world, customers).ok
    assert all(c["channel"] == CHANNEL_CODE for c in cases_of(world))


def test_write_applied_but_unanswered_when_killed_is_not_sent_twice(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    """Deskie did the write, the bot died before hearing so: on restart it looks before re-sending."""
    bot = make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "first")
    case = first_case(world)
    world.dk.slow_next_write(1, seconds=30)
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "second")
    wait_for(lambda: "second" in "".join(m["content"] for m in world.dk.messages(case["case_id"])),
             what="the write applied in Deskie")
    bot.kill()  # the answer is still 30 s away
    bot.start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "third")
    wait_for(lambda: "third" in "".join(m["content"] for m in world.dk.messages(case["case_id"])), what="third")
    contents = [m["content"] for m in world.dk.messages(case["case_id"])]
    assert contents == ["first", "second", "third"], contents
    # The in-flight write was looked up, not made again: one POST for "second" (run 1), one for "third".
    writes = [e for e in world.dk.request_log
              if e["method"] == "POST" and e["path"] == f"/api/cases/{case['case_id']}/messages.json"]
    assert len(writes) == 2, writes


def test_case_created_but_unanswered_when_killed_is_not_created_twice(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot().start()
    world.dk.slow_next_write(1, seconds=30)
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "please help")
    wait_for(lambda: cases_of(world), what="the case created in Deskie")
    bot.kill()
    bot.start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "still there?")
    wait_for(lambda: len(world.dk.messages(cases_of(world)[0]["case_id"])) == 2, what="the follow-up")
    assert len(cases_of(world)) == 1
    assert [m["content"] for m in world.dk.messages(cases_of(world)[0]["case_id"])] == ["please help", "still there?"]


@pytest.mark.parametrize("style", ["429", "403rate"])
def test_rate_limit_refusals_pause_and_nothing_is_lost(
    world: World, make_bot: Callable[..., BotProcess], style: str
) -> None:
    customers = add_customers(world, 2)
    bot = make_bot(poll_interval="30s").start()
    world.dk.outage(3, style)
    burst(world, customers, 3, gap=0.05)
    wait_for(lambda: all_delivered(world, customers), 30, "delivery after the refusals")
    assert verdict(world, customers).ok
    assert world.dk.count_429 >= 1  # the bot did meet the limit, and waited instead of dropping
    refused = [e for e in world.dk.request_log if e["status"] in (429, 403)]
    assert len(refused) <= 3, "after a refusal the bot pauses all calls rather than hammering"
    assert bot.healthy()


def test_mattermost_rest_outage_delays_answers_but_posts_each_once(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello")
    case = first_case(world)
    world.mm.rest_outage(4, "5xx")
    for i in (1, 2, 3):
        world.dk.agent_reply(case["case_id"], content=f"answer {i}")
    time.sleep(1)
    assert bot_posts(world, world.jane_dm["id"]) == []
    wait_for(lambda: len(bot_posts(world, world.jane_dm["id"])) == 3, 40, "the answers after the outage")
    time.sleep(1.5)
    assert [p["message"] for p in bot_posts(world, world.jane_dm["id"])] == ["answer 1", "answer 2", "answer 3"]
    # The outage was met (Mattermost refused a post), and waited out.
    assert any(e["method"] == "POST" and e["path"] == "/api/v4/posts" and e["status"] >= 500
               for e in world.mm.request_log)


def test_new_customer_during_a_mattermost_rest_outage_is_not_lost(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    make_bot().start()
    customers = add_customers(world, 1)  # never seen by the bot: intake must look them up over REST
    world.mm.rest_outage(3, "5xx")
    burst(world, customers, 3, gap=0.05)
    wait_for(lambda: all_delivered(world, customers), 40, "delivery once REST is back")
    assert verdict(world, customers).ok


def test_channel_history_from_before_the_bot_joined_is_not_relayed(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot(mention_only=False).start()
    assert bot.stop() == 0
    mm = world.mm
    ops = mm.add_channel(world.team["id"], "ops", "Ops", "O")
    mm.add_channel_member(ops["id"], world.jane["id"])
    mm.post_as(world.jane["id"], ops["id"], "old chatter from last month")
    mm.add_channel_member(ops["id"], world.bot["id"])
    mm.post_as(world.jane["id"], ops["id"], "helpbot added to the channel", type="system_add_to_channel",
               props={"addedUserId": world.bot["id"], "addedUsername": "helpbot"})
    mm.post_as(world.jane["id"], ops["id"], "now a real question for support")
    bot.start()
    case = wait_for(lambda: next(iter(cases_of(world)), None), what="the case for ~ops")
    assert world.dk.user(case["user_id"])["user_custom_id"] == f"c:{ops['id']}"
    texts = [m["content"] for m in world.dk.messages(case["case_id"])]
    assert texts == ["Jane Doe (@jane): now a real question for support"]


def test_a_hanging_deskie_delays_but_loses_nothing(world: World, make_bot: Callable[..., BotProcess]) -> None:
    customers = add_customers(world, 2)
    make_bot().start()
    world.dk.outage(4, "hang")  # requests hang until the outage ends, then fail
    burst(world, customers, 3, gap=0.05)
    wait_for(lambda: all_delivered(world, customers), 60, "delivery after the hang")
    v = verdict(world, customers)
    assert v.ok, f"{v}"
