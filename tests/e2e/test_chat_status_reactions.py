"""Status at a glance: :eyes: on the chat's first customer post when the first answer is posted,
:white_check_mark: when its case is closed in Deskie; once each, across restarts, and never at the
cost of a message."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import BotProcess, bot_posts, first_case, wait_for


def emojis(world: World, post_id: str) -> list[str]:
    return [r["emoji_name"] for r in world.mm.reactions_on(post_id) if r["user_id"] == world.bot["id"]]


def reaction_calls(world: World) -> int:
    return sum(1 for e in world.mm.request_log if e["method"] == "POST" and e["path"] == "/api/v4/reactions")


def test_eyes_on_the_first_answer_and_a_check_mark_when_closed(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    make_bot().start()
    first = world.mm.post_as(world.jane["id"], world.jane_dm["id"], "my invoice is wrong")
    case = first_case(world)
    second = world.mm.post_as(world.jane["id"], world.jane_dm["id"], "it says 100 instead of 10")
    wait_for(lambda: len(world.dk.messages(case["case_id"])) == 2, what="the follow-up")
    assert emojis(world, first["id"]) == []  # nobody has answered yet
    world.dk.agent_reply(case["case_id"], content="looking into it")
    wait_for(lambda: emojis(world, first["id"]) == ["eyes"], what=":eyes:")
    world.dk.agent_reply(case["case_id"], content="fixed")
    wait_for(lambda: len(bot_posts(world, world.jane_dm["id"])) == 2, what="the second answer")
    world.dk.close_case(case["case_id"])
    wait_for(lambda: emojis(world, first["id"]) == ["eyes", "white_check_mark"], 15, "the check mark (by the poll)")
    time.sleep(2.5)  # more polls see the case closed: no more reactions
    assert reaction_calls(world) == 2
    assert emojis(world, second["id"]) == []


def test_in_thread_mode_the_thread_root_gets_them(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot(reply_mode="thread").start()
    root = world.mm.post_as(world.jane["id"], world.support["id"], "@helpbot the wifi is down")
    case = first_case(world)
    world.mm.post_as(world.jane["id"], world.support["id"], "on floor 3", root_id=root["id"])
    wait_for(lambda: len(world.dk.messages(case["case_id"])) == 2, what="the reply in the thread")
    world.dk.agent_reply(case["case_id"], content="a technician is coming")
    wait_for(lambda: emojis(world, root["id"]) == ["eyes"], what=":eyes: on the root")


def test_reactions_are_not_repeated_after_a_restart(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot()
    bot.start()
    first = world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello")
    case = first_case(world)
    world.dk.agent_reply(case["case_id"], content="hi!")
    wait_for(lambda: emojis(world, first["id"]) == ["eyes"], what=":eyes:")
    assert bot.stop() == 0
    world.dk.agent_reply(case["case_id"], content="still there?")  # found by the poll after the restart
    bot.start()
    wait_for(lambda: len(bot_posts(world, world.jane_dm["id"])) == 2, what="the answer after the restart")
    time.sleep(1.5)
    assert reaction_calls(world) == 1


def test_a_failing_reaction_neither_blocks_nor_repeats_a_message(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    make_bot().start()
    first = world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello")
    case = first_case(world)
    world.mm.fail_rest_next(2, 503, match="POST /api/v4/reactions")
    world.dk.agent_reply(case["case_id"], content="one")
    world.dk.agent_reply(case["case_id"], content="two")
    posts = wait_for(lambda: (p := bot_posts(world, world.jane_dm["id"])) and len(p) == 2 and p, what="answers")
    assert [p["message"] for p in posts] == ["one", "two"]
    wait_for(lambda: emojis(world, first["id"]) == ["eyes"], 20, ":eyes: after the failures")
    time.sleep(1)
    assert [p["message"] for p in bot_posts(world, world.jane_dm["id"])] == ["one", "two"]


def test_a_close_seen_at_the_next_write_marks_the_chat(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot(poll_interval="1h").start()
    # The first poll runs soon after the start; after it, none for an hour: only the write can see it.
    wait_for(lambda: any(e["path"] == "/api/cases.json" and e["method"] == "GET" for e in world.dk.request_log),
             what="the first poll")
    first = world.mm.post_as(world.jane["id"], world.jane_dm["id"], "question one")
    case = first_case(world)
    world.dk.close_case(case["case_id"])
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "question two")
    wait_for(lambda: len(world.dk.cases()) == 2, what="a new case for the new question")
    wait_for(lambda: emojis(world, first["id"]) == ["white_check_mark"], what="the check mark")


def test_reactions_off_makes_none(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot(reactions=False).start()
    first: dict[str, Any] = world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello")
    case = first_case(world)
    world.dk.agent_reply(case["case_id"], content="hi")
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    world.dk.close_case(case["case_id"])
    time.sleep(2.5)
    assert world.mm.reactions_on(first["id"]) == [] and reaction_calls(world) == 0
