"""Group messages (type G) with `mention_only`: the server counts every member but the poster as mentioned,
so the bot is in `mentions` on every GM post; only the text says whether it was addressed. The real bot
runs in-process against both emulators over real sockets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import cases_of, customer_texts, wait_for
from tests.support.inproc import InProcessBot


def _case_for(world: World, custom_id: str) -> dict | None:
    return next((c for c in cases_of(world) if world.dk.user(c["user_id"])["user_custom_id"] == custom_id), None)


@pytest.mark.parametrize("mentions", ["own", "all"])  # a current server, and one before 9.3
def test_a_group_message_is_relayed_only_when_its_text_names_the_bot(
    world: World, inproc_bot: Callable[..., InProcessBot], mentions: str
) -> None:
    mm = world.mm
    mm.variants.mentions = mentions
    bot = inproc_bot(mention_only=True).start()
    assert bot.app is not None and bot.app.store is not None
    store = bot.app.store
    gm = mm.group_channel([world.bot["id"], world.jane["id"], world.bob["id"]])
    chatter = mm.post_as(world.jane["id"], gm["id"], "bob, lunch at noon?")
    asked = mm.post_as(world.bob["id"], gm["id"], "@helpbot can we get a second monitor?")
    wait_for(lambda: store.has_post(asked["id"]), what="the post that names the bot recorded")
    case = wait_for(lambda: _case_for(world, f"c:{gm['id']}"), what="the group message's case")
    # Intake takes events in order: the later post is decided, so the earlier one was too.
    assert not store.has_post(chatter["id"])
    assert customer_texts(world, case["case_id"]) == ["Bob Stone (@bob): @helpbot can we get a second monitor?"]
    assert world.dk.user(case["user_id"])["user_full_name"] == "bob, helpbot, jane (group message)"
    later = mm.post_as(world.jane["id"], gm["id"], "and one more thing for bob")
    named = mm.post_as(world.jane["id"], gm["id"], "@helpbot me too please")
    wait_for(lambda: "me too" in "".join(customer_texts(world, case["case_id"])), what="the second request")
    assert not store.has_post(later["id"])
    assert len(cases_of(world)) == 1 and store.has_post(named["id"])
