"""Channel scenarios (design §3.1-3.2): which posts are relayed, under which case, and where answers go.

The real bot runs in-process (so a test can ask its store whether a post was recorded) against both
emulators over real sockets. A post that must *not* be relayed is followed by a DM "marker": intake
handles websocket events in order, so once the marker is recorded the earlier post has been decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deskie_mm_bot.sandbox_runner import World
from tests.support.fakes import FakeClock
from tests.support.harness import bot_posts, cases_of, customer_texts, wait_for
from tests.support.inproc import InProcessBot


# ---- helpers ------------------------------------------------------------------------------------------
def case_for(world: World, custom_id: str) -> dict[str, Any] | None:
    for case in cases_of(world):
        if world.dk.user(case["user_id"])["user_custom_id"] == custom_id:
            return case
    return None


def wait_case_for(world: World, custom_id: str) -> dict[str, Any]:
    return wait_for(lambda: case_for(world, custom_id), what=f"a case for {custom_id}")


def joined(world: World, case_id: int) -> str:
    # Posts queued together may reach Deskie as one message, one line each: look at the text.
    return "\n".join(customer_texts(world, case_id))


def wait_text(world: World, case_id: int, text: str) -> str:
    return wait_for(lambda: text in joined(world, case_id) and joined(world, case_id), what=f"{text!r} in Deskie")


def settle(world: World, bot: InProcessBot, text: str = "marker: are you there?") -> dict[str, Any]:
    """Jane DMs the bot; once that post is recorded every post made before it has been decided on.
    Returns once the marker has reached Deskie too, so case counts are final."""
    assert bot.app is not None
    post = world.mm.post_as(world.jane["id"], world.jane_dm["id"], text)
    wait_for(lambda: bot.app.store.has_post(post["id"]), what="the marker DM to be recorded")
    case = wait_case_for(world, f"u:{world.jane['id']}")
    wait_text(world, case["case_id"], text)
    return post


def recorded(bot: InProcessBot, post: dict[str, Any]) -> bool:
    assert bot.app is not None
    return bot.app.store.has_post(post["id"])


def mention(world: World, user: dict[str, Any], channel_id: str, text: str, root_id: str = "") -> dict[str, Any]:
    return world.mm.post_as(user["id"], channel_id, f"@helpbot {text}", root_id=root_id)


@pytest.fixture
def team_bot(world: World, tmp_path: Path, clock: FakeClock) -> Iterator[Callable[[str], InProcessBot]]:
    """An in-process bot whose config sets `mattermost.team`."""
    bots: list[InProcessBot] = []

    def make(team: str) -> InProcessBot:
        path = world.write_config(tmp_path / f"team{len(bots)}", poll_interval="1h")
        config = yaml.safe_load(path.read_text())
        config["mattermost"]["team"] = team
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        bot = InProcessBot(path, clock)
        bots.append(bot)
        return bot.start()

    yield make
    for bot in bots:
        bot.stop()


# ---- intake: what is relayed --------------------------------------------------------------------------
def test_channel_post_without_mention_is_ignored(world: World, inproc_bot: Callable[..., InProcessBot]) -> None:
    bot = inproc_bot(mention_only=True).start()
    chatter = world.mm.post_as(world.bob["id"], world.support["id"], "anyone seen my stapler?")
    reply = world.mm.post_as(world.jane["id"], world.support["id"], "nope", root_id=chatter["id"])
    settle(world, bot)

    assert not recorded(bot, chatter) and not recorded(bot, reply)
    assert case_for(world, f"c:{world.support['id']}") is None
    wait_case_for(world, f"u:{world.jane['id']}")
    assert len(cases_of(world)) == 1  # only the marker DM's case
    assert "stapler" not in "".join(m["content"] for c in cases_of(world) for m in world.dk.messages(c["case_id"]))


def test_channel_post_with_mention_opens_channel_case(world: World, inproc_bot: Callable[..., InProcessBot]) -> None:
    inproc_bot(mention_only=True).start()
    mention(world, world.bob, world.support["id"], "the printer on floor 3 is jammed")

    case = wait_case_for(world, f"c:{world.support['id']}")
    user = world.dk.user(case["user_id"])
    assert user["user_custom_id"] == f"c:{world.support['id']}"
    assert user["user_full_name"] == "Support (~support)"
    assert case["group_id"] == world.group["group_id"]
    assert customer_texts(world, case["case_id"]) == ["Bob Stone (@bob): @helpbot the printer on floor 3 is jammed"]
    assert len(cases_of(world)) == 1


def test_thread_reply_continues_its_case_without_mention(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    bot = inproc_bot(mention_only=True).start()
    root = mention(world, world.bob, world.support["id"], "VPN keeps dropping")
    case = wait_case_for(world, f"c:{world.support['id']}")

    follow = world.mm.post_as(world.jane["id"], world.support["id"], "same here since 9am", root_id=root["id"])
    text = wait_text(world, case["case_id"], "same here since 9am")
    assert recorded(bot, follow)
    assert "Jane Doe (@jane): same here since 9am" in text
    assert text.count("VPN keeps dropping") == 1 and text.count("same here since 9am") == 1
    assert len(cases_of(world)) == 1


def test_mention_only_false_relays_every_channel_post(world: World, inproc_bot: Callable[..., InProcessBot]) -> None:
    inproc_bot(mention_only=False).start()
    world.mm.post_as(world.bob["id"], world.support["id"], "the wifi is down")
    case = wait_case_for(world, f"c:{world.support['id']}")
    world.mm.post_as(world.jane["id"], world.support["id"], "in building B too")

    text = wait_text(world, case["case_id"], "in building B too")
    assert "Bob Stone (@bob): the wifi is down" in text
    assert "Jane Doe (@jane): in building B too" in text
    assert len(cases_of(world)) == 1
    assert world.dk.user(case["user_id"])["user_full_name"] == "Support (~support)"


def test_private_channel_and_group_message_where_bot_is_member(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    mm = world.mm
    bot = inproc_bot(mention_only=True).start()
    ops = mm.add_channel(world.team["id"], "ops", "Ops", "P")
    for u in (world.bot, world.jane):
        mm.add_channel_member(ops["id"], u["id"])
    hr = mm.add_channel(world.team["id"], "hr", "HR", "P")  # the bot is not a member
    for u in (world.jane, world.bob):
        mm.add_channel_member(hr["id"], u["id"])
    gm = mm.group_channel([world.bot["id"], world.jane["id"], world.bob["id"]])

    mention(world, world.jane, ops["id"], "the deploy key expired")
    mention(world, world.bob, gm["id"], "can we get a second monitor?")
    secret = mention(world, world.jane, hr["id"], "salary question")

    ops_case = wait_case_for(world, f"c:{ops['id']}")
    assert world.dk.user(ops_case["user_id"])["user_full_name"] == "Ops (~ops)"
    assert customer_texts(world, ops_case["case_id"]) == ["Jane Doe (@jane): @helpbot the deploy key expired"]
    gm_case = wait_case_for(world, f"c:{gm['id']}")
    assert customer_texts(world, gm_case["case_id"]) == ["Bob Stone (@bob): @helpbot can we get a second monitor?"]

    settle(world, bot)
    assert not recorded(bot, secret)
    assert case_for(world, f"c:{hr['id']}") is None
    assert len(cases_of(world)) == 3  # ops, the group message, the marker DM

    # Answers come back to where the chat is.
    world.dk.agent_reply(ops_case["case_id"], content="new key issued")
    world.dk.agent_reply(gm_case["case_id"], content="ordered")
    wait_for(lambda: bot_posts(world, ops["id"]) and bot_posts(world, gm["id"]), what="both answers")
    assert [p["message"] for p in bot_posts(world, ops["id"])] == ["new key issued"]
    assert [p["message"] for p in bot_posts(world, gm["id"])] == ["ordered"]


def test_channel_of_other_team_is_ignored_when_team_is_set(
    world: World, team_bot: Callable[[str], InProcessBot]
) -> None:
    mm = world.mm
    globex = mm.add_team("globex", "Globex")
    for u in (world.bot, world.bob):
        mm.add_team_member(globex["id"], u["id"])
    lobby = mm.add_channel(globex["id"], "lobby", "Lobby", "O")
    for u in (world.bot, world.bob):
        mm.add_channel_member(lobby["id"], u["id"])
    bot = team_bot("acme")

    other = mention(world, world.bob, lobby["id"], "hello from globex")
    mention(world, world.bob, world.support["id"], "hello from acme")
    case = wait_case_for(world, f"c:{world.support['id']}")
    settle(world, bot)

    assert not recorded(bot, other)
    assert case_for(world, f"c:{lobby['id']}") is None
    assert customer_texts(world, case["case_id"]) == ["Bob Stone (@bob): @helpbot hello from acme"]
    assert len(cases_of(world)) == 2  # ~support and the marker DM


def test_dm_always_relayed_even_with_mention_only(world: World, inproc_bot: Callable[..., InProcessBot]) -> None:
    inproc_bot(mention_only=True).start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "no mention here, just a question")

    case = wait_case_for(world, f"u:{world.jane['id']}")
    assert world.dk.user(case["user_id"])["user_full_name"] == "Jane Doe (@jane)"
    assert customer_texts(world, case["case_id"]) == ["no mention here, just a question"]  # no author prefix in a DM


# ---- group_chat mode ------------------------------------------------------------------------------------
def test_group_chat_answers_go_to_top_level_of_channel(world: World, inproc_bot: Callable[..., InProcessBot]) -> None:
    inproc_bot(reply_mode="group_chat").start()
    root = mention(world, world.bob, world.support["id"], "projector in room 2 is dead")
    case = wait_case_for(world, f"c:{world.support['id']}")
    world.mm.post_as(world.jane["id"], world.support["id"], "room 3 as well", root_id=root["id"])
    wait_text(world, case["case_id"], "room 3 as well")

    world.dk.agent_reply(case["case_id"], content="a technician is on the way")
    posts = wait_for(lambda: bot_posts(world, world.support["id"]), what="the answer in ~support")
    assert [(p["message"], p["root_id"]) for p in posts] == [("a technician is on the way", "")]
    assert len(cases_of(world)) == 1


def test_group_chat_several_people_share_one_case_and_each_message_names_its_author(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    mm = world.mm
    inproc_bot(reply_mode="group_chat", mention_only=False).start()
    mm.post_as(world.bob["id"], world.support["id"], "the coffee machine leaks")
    case = wait_case_for(world, f"c:{world.support['id']}")
    mm.post_as(world.jane["id"], world.support["id"], "it also beeps")
    mm.post_as(world.bob["id"], world.support["id"], "and smells of smoke")

    text = wait_text(world, case["case_id"], "smells of smoke")
    text = wait_text(world, case["case_id"], "it also beeps")
    assert len(cases_of(world)) == 1
    lines = text.splitlines()
    assert any(line.endswith("Bob Stone (@bob): the coffee machine leaks") for line in lines)
    assert any(line.endswith("Jane Doe (@jane): it also beeps") for line in lines)
    assert any(line.endswith("Bob Stone (@bob): and smells of smoke") for line in lines)
    for said in ("coffee machine leaks", "it also beeps", "smells of smoke"):
        assert text.count(said) == 1
    assert text.index("coffee") < text.index("beeps") < text.index("smoke")


# ---- thread mode ---------------------------------------------------------------------------------------
def test_thread_mode_each_top_level_message_starts_its_own_case(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    inproc_bot(reply_mode="thread").start()
    mention(world, world.bob, world.support["id"], "my laptop will not boot")
    bob_case = wait_case_for(world, f"u:{world.bob['id']}")
    mention(world, world.jane, world.support["id"], "I need access to the wiki")
    jane_case = wait_case_for(world, f"u:{world.jane['id']}")
    mention(world, world.bob, world.support["id"], "separately: my badge is broken")
    wait_for(lambda: len(cases_of(world)) == 3, what="a third case")

    assert bob_case["case_id"] != jane_case["case_id"]
    assert world.dk.user(bob_case["user_id"])["user_full_name"] == "Bob Stone (@bob)"
    assert world.dk.user(jane_case["user_id"])["user_full_name"] == "Jane Doe (@jane)"
    assert customer_texts(world, bob_case["case_id"]) == ["Bob Stone (@bob): @helpbot my laptop will not boot"]
    assert customer_texts(world, jane_case["case_id"]) == ["Jane Doe (@jane): @helpbot I need access to the wiki"]
    third = cases_of(world)[2]
    assert world.dk.user(third["user_id"])["user_custom_id"] == f"u:{world.bob['id']}"
    assert customer_texts(world, third["case_id"]) == ["Bob Stone (@bob): @helpbot separately: my badge is broken"]
    assert case_for(world, f"c:{world.support['id']}") is None


def test_thread_reply_continues_its_case(world: World, inproc_bot: Callable[..., InProcessBot]) -> None:
    inproc_bot(reply_mode="thread").start()
    root = mention(world, world.bob, world.support["id"], "printer says PC LOAD LETTER")
    case = wait_case_for(world, f"u:{world.bob['id']}")
    world.mm.post_as(world.jane["id"], world.support["id"], "it means it is out of paper", root_id=root["id"])
    world.mm.post_as(world.bob["id"], world.support["id"], "tray is full though", root_id=root["id"])

    text = wait_text(world, case["case_id"], "tray is full though")
    text = wait_text(world, case["case_id"], "out of paper")
    assert len(cases_of(world)) == 1
    # The case stays the top-level author's; the thread's other voices are named in the text.
    assert world.dk.user(case["user_id"])["user_custom_id"] == f"u:{world.bob['id']}"
    assert "Jane Doe (@jane): it means it is out of paper" in text
    assert "Bob Stone (@bob): tray is full though" in text
    assert text.count("out of paper") == 1 and text.count("tray is full") == 1


def test_thread_mode_answers_are_posted_into_the_thread(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    inproc_bot(reply_mode="thread").start()
    first = mention(world, world.bob, world.support["id"], "monitor flickers")
    bob_case = wait_case_for(world, f"u:{world.bob['id']}")
    second = mention(world, world.jane, world.support["id"], "keyboard missing a key")
    jane_case = wait_case_for(world, f"u:{world.jane['id']}")

    world.dk.agent_reply(jane_case["case_id"], content="new keyboard on your desk")
    world.dk.agent_reply(bob_case["case_id"], content="try another cable")
    posts = wait_for(lambda: len(bot_posts(world, world.support["id"])) == 2 and bot_posts(world, world.support["id"]),
                     what="both answers")
    by_root = {p["root_id"]: p["message"] for p in posts}
    assert by_root == {first["id"]: "try another cable", second["id"]: "new keyboard on your desk"}


def test_thread_mode_in_a_dm_case_user_is_the_author_and_answers_go_to_the_thread(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    mm, dm = world.mm, world.jane_dm["id"]
    inproc_bot(reply_mode="thread").start()
    root = mm.post_as(world.jane["id"], dm, "my mailbox is full")
    case = wait_case_for(world, f"u:{world.jane['id']}")
    assert world.dk.user(case["user_id"])["user_full_name"] == "Jane Doe (@jane)"
    mm.post_as(world.jane["id"], dm, "it says 50 GB used", root_id=root["id"])
    wait_text(world, case["case_id"], "50 GB used")
    other = mm.post_as(world.jane["id"], dm, "unrelated: new phone please")
    wait_for(lambda: len(cases_of(world)) == 2, what="a second case for the second top-level DM")

    assert joined(world, case["case_id"]) == "my mailbox is full\nit says 50 GB used"  # no author prefix in a DM
    second = cases_of(world)[1]
    assert world.dk.user(second["user_id"])["user_custom_id"] == f"u:{world.jane['id']}"
    assert customer_texts(world, second["case_id"]) == ["unrelated: new phone please"]

    world.dk.agent_reply(case["case_id"], content="archived old mail")
    world.dk.agent_reply(second["case_id"], content="phone ordered")
    posts = wait_for(lambda: len(bot_posts(world, dm)) == 2 and bot_posts(world, dm), what="both answers")
    assert {p["root_id"]: p["message"] for p in posts} == {root["id"]: "archived old mail", other["id"]: "phone ordered"}
