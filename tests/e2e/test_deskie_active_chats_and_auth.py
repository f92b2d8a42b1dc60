"""The bot against Deskie as its users' code shows it behaves: live chats hidden from case lists,
401/403 as credential errors. The bot runs as a subprocess against the corrected emulator."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import pytest

from deskie_mm_bot.sandbox_runner import STAFF_EMAIL, World
from tests.support.harness import BotProcess, bot_posts, cases_of, customer_texts, first_case, wait_for


def test_an_answer_whose_webhook_was_lost_is_found_by_the_poll_while_the_chat_is_live(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello")
    case = first_case(world)
    world.dk.set_webhook_enabled(False)
    world.dk.agent_reply(case["case_id"], content="found by the poll")
    assert world.dk.chat_active(case["case_id"])  # so a list without show_active_chats would not show it
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), 15, "the answer in the DM")
    time.sleep(2.5)  # more polls: nothing twice
    assert [p["message"] for p in bot_posts(world, world.jane_dm["id"])] == ["found by the poll"]
    lists = [r for r in world.dk.request_log if r["path"] == "/api/cases.json" and r["method"] == "GET"]
    assert lists and all(r["query"].get("show_active_chats") == "true" for r in lists)
    assert bot.stop() == 0


def test_a_crash_while_the_create_was_in_flight_leaves_exactly_one_case(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot().start()
    world.dk.slow_next_write(1, seconds=3.0)  # applied at once, answered late
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "only once please")
    case = first_case(world)
    assert world.dk.chat_active(case["case_id"])
    bot.kill()  # before Deskie's answer to the create arrived
    bot.start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "and a follow-up")
    wait_for(lambda: len(customer_texts(world, case["case_id"])) >= 2, 20, "the follow-up in the same case")
    time.sleep(1.5)
    assert len(cases_of(world)) == 1
    assert customer_texts(world, case["case_id"]) == ["only once please", "and a follow-up"]
    assert bot.stop() == 0


def test_a_403_stops_the_bot_naming_the_staff_email_and_a_restart_delivers_every_queued_message_once(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "first")
    case = first_case(world)
    world.dk.set_staff_email(STAFF_EMAIL, "renamed@sandbox.local")  # the bot's login is now wrong: 403
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "second")
    world.mm.post_as(world.bob["id"], world.support["id"], "@helpbot a new chat")
    assert bot.wait_exit(30) == 1
    lines = [line for line in bot.log().splitlines() if "deskie.staff_email" in line]
    assert lines and "HTTP 403" in lines[-1]
    state = sqlite3.connect(bot.config_path.parent / "state.sqlite3")
    failed = state.execute("SELECT count(*) FROM outbox WHERE state = 'failed'").fetchone()[0]
    state.close()
    assert failed == 0
    world.dk.set_staff_email("renamed@sandbox.local", STAFF_EMAIL)
    bot.start()
    wait_for(lambda: len(cases_of(world)) == 2 and len(customer_texts(world, case["case_id"])) == 2, 20,
             "the queued messages")
    time.sleep(1.5)
    assert customer_texts(world, case["case_id"]) == ["first", "second"]
    other = next(c for c in cases_of(world) if c["case_id"] != case["case_id"])
    assert [t.split(": ", 1)[-1] for t in customer_texts(world, other["case_id"])] == ["@helpbot a new chat"]
    assert bot.stop() == 0


@pytest.mark.parametrize("bumps", [False, True], ids=["end_keeps_updated_at", "end_moves_updated_at"])
def test_a_chat_deskie_ended_goes_on_in_the_same_case_either_way(
    world: World, make_bot: Callable[..., BotProcess], bumps: bool
) -> None:
    """Whether ending a chat moves `updated_at` is unknown (§5.7): the chat goes on in its case."""
    world.dk.variants.chat_end_bumps_updated = bumps
    bot = make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello")
    case = first_case(world)
    world.dk.agent_reply(case["case_id"], content="hi, how can I help?")
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), 15, "the first answer")
    world.dk.end_chat(case["case_id"])
    time.sleep(2.5)  # polls see the ended chat (and, in one variant, its new updated_at)
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "one more thing")
    wait_for(lambda: len(customer_texts(world, case["case_id"])) == 2, 15, "the message in the same case")
    assert world.dk.chat_active(case["case_id"])  # reactivated by the message
    world.dk.agent_reply(case["case_id"], content="sure")
    wait_for(lambda: len(bot_posts(world, world.jane_dm["id"])) == 2, 15, "the second answer")
    time.sleep(2.0)
    assert [p["message"] for p in bot_posts(world, world.jane_dm["id"])] == ["hi, how can I help?", "sure"]
    assert len(cases_of(world)) == 1
    assert bot.stop() == 0
