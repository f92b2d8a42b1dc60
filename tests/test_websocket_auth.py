"""The bot's websocket against the emulator: a quiet resume is healthy at once; a server that does not
take the Bearer header still gets the bot authenticated by challenge."""

from __future__ import annotations

from collections.abc import Callable

from deskie_mm_bot.sandbox_runner import World
from tests.harness import BotProcess, cases_of, make_bot, wait_for, world

__all__ = ["make_bot", "world"]


def test_a_resume_without_events_is_connected_at_once(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot().start()
    world.mm.drop_connections(resumable=True)
    # No event follows the resume, so no hello and no posted: the bot's own ping answer proves the link.
    try:
        wait_for(lambda: world.mm.connection_count() == 1, 10, "the resumed connection")
    except AssertionError:
        raise AssertionError(f"connections: {world.mm.connection_count()}\n{bot.log()[-3000:]}") from None
    wait_for(bot.healthy, 5, "health right after a quiet resume")
    assert "catch-up over REST" in bot.log()  # once, at start
    assert bot.log().count("catch-up over REST") == 1  # the resume needed none


def test_without_header_auth_the_bot_authenticates_by_challenge(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    world.mm.set_header_auth(False)
    bot = make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello over a challenged socket")
    wait_for(lambda: cases_of(world), 15, "the post relayed")
    assert bot.healthy()
