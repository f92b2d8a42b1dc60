"""An answer Mattermost made while the bot was killed (before it heard so) is found by its props, not
posted again, even once Mattermost's pending_post_id dedup (30 s, never stored) has forgotten it.
The bot is a subprocess, killed with SIGKILL."""

from __future__ import annotations

import time
from collections.abc import Callable

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import BotProcess, bot_posts, first_case, wait_for

WINDOW = 0.5  # the dedup window in this test (30 s on a real server)


def test_an_answer_made_before_a_crash_is_found_by_its_props_after_the_dedup_window(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    mm = world.mm
    mm.pending_post_ttl = WINDOW
    bot = make_bot().start()
    mm.post_as(world.jane["id"], world.jane_dm["id"], "hello")
    case = first_case(world)
    # Mattermost makes the post at once but answers only after a minute: the bot dies waiting.
    mm.slow_rest_after_apply_next(1, seconds=60, match="POST /api/v4/posts")
    world.dk.agent_reply(case["case_id"], content="the answer")
    (made,) = wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer made in Mattermost")
    assert made["props"]["deskie_message_id"]  # the bot's own idempotency key
    assert made["pending_post_id"] == ""  # never stored: nothing to find the post by later
    bot.kill()
    time.sleep(WINDOW + 0.3)  # the server has forgotten the pending_post_id: a repeat would make a second post
    mm.clear_request_log()
    bot.start()
    world.dk.agent_reply(case["case_id"], content="the next answer")
    # A chat's answers go out in order: the next one is posted only once the first is settled.
    wait_for(lambda: len(bot_posts(world, world.jane_dm["id"])) >= 2, 30, "the next answer")
    time.sleep(1.5)  # time for a repeat to show
    assert [p["message"] for p in bot_posts(world, world.jane_dm["id"])] == ["the answer", "the next answer"]
    creates = [e for e in mm.request_log if e["method"] == "POST" and e["path"] == "/api/v4/posts"]
    assert len(creates) == 1, creates  # only the next answer: the first was looked up, not re-sent
    lookups = [e for e in mm.request_log if e["path"] == f"/api/v4/channels/{world.jane_dm['id']}/posts"]
    assert any("since" in e["query"] for e in lookups)
    assert bot.stop() == 0
