"""Catch-up after lost websocket events, including against a server that cannot list the bot's channels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deskie_mm_bot.mattermost.rest import MattermostRejected
from deskie_mm_bot.sandbox_runner import World
from tests.harness import customer_texts, first_case, wait_for, world
from tests.inproc import InProcessBot, clock, inproc_bot

__all__ = ["clock", "inproc_bot", "world"]


def test_lost_events_are_caught_up_from_known_channels_when_listing_is_unsupported(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    bot = inproc_bot().start()
    mm = world.mm
    mm.post_as(world.jane["id"], world.jane_dm["id"], "first")
    case = first_case(world)
    assert bot.app is not None and bot.app.rest is not None

    async def unsupported(team_id: str) -> list[dict[str, Any]]:
        raise MattermostRejected(404, "api.context.404.app_error", "no such route")

    bot.app.rest.my_channels = unsupported  # type: ignore[method-assign]
    mm.set_reject_websocket(True)
    mm.drop_connections(resumable=False)
    mm.post_as(world.jane["id"], world.jane_dm["id"], "second, while the bot was away")
    mm.set_reject_websocket(False)
    wait_for(lambda: "second, while the bot was away" in "".join(customer_texts(world, case["case_id"])), 30,
             "the lost post caught up")
    assert bot.app.ws is not None and bot.app.ws.resyncs >= 2
