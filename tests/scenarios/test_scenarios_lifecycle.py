"""Chat lifecycle scenarios: idle end, ended-is-not-closed, closed cases. Time is the test's."""

from __future__ import annotations

from collections.abc import Callable

from deskie_mm_bot.sandbox_runner import World
from tests.support.fakes import FakeClock
from tests.support.harness import bot_posts, cases_of, customer_texts, first_case, wait_for
from tests.support.inproc import InProcessBot


def test_idle_chat_ends_open_when_customer_spoke_last(
    world: World, inproc_bot: Callable[..., InProcessBot], clock: FakeClock
) -> None:
    bot = inproc_bot(idle_timeout="10m").start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "anyone there?")
    case = first_case(world)
    world.dk.set_status(case["case_id"], "waiting")  # so the bot's change is visible
    clock.advance(9 * 60)
    assert bot.call(bot.app.sweeper.sweep) == 0
    assert world.dk.get_case(case["case_id"])["status"] == "waiting"
    clock.advance(2 * 60)
    assert bot.call(bot.app.sweeper.sweep) == 1
    assert world.dk.get_case(case["case_id"])["status"] == "open"


def test_idle_chat_ends_waiting_when_agent_spoke_last(
    world: World, inproc_bot: Callable[..., InProcessBot], clock: FakeClock
) -> None:
    bot = inproc_bot(idle_timeout="10m").start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "help")
    case = first_case(world)
    world.dk.agent_reply(case["case_id"], content="here")
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    world.dk.set_status(case["case_id"], "open")
    clock.advance(11 * 60)
    assert bot.call(bot.app.sweeper.sweep) == 1
    assert world.dk.get_case(case["case_id"])["status"] == "waiting"


def test_ended_chat_whose_case_is_open_continues_that_case(
    world: World, inproc_bot: Callable[..., InProcessBot], clock: FakeClock
) -> None:
    bot = inproc_bot(idle_timeout="10m").start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "one")
    case = first_case(world)
    clock.advance(11 * 60)
    assert bot.call(bot.app.sweeper.sweep) == 1
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "two, after a long pause")
    wait_for(lambda: len(customer_texts(world, case["case_id"])) == 2, what="the follow-up on the same case")
    assert len(cases_of(world)) == 1


def test_closed_case_next_message_opens_new_case(
    world: World, inproc_bot: Callable[..., InProcessBot], clock: FakeClock
) -> None:
    bot = inproc_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "one")
    case = first_case(world)
    world.dk.close_case(case["case_id"])
    # Not yet seen by reconciliation: the bot learns it from Deskie's answer to its write.
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "two")
    wait_for(lambda: len(cases_of(world)) == 2, what="a second case")
    second = cases_of(world)[1]
    assert customer_texts(world, second["case_id"]) == ["two"]
    assert world.dk.user(second["user_id"])["user_custom_id"] == f"u:{world.jane['id']}"
    world.dk.agent_reply(second["case_id"], content="new case answer")
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    assert bot is not None


def test_agent_answer_on_a_closed_case_reopens_the_chat(
    world: World, inproc_bot: Callable[..., InProcessBot], clock: FakeClock
) -> None:
    bot = inproc_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "one")
    case = first_case(world)
    world.dk.close_case(case["case_id"])
    bot.call(bot.app.reconciler.poll)
    assert bot.app.store.conversation_by_case(case["case_id"]).state == "closed"
    world.dk.agent_reply(case["case_id"], content="one more thing about your question")
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "yes?")
    wait_for(lambda: "yes?" in customer_texts(world, case["case_id"]), what="the reply on the reopened case")
    assert len(cases_of(world)) == 1


def test_answer_mattermost_refuses_is_told_to_the_agent(
    world: World, inproc_bot: Callable[..., InProcessBot], clock: FakeClock
) -> None:
    inproc_bot().start()
    world.mm.post_as(world.bob["id"], world.support["id"], "@helpbot the printer on floor 2 is jammed")
    case = first_case(world)
    world.mm.remove_channel_member(world.support["id"], world.bot["id"])
    world.dk.agent_reply(case["case_id"], content="On my way")
    note = wait_for(lambda: [m for m in world.dk.messages(case["case_id"]) if m["note"]], what="a note for the agent")
    assert "could not be posted" in note[0]["content"] and "On my way" in note[0]["content"]
    assert bot_posts(world, world.support["id"]) == []


def test_idle_sweep_never_reopens_a_case_an_agent_closed(
    world: World, inproc_bot: Callable[..., InProcessBot], clock: FakeClock
) -> None:
    bot = inproc_bot(idle_timeout="10m").start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "thanks, all good")
    case = first_case(world)
    world.dk.close_case(case["case_id"])  # not yet seen by reconciliation
    clock.advance(11 * 60)
    assert bot.call(bot.app.sweeper.sweep) == 0
    assert world.dk.get_case(case["case_id"])["status"] == "closed"
    assert bot.app.store.conversation_by_case(case["case_id"]).state == "closed"
