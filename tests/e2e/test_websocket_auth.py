"""The bot's websocket against the emulator: a quiet resume is healthy at once; a server that does not
take the Bearer header still gets the bot authenticated by challenge; a revoked token, which the upgrade
does not refuse, stops the bot with exit 1."""

from __future__ import annotations

from collections.abc import Callable

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import BotProcess, cases_of, wait_for


def test_a_resume_without_events_is_connected_at_once(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot().start()
    world.mm.drop_connections(resumable=True)
    # No event follows the resume, so no hello and no posted: the bot's own ping answer proves the link.
    try:
        wait_for(lambda: world.mm.connection_count() == 1, 10, "the resumed connection")
    except AssertionError:
        raise AssertionError(f"connections: {world.mm.connection_count()}\n{bot.log()[-3000:]}") from None
    wait_for(bot.healthy, 5, "health right after a quiet resume")
    samples = bot.metrics()
    assert samples["deskie_mm_websocket_reconnects_total"] == 1  # the drop was noticed, and resumed
    assert samples["deskie_mm_websocket_resyncs_total"] == 1  # the catch-up at start; the resume needed none


def test_without_header_auth_the_bot_authenticates_by_challenge(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    """The Bearer header does not reach the server (a proxy strips it): the socket stays silent and is
    dropped at the auth tick; the token checks out over REST, so the bot authenticates by challenge."""
    world.mm.set_header_auth(False)
    world.mm.auth_timeout = 0.5
    bot = make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello over a challenged socket")
    wait_for(lambda: cases_of(world), 15, "the post relayed")
    # With the header ignored, only a challenge can have authenticated the socket the post came by.
    assert bot.health()["mattermost"]["websocket"] == "connected"


def test_a_revoked_token_is_a_silent_socket_and_the_bot_exits_1_naming_the_key(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    """The upgrade succeeds whatever the token (101); a revoked one shows only as silence and a drop
    without close frame at the auth tick: the bot asks GET /users/me, which says 401, and stops."""
    world.mm.auth_timeout = 0.5
    bot = make_bot().start()
    wait_for(lambda: "catch-up over REST" in bot.log(), 10, "the start-up catch-up")  # no other REST call left
    world.mm.clear_request_log()
    world.mm.revoke_token(world.bot_token)
    assert bot.wait_exit(timeout=30) == 1
    lines = [line for line in bot.log().splitlines() if "rejected the bot token" in line]
    assert lines and "check mattermost.bot_token" in lines[-1], bot.log()[-2000:]
    assert "Traceback" not in bot.log()
    assert world.bot_token not in bot.log()
    assert any(e["path"] == "/api/v4/users/me" and e["status"] == 401 for e in world.mm.request_log)
