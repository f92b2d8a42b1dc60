"""Attachments, edits and deletions, and health during a Deskie outage: end to end, bot as a subprocess."""

from __future__ import annotations

from collections.abc import Callable

import requests

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import BotProcess, bot_posts, cases_of, first_case, wait_for


def test_attachments_are_uploaded_to_deskie(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    mm = world.mm
    info = mm.upload_file(world.jane["id"], world.jane_dm["id"], "error.log", b"Traceback: boom\n", "text/plain")
    mm.post_as(world.jane["id"], world.jane_dm["id"], "here is the log", file_ids=[info["id"]])
    case = first_case(world)
    (msg,) = world.dk.messages(case["case_id"])
    assert msg["content"] == "here is the log"
    assert [(a["file_name"], a["file_size"]) for a in msg["attachments"]] == [("error.log", 16)]


def test_a_file_over_deskies_limit_is_said_not_dropped(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    mm = world.mm
    big = mm.upload_file(world.jane["id"], world.jane_dm["id"], "video.mp4", b"\0" * (26 * 1024 * 1024), "video/mp4")
    small = mm.upload_file(world.jane["id"], world.jane_dm["id"], "note.txt", b"hi", "text/plain")
    mm.post_as(world.jane["id"], world.jane_dm["id"], "two files", file_ids=[big["id"], small["id"]])
    case = first_case(world, 30)
    (msg,) = world.dk.messages(case["case_id"])
    assert msg["content"].startswith("two files")
    assert "video.mp4 not sent" in msg["content"] and "25 MB" in msg["content"]
    assert [a["file_name"] for a in msg["attachments"]] == ["note.txt"]


def test_edits_and_deletions_reach_the_agent_as_notes(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    mm = world.mm
    post = mm.post_as(world.jane["id"], world.jane_dm["id"], "my order is 1234")
    case = first_case(world)
    mm.edit_post(post["id"], "my order is 1243")
    wait_for(lambda: any(m["note"] for m in world.dk.messages(case["case_id"])), what="a note about the edit")
    other = mm.post_as(world.jane["id"], world.jane_dm["id"], "ignore this")
    wait_for(lambda: any(m["content"] == "ignore this" for m in world.dk.messages(case["case_id"])), what="post")
    mm.delete_post(other["id"])
    wait_for(lambda: sum(m["note"] for m in world.dk.messages(case["case_id"])) == 2, what="a note about the delete")
    notes = [m["content"] for m in world.dk.messages(case["case_id"]) if m["note"]]
    assert "1243" in notes[0] and "1234" in notes[0] and "edited" in notes[0]
    assert "deleted" in notes[1] and "ignore this" in notes[1]
    # The customer's own message was not rewritten.
    assert world.dk.messages(case["case_id"])[0]["content"] == "my order is 1234"


def test_health_says_503_while_deskie_fails(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot().start()
    world.dk.outage(60, "5xx")
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello?")
    wait_for(lambda: requests.get(bot.health_url, timeout=5).status_code == 503, what="503")
    assert requests.get(bot.health_url, timeout=5).json()["deskie"]["state"] == "failing"
    world.dk.clear_faults()
    wait_for(lambda: cases_of(world), 40, what="delivery after the outage")
    wait_for(bot.healthy, what="healthy again")


def test_a_long_answer_is_split_never_cut(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "tell me everything")
    case = first_case(world)
    paragraphs = [f"Paragraph {i}: " + "word " * 400 for i in range(20)]  # about 40,000 characters
    world.dk.agent_reply(case["case_id"], content="\n\n".join(p.strip() for p in paragraphs))
    posts = wait_for(lambda: (p := bot_posts(world, world.jane_dm["id"])) and len(p) >= 3 and p, 20, "the parts")
    assert all(len(p["message"]) <= 16383 for p in posts)
    joined = "".join(p["message"] for p in posts)
    assert [seg for seg in joined.split("\n\n") if seg.strip()] == [p.strip() for p in paragraphs]
    assert len({p["props"]["deskie_message_id"] for p in posts}) == 1
