"""Catch-up after lost websocket events and after a restart: what it reads (only the chats that changed),
live posts beside it, against a server that cannot list the bot's channels, after a drop the server had
not noticed, and with what `since=` returns besides new posts (edit copies, bumped roots)."""

from __future__ import annotations

import asyncio
import threading
import time
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


def _away(world: World) -> None:
    """The websocket goes and stays away (upgrades refused) until _back(); the server forgets it."""
    world.mm.set_reject_websocket(True)
    world.mm.drop_connections(resumable=False)


def _back(world: World) -> None:
    world.mm.set_reject_websocket(False)


def _marker(world: World, bot: InProcessBot, case_id: int) -> None:
    """A post after the return: once it is in Deskie, the catch-up before it has been fully taken in."""
    assert bot.app is not None and bot.app.store is not None
    post = world.mm.post_as(world.jane["id"], world.jane_dm["id"], "marker after the return")
    wait_for(lambda: bot.app.store.has_post(post["id"]), 30, "the marker recorded")
    wait_for(lambda: "marker after the return" in "".join(customer_texts(world, case_id)), 30, "the marker")


def test_an_edit_and_a_thread_reply_made_while_away_arrive_once_each(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    """since= also returns the edit's history copy (deleted, original_id set), the thread root the reply
    bumped, and a post someone reacted to: none of them is a new message or a deletion."""
    bot = inproc_bot().start()
    mm = world.mm
    jane, dm = world.jane["id"], world.jane_dm["id"]
    order = mm.post_as(jane, dm, "my order is 1234")
    other = mm.post_as(jane, dm, "and the invoice is wrong")
    case = first_case(world)
    wait_for(lambda: "invoice" in "".join(customer_texts(world, case["case_id"])), what="both posts relayed")
    _away(world)
    mm.edit_post(order["id"], "my order is 1243")
    mm.post_as(jane, dm, "any news on it?", root_id=order["id"])
    mm.add_reaction(jane, other["id"], "+1")
    _back(world)
    wait_for(lambda: "any news on it?" in "".join(customer_texts(world, case["case_id"])), 30, "the reply caught up")
    _marker(world, bot, case["case_id"])
    messages = world.dk.messages(case["case_id"])
    notes = [m["content"] for m in messages if m["note"]]
    assert len(notes) == 1 and "edited" in notes[0] and "1243" in notes[0] and "1234" in notes[0], notes
    assert not any("deleted" in n for n in notes)
    text = "\n".join(customer_texts(world, case["case_id"]))
    for line in ("my order is 1234", "and the invoice is wrong", "any news on it?"):
        assert text.count(line) == 1, text
    assert "1243" not in text  # the edit is a note, not a new message


def test_a_thread_root_from_before_the_first_start_stays_history_when_a_reply_bumps_it(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    mm = world.mm
    jane, dm = world.jane["id"], world.jane_dm["id"]
    old = mm.post_as(jane, dm, "an old question from before the bot")
    time.sleep(1.2)  # older than the catch-up's one-second overlap at the first start
    bot = inproc_bot().start()
    mm.post_as(jane, dm, "hello, bot")
    case = first_case(world)
    _away(world)
    # The reply bumps the old root's update_at: since= returns the root too, in `order`.
    mm.post_as(jane, dm, "following up on my old question", root_id=old["id"])
    _back(world)
    wait_for(lambda: "following up" in "".join(customer_texts(world, case["case_id"])), 30, "the reply caught up")
    _marker(world, bot, case["case_id"])
    text = "\n".join(customer_texts(world, case["case_id"]))
    assert "an old question" not in text
    assert len(cases_of(world)) == 1


def test_posts_made_before_the_server_noticed_a_drop_reach_deskie_once(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    """The client noticed the drop first (half-open TCP): its resume finds the old connection still
    active, so it is "not found": a new connection_id, and what was posted in between is lost."""
    bot = inproc_bot().start()
    mm = world.mm
    jane, dm = world.jane["id"], world.jane_dm["id"]
    mm.post_as(jane, dm, "first")
    case = first_case(world)
    assert bot.app is not None and bot.app.ws is not None
    resyncs, old_id = bot.app.ws.resyncs, bot.app.ws.connection_id
    mm.set_reject_websocket(True)  # hold the reconnect until the post is made
    mm.drop_connections(resumable=True, noticed=False)
    mm.post_as(jane, dm, "second, written into the half-open socket")
    _back(world)
    wait_for(lambda: "second" in "".join(customer_texts(world, case["case_id"])), 30, "the lost post caught up")
    _marker(world, bot, case["case_id"])
    assert bot.app.ws.connection_id != old_id and bot.app.ws.resyncs == resyncs + 1
    assert mm.connection_count(include_unnoticed=True) == 2  # the server still holds the old one
    text = "\n".join(customer_texts(world, case["case_id"]))
    assert text.count("first") == 1 and text.count("second, written into the half-open socket") == 1
