"""With chats.agent_name an answer starts with the agent's full name; an agent that cannot be named
(a rule's message, an unknown staff id, a lookup that fails) never holds the answer back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import BotProcess, bot_posts, first_case, wait_for


def ask(world: World) -> dict[str, Any]:
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "anyone there?")
    return first_case(world)


def answers(world: World, n: int, timeout: float = 15) -> list[str]:
    posts = wait_for(lambda: (p := bot_posts(world, world.jane_dm["id"])) and len(p) >= n and p, timeout,
                     f"{n} answer(s)")
    return [p["message"] for p in posts]


def staff_lookups(world: World) -> int:
    return sum(1 for e in world.dk.request_log if e["path"].startswith("/api/staff"))


def test_an_answer_starts_with_the_agents_name_looked_up_once(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    anna = world.dk.add_staff("anna.smith@sandbox.local", "Anna Smith")
    make_bot(agent_name=True).start()
    case = ask(world)
    world.dk.agent_reply(case["case_id"], content="Hello Jane, how can I help?", staff_id=anna["staff_id"])
    assert answers(world, 1) == ["Anna Smith: Hello Jane, how can I help?"]
    world.dk.agent_reply(case["case_id"], html="<ul><li>one</li><li>two</li></ul>", staff_id=anna["staff_id"])
    # A list keeps rendering as a list: the name stands above it.
    assert answers(world, 2)[1] == "Anna Smith:\n\n- one\n- two"
    assert staff_lookups(world) == 1  # cached


def test_a_long_answer_names_the_agent_in_its_first_part_only(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    anna = world.dk.add_staff("anna.smith@sandbox.local", "Anna Smith")
    make_bot(agent_name=True).start()
    case = ask(world)
    text = "\n\n".join(f"Step {i}: " + "do this " * 300 for i in range(12))
    world.dk.agent_reply(case["case_id"], content=text, staff_id=anna["staff_id"])
    parts = answers(world, 2)
    assert parts[0].startswith("Anna Smith: Step 0:")
    assert all("Anna Smith" not in p for p in parts[1:])


def test_a_webhook_without_staff_id_still_names_the_agent(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    world.dk.variants.webhook_omit = {"staff_id"}  # the reference has staff_id from one library only
    anna = world.dk.add_staff("anna.smith@sandbox.local", "Anna Smith")
    make_bot(agent_name=True).start()
    case = ask(world)
    world.dk.agent_reply(case["case_id"], content="found it", staff_id=anna["staff_id"])
    assert answers(world, 1) == ["Anna Smith: found it"]


def test_a_rules_message_is_posted_without_a_name(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot(agent_name=True).start()
    case = ask(world)
    world.dk.rule_message(case["case_id"], "We are closed on Sundays.")
    assert answers(world, 1) == ["We are closed on Sundays."]


def test_an_unknown_agent_is_posted_without_a_name(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot(agent_name=True).start()
    case = ask(world)
    conv_user = world.dk.user(case["user_id"])["user_custom_id"]
    r = requests.post(world.webhook_url, timeout=5, data={
        "type": "message_new", "object[case_id]": str(case["case_id"]), "object[message_id]": "987654",
        "object[custom_user_id]": conv_user, "object[staff_id]": "424242", "object[content]": "from a former agent",
    })
    assert r.status_code == 200
    assert answers(world, 1) == ["from a former agent"]


def test_a_failing_lookup_does_not_hold_the_answer_back(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    anna = world.dk.add_staff("anna.smith@sandbox.local", "Anna Smith")
    make_bot(agent_name=True, poll_interval="1h").start()
    case = ask(world)
    world.dk.outage(20, "hang")  # every API call hangs: the staff lookup too
    t0 = time.monotonic()
    world.dk.agent_reply(case["case_id"], content="posted anyway", staff_id=anna["staff_id"])
    assert answers(world, 1) == ["posted anyway"]
    assert time.monotonic() - t0 < 8


def test_agent_name_off_posts_the_words_only(world: World, make_bot: Callable[..., BotProcess]) -> None:
    anna = world.dk.add_staff("anna.smith@sandbox.local", "Anna Smith")
    make_bot(agent_name=False).start()
    case = ask(world)
    world.dk.agent_reply(case["case_id"], content="just the words", staff_id=anna["staff_id"])
    assert answers(world, 1) == ["just the words"]
    assert staff_lookups(world) == 0
