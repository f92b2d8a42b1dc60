"""The bot against a Deskie that takes the other plausible reading of the reference.

Where `reference/deskie-api.md` leaves room ([LIB], [GUESS], "unknown"), another emulator or a real
account may behave differently from ours. Each test switches one such behaviour on in our emulator
(`dk.variants`, default off) and checks the bot's promise end to end, the bot as a subprocess: every
customer message reaches Deskie once and in order, every agent answer reaches Mattermost once, and
the bot keeps running.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from deskie_mm_bot.sandbox_runner import World
from tests.support.delivery import add_customers, all_delivered, burst, verdict
from tests.support.harness import BotProcess, bot_posts, cases_of, customer_texts, first_case, wait_for

SETTLE = 3.0  # a few reconciliation polls (poll_interval is 1 s): time for a second copy to appear


def _open_chat(world: World, text: str = "hello") -> dict:
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], text)
    return first_case(world)


def _answers(world: World) -> list[str]:
    return [p["message"] for p in bot_posts(world, world.jane_dm["id"])]


def _posted_once_each(world: World, bot: BotProcess, expected: list[str]) -> None:
    wait_for(lambda: len(_answers(world)) >= len(expected), what=f"{len(expected)} answer(s) in the DM")
    time.sleep(SETTLE)
    assert _answers(world) == expected
    assert bot.healthy()


def test_json_webhook_answers_are_posted_once(world: World, make_bot: Callable[..., BotProcess]) -> None:
    world.dk.webhook_format = "json"
    bot = make_bot().start()
    case = _open_chat(world)
    world.dk.agent_reply(case["case_id"], html="<p>Hi <b>there</b></p>")
    world.dk.agent_reply(case["case_id"], content="Line one\nLine two")
    _posted_once_each(world, bot, ["Hi **there**", "Line one\nLine two"])
    assert all(d["status"] == 200 for d in world.dk.webhook_deliveries)


def test_webhook_without_message_id_posts_a_multiline_answer_once(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    """Only case_id, custom_user_id and content are [CODE] in the webhook; message_id is [LIB]. The poll
    then sees the same answer with its id and its HTML form: it must know it for the one already posted."""
    world.dk.variants.webhook_omit = {"message_id"}
    bot = make_bot().start()
    case = _open_chat(world)
    world.dk.agent_reply(case["case_id"], content="Line one\nLine two\n\nThanks, a_b *c*")
    _posted_once_each(world, bot, ["Line one\nLine two\n\nThanks, a_b *c*"])


def test_webhook_with_html_in_content_and_no_ids_posts_markdown_once(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    v = world.dk.variants
    v.webhook_omit = {"message_id", "content_html"}
    v.webhook_html_in_content = True
    bot = make_bot().start()
    case = _open_chat(world)
    world.dk.agent_reply(case["case_id"], html="<p>See <a href='https://x.test/a'>this</a><br>and <b>that</b></p>")
    wait_for(lambda: _answers(world), what="the first answer")
    # The same words twice are two answers: the poll, which sees both ids, brings the second.
    world.dk.agent_reply(case["case_id"], content="ok")
    world.dk.agent_reply(case["case_id"], content="ok")
    wait_for(lambda: len(_answers(world)) >= 3, what="three answers")
    time.sleep(SETTLE)
    answers = _answers(world)
    assert answers == ["See [this](https://x.test/a)  \nand **that**", "ok", "ok"] or (
        len(answers) == 3 and "<" not in answers[0] and answers[1:] == ["ok", "ok"]
    ), answers
    assert bot.healthy()


def test_webhook_delivered_several_times_posts_each_answer_once(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    world.dk.variants.webhook_duplicates = 3
    bot = make_bot().start()
    case = _open_chat(world)
    for i in range(3):
        world.dk.agent_reply(case["case_id"], content=f"answer {i}")
    _posted_once_each(world, bot, ["answer 0", "answer 1", "answer 2"])
    assert len(world.dk.webhook_deliveries) >= 12


def test_webhook_without_ids_delivered_several_times_posts_once(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    world.dk.variants.webhook_omit = {"message_id"}
    world.dk.variants.webhook_duplicates = 2
    bot = make_bot().start()
    case = _open_chat(world)
    world.dk.agent_reply(case["case_id"], content="first answer\nwith two lines")
    wait_for(lambda: _answers(world), what="the first answer")
    world.dk.agent_reply(case["case_id"], content="second answer")
    _posted_once_each(world, bot, ["first answer\nwith two lines", "second answer"])


def test_rate_limits_without_budget_headers_and_with_standard_retry_after(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    """No rate_limit_per_minute / api_calls_left at all, and the 429 says `Retry-After`, not `retry_after`."""
    v = world.dk.variants
    v.rate_headers = "refusal_only"
    v.retry_after_header = "Retry-After"
    customers = add_customers(world, 2)
    bot = make_bot(poll_interval="30s").start()
    world.dk.clear_request_log()
    world.dk.throttle_next(1, retry_after=2)
    burst(world, customers, 3, gap=0.05)
    wait_for(lambda: all_delivered(world, customers), 40, "delivery after the refusals")
    assert verdict(world, customers).ok
    log = world.dk.request_log
    refused = [e for e in log if e["status"] == 429]
    assert len(refused) == 1
    t = refused[0]["t"]
    # Calls already on their way may land just after the refusal; then all calls pause for the 2 s
    # the header asked (not the 5 s a bot that did not read it would guess).
    later = [e["t"] - t for e in log if e["t"] > t + 0.3]
    assert later, "the bot went on after the pause"
    assert 1.5 <= min(later) < 4.5, min(later)
    assert bot.healthy()


def test_search_without_anchors_still_finds_the_case_created_before_a_crash(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    """An account that takes `^u:…^` literally finds nothing by it: recovery must not create the case again."""
    world.dk.variants.search_anchors = False
    bot = make_bot().start()
    world.dk.slow_next_write(1, seconds=30)
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "please help")
    wait_for(lambda: cases_of(world), what="the case created in Deskie")
    bot.kill()
    bot.start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "still there?")
    case_id = cases_of(world)[0]["case_id"]
    wait_for(lambda: len(customer_texts(world, case_id)) == 2, what="the follow-up")
    assert len(cases_of(world)) == 1
    assert customer_texts(world, case_id) == ["please help", "still there?"]
    searched = [e for e in world.dk.request_log if e["path"] == "/api/cases.json" and "user_custom_id" in e["query"]]
    assert searched, "recovery searched for the case"


def test_message_to_a_closed_case_that_reopens_it_is_delivered_once(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    """Whether a message to a closed case fails or reopens it is unknown (§6.2): either way, once each."""
    world.dk.variants.closed_case_messages = "reopen"
    customers = add_customers(world, 1)
    c = customers[0]
    bot = make_bot().start()

    def say(token: str) -> None:
        world.mm.post_as(c.user["id"], c.dm["id"], f"question {token} please")
        c.sent.append(token)

    say("u0-m00")
    wait_for(lambda: all_delivered(world, customers), what="the first message")
    first = cases_of(world)[0]["case_id"]
    world.dk.close_case(first)
    say("u0-m01")  # races the poll that learns of the close: either case is right
    wait_for(lambda: all_delivered(world, customers), what="the message after the close")
    time.sleep(SETTLE)  # the poll has seen the close by now
    say("u0-m02")
    say("u0-m03")
    wait_for(lambda: all_delivered(world, customers), what="later messages")
    assert verdict(world, customers).ok, verdict(world, customers)
    latest = cases_of(world)[-1]["case_id"]
    world.dk.agent_reply(latest, content="we are on it")
    wait_for(lambda: bot_posts(world, c.dm["id"]), what="the answer")
    time.sleep(SETTLE)
    assert [p["message"] for p in bot_posts(world, c.dm["id"])] == ["we are on it"]
    assert bot.healthy()


def test_create_answer_without_user_id_still_sends_follow_ups(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    world.dk.variants.create_answer_user_id = False
    bot = make_bot().start()
    case = _open_chat(world, "first")
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "second")
    wait_for(lambda: len(customer_texts(world, case["case_id"])) == 2, what="the follow-up")
    bot.stop()
    bot.start()  # the user id learnt from the case survives a restart, or is learnt again
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "third")
    wait_for(lambda: len(customer_texts(world, case["case_id"])) == 3, what="the follow-up after a restart")
    assert customer_texts(world, case["case_id"]) == ["first", "second", "third"]
    assert len(cases_of(world)) == 1


@pytest.mark.parametrize("shape", ["array", "root_array"])
def test_empty_lists_as_json_arrays_and_answers_found_by_the_poll(
    world: World, make_bot: Callable[..., BotProcess], shape: str
) -> None:
    """A PHP backend may answer an empty list as `[]`, or `{"case": []}` (one SDK's test), rather than
    {"total_count": 0}."""
    world.dk.variants.empty_list = shape
    world.dk.set_webhook_enabled(False)  # the poll is the only way back
    bot = make_bot().start()
    wait_for(lambda: any(e["path"] == "/api/cases.json" and e["status"] == 200 for e in world.dk.request_log),
             what="a poll of the empty account")
    case = _open_chat(world)
    world.dk.agent_reply(case["case_id"], content="found by the poll")
    _posted_once_each(world, bot, ["found by the poll"])


def test_answers_listed_with_only_content_html_are_posted_from_their_html(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    """The laravel fixture lists messages with `content: ""` and only `content_html` (§6.1)."""
    world.dk.variants.message_content = "html_only"
    world.dk.set_webhook_enabled(False)  # the poll is the only way back
    bot = make_bot().start()
    case = _open_chat(world)
    world.dk.agent_reply(case["case_id"], html="<p>Try <b>this</b></p>")
    _posted_once_each(world, bot, ["Try **this**"])


def test_webhook_attachments_with_only_a_url_reach_the_customer(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    """Live receivers read nothing but `object[attachments][N][url]` (§7.1): no file name comes."""
    world.dk.variants.webhook_attachments = "url_only"
    bot = make_bot().start()
    case = _open_chat(world)
    world.dk.agent_reply(case["case_id"], content="the log you asked for",
                         attachments=[{"file_name": "server.log", "data": "line 1\n", "mime_type": "text/plain"}])
    wait_for(lambda: _answers(world), what="the answer")
    time.sleep(SETTLE)
    answers = _answers(world)
    assert len(answers) == 1 and answers[0].startswith("the log you asked for")
    post = bot_posts(world, world.jane_dm["id"])[0]
    # Either the file itself is attached, or (older behaviour) a link named after the URL's last part.
    assert post.get("file_ids") or "server.log" in answers[0]
    assert bot.healthy()
