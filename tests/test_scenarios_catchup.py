"""Catch-up after lost websocket events and after a restart: what it reads, and against a server that
cannot list the bot's channels."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from deskie_mm_bot.app import CATCHUP_FLOOR
from deskie_mm_bot.mattermost.rest import MattermostRejected
from deskie_mm_bot.sandbox_runner import World
from deskie_mm_bot.store import Store
from tests.harness import BotProcess, cases_of, customer_texts, first_case, make_bot, wait_for, world
from tests.inproc import InProcessBot, clock, inproc_bot

__all__ = ["clock", "inproc_bot", "make_bot", "world"]


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


def test_restart_with_many_known_chats_reads_only_the_chats_that_changed(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    """200 chats the bot had seen up to their last post; 3 got a post while it was down. The restart's
    catch-up costs the listing plus those 3 (their posts and their authors), not calls per known chat."""
    mm = world.mm
    bot = make_bot()
    known = []
    for i in range(200):
        user = mm.add_user(f"known{i:03d}", f"Known{i}", "Customer")
        mm.add_team_member(world.team["id"], user["id"])
        dm = mm.direct_channel(world.bot["id"], user["id"])
        known.append((user, dm, mm.post_as(user["id"], dm["id"], f"old question {i}")))
    store = Store(bot.config_path.parent / "state.sqlite3")
    store.set_cursor(CATCHUP_FLOOR, str(known[0][2]["create_at"] - 60_000))
    for _, dm, post in known:
        store.advance_cursor(f"mm.channel.{dm['id']}", post["create_at"])
    store.close()
    changed = known[7], known[99], known[150]
    for user, dm, _ in changed:
        mm.post_as(user["id"], dm["id"], f"written while the bot was down by {user['username']}")
    mm.clear_request_log()

    bot.start()
    for user, _, _ in changed:
        wait_for(lambda user=user: any(f"by {user['username']}" in m["content"] for c in cases_of(world)
                                       for m in world.dk.messages(c["case_id"])), 20, f"{user['username']}'s post")
    log = [e for e in mm.request_log if e["method"] == "GET"]
    me = world.bot["id"]
    listing = {"/api/v4/users/me", f"/api/v4/users/{me}/teams", f"/api/v4/users/{me}/teams/{world.team['id']}/channels"}
    per_chat = Counter(e["path"] for e in log if e["path"] not in listing)
    assert per_chat == Counter({f"/api/v4/channels/{dm['id']}/posts": 1 for _, dm, _ in changed}
                               | {f"/api/v4/users/{user['id']}": 1 for user, _, _ in changed}), per_chat
    assert {e["path"] for e in log} >= listing
    assert len(log) <= len(listing) + 2 * len(changed) + 1  # the login may be checked once more
    # None of the 197 unchanged chats was read (in the changed ones, the second of overlap re-reads the
    # old post, which this seeded store never recorded).
    sent = {m["content"] for c in cases_of(world) for m in world.dk.messages(c["case_id"])}
    assert sum(f"old question {i}" in sent for i in range(200)) <= len(changed)
    # Live posts flow after the catch-up as before.
    user, dm, _ = known[0]
    mm.post_as(user["id"], dm["id"], "a live one")
    wait_for(lambda: any("a live one" in m["content"] for c in cases_of(world) for m in world.dk.messages(c["case_id"])),
             20, "the live post")


def test_live_posts_are_not_held_behind_a_slow_catch_up(world: World, inproc_bot: Callable[..., InProcessBot]) -> None:
    """Events were lost; the catch-up of Jane's chat is slow. Bob's live post goes through meanwhile;
    Jane's own live post waits for her chat's catch-up, so her messages stay in order."""
    mm = world.mm
    bot = inproc_bot().start()
    assert bot.app is not None and bot.app.rest is not None
    bob_dm = mm.direct_channel(world.bot["id"], world.bob["id"])
    mm.post_as(world.jane["id"], world.jane_dm["id"], "first")
    jane_case = first_case(world)
    rest = bot.app.rest
    original = rest.posts_since
    release = threading.Event()
    held: list[str] = []

    async def slow(channel_id: str, since_ms: int) -> list[dict[str, Any]]:
        if channel_id == world.jane_dm["id"]:
            held.append(channel_id)
            while not release.is_set():
                await asyncio.sleep(0.02)
        return await original(channel_id, since_ms)

    rest.posts_since = slow  # type: ignore[method-assign]
    mm.set_reject_websocket(True)
    mm.drop_connections(resumable=False)
    mm.post_as(world.jane["id"], world.jane_dm["id"], "second, while the bot was away")
    mm.set_reject_websocket(False)
    wait_for(lambda: held, 30, "the catch-up of jane's chat to start")
    wait_for(lambda: bot.app is not None and bot.app.ws is not None and bot.app.ws.connected.is_set(), 30, "the websocket")
    mm.post_as(world.bob["id"], bob_dm["id"], "bob, live during the catch-up")
    mm.post_as(world.jane["id"], world.jane_dm["id"], "third, live")
    bob_case = wait_for(lambda: next((c for c in cases_of(world) if c["case_id"] != jane_case["case_id"]), None), 15,
                        "bob's case while jane's catch-up is still running")
    assert customer_texts(world, bob_case["case_id"]) == ["bob, live during the catch-up"]
    assert not release.is_set() and customer_texts(world, jane_case["case_id"]) == ["first"]
    release.set()
    wait_for(lambda: "third, live" in "\n".join(customer_texts(world, jane_case["case_id"])), 15, "jane's posts")
    texts = "\n".join(customer_texts(world, jane_case["case_id"]))
    assert texts.index("second, while the bot was away") < texts.index("third, live"), texts
