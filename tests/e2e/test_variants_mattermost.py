"""The bot against Mattermost servers that behave like other versions the reference mentions.

Each test switches one behaviour on in our emulator (`mm.variants`, default off: a current server)
and checks the bot's promise end to end, the bot as a subprocess: every customer message reaches
Deskie once and in order, every agent answer reaches Mattermost once, and the bot keeps running.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import BotProcess, bot_posts, cases_of, customer_texts, first_case, wait_for

SETTLE = 2.5


def _case_of(world: World, custom_id: str) -> dict | None:
    for case in cases_of(world):
        if world.dk.user(case["user_id"]).get("user_custom_id") == custom_id:
            return case
    return None


def _dm_and_channel_round(world: World) -> tuple[dict, dict]:
    """Jane writes in her DM; Bob talks in ~support without and with a mention of the bot."""
    mm = world.mm
    mm.post_as(world.jane["id"], world.jane_dm["id"], "dm question")
    mm.post_as(world.bob["id"], world.support["id"], "@jane lunch later? not for the bot")
    mm.post_as(world.bob["id"], world.support["id"], "@helpbot the printer is on fire")
    dm_case = wait_for(lambda: _case_of(world, f"u:{world.jane['id']}"), what="the DM case")
    ch_case = wait_for(lambda: _case_of(world, f"c:{world.support['id']}"), what="the channel case")
    wait_for(lambda: customer_texts(world, ch_case["case_id"]), what="the channel message")
    time.sleep(SETTLE)  # time for a wrongly relayed post to show up
    assert customer_texts(world, dm_case["case_id"]) == ["dm question"]
    texts = customer_texts(world, ch_case["case_id"])
    assert len(texts) == 1 and "printer is on fire" in texts[0] and "lunch" not in texts[0], texts
    assert len(cases_of(world)) == 2
    return dm_case, ch_case


def test_posted_without_mentions_older_server(world: World, make_bot: Callable[..., BotProcess]) -> None:
    world.mm.variants.mentions = "none"
    bot = make_bot().start()
    _dm_and_channel_round(world)
    assert bot.healthy()


def test_posted_with_everyones_mentions_pre_9_3_server(world: World, make_bot: Callable[..., BotProcess]) -> None:
    """Before 9.3 every connection got the full list: a post mentioning Jane must not wake the bot."""
    world.mm.variants.mentions = "all"
    bot = make_bot().start()
    _dm_and_channel_round(world)
    assert bot.healthy()


def test_posted_without_channel_type_or_team_id(world: World, make_bot: Callable[..., BotProcess]) -> None:
    world.mm.variants.posted_channel_fields = False
    bot = make_bot().start()
    dm_case, ch_case = _dm_and_channel_round(world)
    assert world.dk.user(ch_case["user_id"])["user_full_name"] == "Support (~support)"
    world.dk.agent_reply(ch_case["case_id"], content="extinguisher on the way")
    wait_for(lambda: bot_posts(world, world.support["id"]), what="the answer in ~support")
    assert bot.healthy()


def test_no_pending_post_id_dedup_and_a_post_applied_but_failed_is_not_doubled(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    """The server made the post but the bot heard a 504; a server that does not dedup by
    pending_post_id makes a second post on a plain retry: the bot must look before posting again."""
    mm = world.mm
    mm.variants.pending_post_dedup = False
    bot = make_bot().start()
    mm.post_as(world.jane["id"], world.jane_dm["id"], "hello")
    case = first_case(world)
    mm.fail_rest_after_apply_next(2, status=504, match="POST /api/v4/posts")
    world.dk.agent_reply(case["case_id"], content="first answer")
    world.dk.agent_reply(case["case_id"], content="second answer")
    wait_for(lambda: len(bot_posts(world, world.jane_dm["id"])) >= 2, timeout=30, what="both answers")
    time.sleep(SETTLE + 2)  # the retry backoff is about a second or two
    assert [p["message"] for p in bot_posts(world, world.jane_dm["id"])] == ["first answer", "second answer"]
    failed = [e for e in mm.request_log if e["path"] == "/api/v4/posts" and e["status"] == 504]
    assert len(failed) == 2
    assert bot.healthy()


def test_catch_up_without_the_user_team_channels_route(world: World, make_bot: Callable[..., BotProcess]) -> None:
    """A server without GET /users/{id}/teams/{tid}/channels (404): the chats the bot knows still catch up."""
    mm = world.mm
    mm.variants.user_team_channels = False
    bot = make_bot().start()
    mm.post_as(world.jane["id"], world.jane_dm["id"], "first")
    mm.post_as(world.bob["id"], world.support["id"], "@helpbot channel first")
    dm_case = wait_for(lambda: _case_of(world, f"u:{world.jane['id']}"), what="the DM case")
    ch_case = wait_for(lambda: _case_of(world, f"c:{world.support['id']}"), what="the channel case")
    assert bot.stop() == 0
    mm.post_as(world.jane["id"], world.jane_dm["id"], "second, while the bot was away")
    mm.post_as(world.bob["id"], world.support["id"], "@helpbot channel second")
    bot.start()
    wait_for(lambda: len(customer_texts(world, dm_case["case_id"])) == 2, timeout=20, what="the DM catch-up")
    wait_for(lambda: len(customer_texts(world, ch_case["case_id"])) == 2, timeout=20, what="the channel catch-up")
    # And a drop of the websocket that loses events (a new connection id) while a customer writes.
    mm.drop_connections(resumable=False)
    mm.post_as(world.jane["id"], world.jane_dm["id"], "third, during the drop")
    wait_for(lambda: len(customer_texts(world, dm_case["case_id"])) == 3, timeout=30, what="the post made in the drop")
    assert customer_texts(world, dm_case["case_id"]) == ["first", "second, while the bot was away",
                                                          "third, during the drop"]
    assert len(cases_of(world)) == 2
    assert any(e["status"] == 404 and "/teams/" in e["path"] for e in mm.request_log)
    assert bot.healthy()


def test_hello_without_server_hostname(world: World, make_bot: Callable[..., BotProcess]) -> None:
    world.mm.variants.hello_hostname = False
    bot = make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hi")
    case = first_case(world)
    world.dk.agent_reply(case["case_id"], content="hello back")
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    world.mm.drop_connections(resumable=False)  # a fresh hello, again without the hostname
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "after the drop")
    wait_for(lambda: len(customer_texts(world, case["case_id"])) == 2, timeout=30, what="the post after the drop")
    time.sleep(SETTLE)
    assert [p["message"] for p in bot_posts(world, world.jane_dm["id"])] == ["hello back"]
    assert bot.healthy()


def test_json_answers_with_a_charset_in_their_content_type(world: World, make_bot: Callable[..., BotProcess]) -> None:
    """A server or proxy answering `application/json; charset=utf-8` (what aiohttp's json_response sends):
    the REST driver decodes a GET only for the exact type, so the bot must not take the bare response."""
    world.mm.variants.json_content_type = "application/json; charset=utf-8"
    bot = make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hi")
    world.mm.post_as(world.bob["id"], world.support["id"], "@helpbot in the channel")
    case = wait_for(lambda: _case_of(world, f"u:{world.jane['id']}"), what="the DM case")
    wait_for(lambda: _case_of(world, f"c:{world.support['id']}"), what="the channel case")
    assert world.dk.user(case["user_id"])["user_full_name"] == "Jane Doe (@jane)"
    world.dk.agent_reply(case["case_id"], content="hello back")
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    assert bot.stop() == 0
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "while away")
    bot.start()  # the catch-up reads channels and posts over REST
    wait_for(lambda: len(customer_texts(world, case["case_id"])) == 2, timeout=20, what="the catch-up")
    time.sleep(SETTLE)
    assert [p["message"] for p in bot_posts(world, world.jane_dm["id"])] == ["hello back"]
    assert bot.healthy()
