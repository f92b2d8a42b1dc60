"""The DM round trip, end to end: the bot as a subprocess against both emulators over real sockets."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, WEBHOOK_SECRET, World
from tests.support.harness import BotProcess, bot_posts, cases_of, customer_texts, first_case, wait_for


def test_dm_opens_a_case_and_the_agent_answer_comes_back(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot().start()
    mm, dk = world.mm, world.dk
    mm.post_as(world.jane["id"], world.jane_dm["id"], "My invoice is wrong\nIt shows 300 EUR instead of 30.")

    case = first_case(world)
    assert case["channel"] == CHANNEL_CODE
    assert case["group_id"] == world.group["group_id"]
    assert case["subject"] == "My invoice is wrong"
    user = dk.user(case["user_id"])
    assert user["user_custom_id"] == f"u:{world.jane['id']}"
    assert user["user_full_name"] == "Jane Doe (@jane)"
    assert customer_texts(world, case["case_id"]) == ["My invoice is wrong\nIt shows 300 EUR instead of 30."]

    mm.post_as(world.jane["id"], world.jane_dm["id"], "Order 1234")
    wait_for(lambda: len(customer_texts(world, case["case_id"])) == 2, what="the follow-up")
    assert customer_texts(world, case["case_id"])[1] == "Order 1234"
    assert len(cases_of(world)) == 1

    dk.agent_reply(case["case_id"], html="<p>Sorry! <b>Fixed</b> it: <a href='https://x.test/i/1'>new invoice</a></p>")
    posts = wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer in the DM")
    assert posts[0]["message"] == "Sorry! **Fixed** it: [new invoice](https://x.test/i/1)"
    assert posts[0]["root_id"] == ""
    # The bot receives its own post back over the websocket: it must not be relayed to Deskie.
    wait_for(lambda: bot.healthy(), what="health")
    assert customer_texts(world, case["case_id"]) == [
        "My invoice is wrong\nIt shows 300 EUR instead of 30.", "Order 1234"
    ]
    assert bot.stop() == 0
    # Nothing doubled: one answer posted, even though the reconciliation poll saw it too.
    assert len(bot_posts(world, world.jane_dm["id"])) == 1


def test_other_bots_and_system_posts_are_not_relayed(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    mm = world.mm
    other_bot, _ = mm.add_bot("otherbot")
    mm.add_team_member(world.team["id"], other_bot["id"])
    dm = mm.direct_channel(world.bot["id"], other_bot["id"])
    mm.post_as(other_bot["id"], dm["id"], "beep, I am a bot")
    mm.post_as(world.jane["id"], world.jane_dm["id"], "hello", props={"from_webhook": "true"})
    mm.post_as(world.jane["id"], world.jane_dm["id"], "joined", type="system_join_channel")
    mm.post_as(world.jane["id"], world.jane_dm["id"], "a real question")
    case = first_case(world)
    assert customer_texts(world, case["case_id"]) == ["a real question"]
    assert len(cases_of(world)) == 1


def test_restart_loses_nothing_and_doubles_nothing(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot().start()
    mm, dk = world.mm, world.dk
    mm.post_as(world.jane["id"], world.jane_dm["id"], "first")
    case = first_case(world)
    assert bot.stop() == 0

    # While the bot is down: the customer writes, and an agent answers (its webhook cannot be delivered).
    mm.post_as(world.jane["id"], world.jane_dm["id"], "second")
    mm.post_as(world.jane["id"], world.jane_dm["id"], "third")
    dk.agent_reply(case["case_id"], content="answer while you were away")

    bot.start()
    # Posts queued for one chat may go out together, one line each: look at the text, not the count.
    wait_for(lambda: "third" in "\n".join(customer_texts(world, case["case_id"])), what="posts made while down")
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the missed answer")
    dk.agent_reply(case["case_id"], content="and one more")
    wait_for(lambda: len(bot_posts(world, world.jane_dm["id"])) >= 2, what="the live answer")
    assert bot.stop() == 0

    texts = customer_texts(world, case["case_id"])
    joined = "\n".join(texts)
    assert joined.count("first") == 1 and joined.count("second") == 1 and joined.count("third") == 1
    assert joined.index("first") < joined.index("second") < joined.index("third")
    assert [p["message"] for p in bot_posts(world, world.jane_dm["id"])] == [
        "answer while you were away", "and one more"
    ]
    assert len(cases_of(world)) == 1


def test_webhook_with_wrong_secret_is_404_and_bad_body_is_400(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    base = f"http://127.0.0.1:{world.webhook_port}/deskie/webhook/"
    r = requests.post(base + "not-the-secret", data={"type": "message_new", "object[case_id]": "1"}, timeout=5)
    assert r.status_code == 404
    r = requests.post(base + WEBHOOK_SECRET, data={"type": "message_new"}, timeout=5)
    assert r.status_code == 400
    r = requests.post(base + WEBHOOK_SECRET, data={"type": "message_new", "object[case_id]": "999",
                                                   "object[content]": "hi"}, timeout=5)
    assert r.status_code == 404  # a case the bot does not know, and no Mattermost user to open it for
    assert world.mm.posts_in(world.jane_dm["id"]) == []


def test_webhook_for_a_user_that_does_not_match_the_case_is_refused(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hi")
    case = first_case(world)
    r = requests.post(
        world.webhook_url,
        data={"type": "message_new", "object[case_id]": str(case["case_id"]), "object[message_id]": "777777",
              "object[custom_user_id]": f"u:{world.bob['id']}", "object[content]": "for bob?"},
        timeout=5,
    )
    assert r.status_code == 403
    assert bot_posts(world, world.jane_dm["id"]) == []


def test_health_and_metrics(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot().start()
    h = requests.get(bot.health_url, timeout=5).json()
    assert h["mattermost"]["websocket"] == "connected"
    m = requests.get(f"http://127.0.0.1:{world.webhook_port}/metrics", timeout=5)
    assert m.status_code == 200 and "deskie_mm_outbox_pending" in m.text
    world.mm.set_reject_websocket(True)
    world.mm.drop_connections(resumable=False)
    wait_for(lambda: requests.get(bot.health_url, timeout=5).status_code == 503, what="503 while disconnected")
    world.mm.set_reject_websocket(False)
    wait_for(bot.healthy, timeout=40, what="recovery")


def test_secrets_never_reach_the_log(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot(idle_timeout="10m")
    bot.start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello")
    wait_for(lambda: cases_of(world), what="a case")
    requests.post(f"http://127.0.0.1:{world.webhook_port}/deskie/webhook/wrong", timeout=5)
    assert bot.stop() == 0
    text = bot.log()
    assert "running" in text
    for secret in (world.bot_token, "sandbox-api-key", WEBHOOK_SECRET):
        assert secret not in text


def test_revoked_token_exits_non_zero(world: World, make_bot: Callable[..., BotProcess]) -> None:
    world.mm.auth_timeout = 0.5  # a revoked token shows as a socket dropped at the auth tick (5 s real)
    bot = make_bot().start()
    world.mm.revoke_token(world.bot_token)
    code = bot.wait_exit(timeout=60)
    assert code == 1
    assert "bot_token" in bot.log()


def test_unknown_default_group_is_a_clear_startup_error(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot()
    text = bot.config_path.read_text().replace("default_group: Support", "default_group: Nope")
    bot.config_path.write_text(text)
    bot.start(wait=False)
    assert bot.wait_exit(timeout=30) == 2
    assert "deskie.default_group" in bot.log()


def test_rejected_deskie_api_key_exits_non_zero(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot()
    bot.config_path.write_text(bot.config_path.read_text().replace("sandbox-api-key", "wrong-key"))
    bot.start(wait=False)
    assert bot.wait_exit(timeout=30) == 1
    assert "deskie.api_key" in bot.log()
    assert "wrong-key" not in bot.log()


def test_bot_waits_for_a_mattermost_that_is_still_starting(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot()
    world.mm.stop()  # it comes back on the same port, the one in the config
    bot.start(wait=False)
    time.sleep(2)
    assert bot.proc is not None and bot.proc.poll() is None  # still trying, not exited
    world.mm.start()
    bot.wait_healthy(timeout=40)


def test_metrics_count_what_happened(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "count me")
    case = first_case(world)
    world.dk.agent_reply(case["case_id"], content="counted")
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    text = requests.get(f"http://127.0.0.1:{world.webhook_port}/metrics", timeout=5).text
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(samples["deskie_mm_posts_recorded_total"]) == 1
    assert float(samples["deskie_mm_deskie_writes_total"]) == 1
    assert float(samples["deskie_mm_answers_posted_total"]) == 1
    assert float(samples['deskie_mm_webhooks_total{outcome="recorded"}']) == 1
    assert "# TYPE deskie_mm_websocket_reconnects_total counter" in text
    assert float(samples["deskie_mm_outbox_pending"]) == 0
