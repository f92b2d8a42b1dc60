"""An agent's files reach the customer as files attached to the answer, not as links: end to end, the
bot as a subprocess, including a kill -9 between uploading a file and recording the post."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import BotProcess, bot_posts, first_case, wait_for


def ask(world: World) -> dict[str, Any]:
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "send me the files")
    return first_case(world)


def pdf(i: int) -> dict[str, Any]:
    return {"file_name": f"part{i}.pdf", "data": f"%PDF-{i}".encode(), "mime_type": "application/pdf"}


def attached(world: World, post: dict[str, Any]) -> list[tuple[str, bytes]]:
    out = []
    for info in post["metadata"].get("files") or []:
        _, data = world.mm.state.file(info["id"])
        out.append((info["name"], data))
    return out


def bot_uploads(world: World) -> list[dict[str, Any]]:
    with world.mm.state.lock:
        return [dict(info) for info, _ in world.mm.state.files.values() if info["user_id"] == world.bot["id"]]


@pytest.mark.parametrize("webhook_files", ["detailed", "url_only"])
def test_an_agents_file_arrives_attached_not_as_a_link(
    world: World, make_bot: Callable[..., BotProcess], webhook_files: str
) -> None:
    world.dk.variants.webhook_attachments = webhook_files
    make_bot().start()
    case = ask(world)
    world.dk.agent_reply(case["case_id"], content="the manual is attached",
                         attachments=[{"file_name": "manual v2.pdf", "data": b"%PDF-1.4", "mime_type": "application/pdf"}])
    (post,) = wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    assert post["message"] == "the manual is attached"
    assert attached(world, post) == [("manual v2.pdf", b"%PDF-1.4")]


@pytest.mark.parametrize("webhook_files", ["detailed", "url_only"])
def test_seven_files_make_two_posts_in_order(
    world: World, make_bot: Callable[..., BotProcess], webhook_files: str
) -> None:
    world.dk.variants.webhook_attachments = webhook_files  # with names, or (as live receivers see) URLs only
    make_bot().start()
    case = ask(world)
    world.dk.agent_reply(case["case_id"], content="all seven", attachments=[pdf(i) for i in range(1, 8)])
    posts = wait_for(lambda: (p := bot_posts(world, world.jane_dm["id"])) and len(p) == 2 and p, what="two posts")
    assert posts[0]["message"] == "all seven"
    assert [name for name, _ in attached(world, posts[0])] == [f"part{i}.pdf" for i in range(1, 6)]
    assert [name for name, _ in attached(world, posts[1])] == ["part6.pdf", "part7.pdf"]
    assert [data for _, data in attached(world, posts[1])] == [b"%PDF-6", b"%PDF-7"]
    time.sleep(1.5)  # a poll or two later: nothing more
    assert len(bot_posts(world, world.jane_dm["id"])) == 2 and len(bot_uploads(world)) == 7


@pytest.mark.parametrize("webhook_files", ["detailed", "url_only"])
def test_a_file_gone_or_too_large_is_named_and_the_agent_told(
    world: World, make_bot: Callable[..., BotProcess], webhook_files: str
) -> None:
    world.dk.variants.webhook_attachments = webhook_files
    world.mm.settings.max_file_size = 1000  # FileSettings.MaxFileSize
    make_bot().start()
    case = ask(world)
    gone_url = f"{world.dk.url}/files/999999/old%20invoice.pdf"
    world.dk.agent_reply(case["case_id"], content="three files", attachments=[
        {"file_name": "big.bin", "data": b"x" * 2000, "mime_type": "application/octet-stream"},
        {"url": gone_url, "file_name": "old invoice.pdf"},
        {"file_name": "small.txt", "data": b"ok", "mime_type": "text/plain"},
    ])
    (post,) = wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    assert post["message"].startswith("three files\n\n")
    assert "big.bin could not be attached (over Mattermost's 1000 bytes limit)" in post["message"]
    assert "old invoice.pdf could not be attached (no longer available in Deskie" in post["message"]
    assert attached(world, post) == [("small.txt", b"ok")]
    notes = wait_for(lambda: [m["content"] for m in world.dk.messages(case["case_id"]) if m["note"]],
                     what="a note to the agent")
    assert len(notes) == 1 and "big.bin" in notes[0] and "old invoice.pdf" in notes[0]
    assert "did not reach the customer" in notes[0]


def test_an_answer_of_files_only_is_posted(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    case = ask(world)
    world.dk.agent_reply(case["case_id"], html="<p></p>", attachments=[pdf(1)])
    (post,) = wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    assert [name for name, _ in attached(world, post)] == ["part1.pdf"]


def test_file_urls_that_need_the_api_credentials_are_fetched(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    world.dk.variants.file_urls_need_auth = True
    make_bot().start()
    case = ask(world)
    msg = world.dk.agent_reply(case["case_id"], content="signed contract", attachments=[pdf(1)])
    assert requests.get(msg["attachments"][0]["url"], timeout=5).status_code == 401  # without them
    (post,) = wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    assert attached(world, post) == [("part1.pdf", b"%PDF-1")]


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).seen.append(dict(self.headers))
        body = b"from elsewhere"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def other_host() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_api_credentials_never_go_to_another_host(
    world: World, make_bot: Callable[..., BotProcess], other_host: str
) -> None:
    make_bot().start()
    case = ask(world)
    world.dk.agent_reply(case["case_id"], content="see the log", attachments=[{"url": f"{other_host}/share/app.log"}])
    (post,) = wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the answer")
    assert attached(world, post) == [("app.log", b"from elsewhere")]
    assert _Recorder.seen and all("Authorization" not in h for h in _Recorder.seen)


def test_a_failing_upload_is_retried_and_the_file_attached_once(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    make_bot().start()
    case = ask(world)
    world.mm.fail_rest_next(2, 503, match="POST /api/v4/files")
    world.dk.agent_reply(case["case_id"], content="retry me", attachments=[pdf(1)])
    (post,) = wait_for(lambda: bot_posts(world, world.jane_dm["id"]), 20, "the answer")
    assert attached(world, post) == [("part1.pdf", b"%PDF-1")]
    time.sleep(1.5)
    assert len(bot_posts(world, world.jane_dm["id"])) == 1
    assert not any(m["note"] for m in world.dk.messages(case["case_id"]))  # a transient failure: no note


def _logged(world: World, method: str, path: str, status: int) -> bool:
    return any(e["method"] == method and e["path"] == path and e["status"] == status for e in world.mm.request_log)


def test_killed_after_uploading_before_posting_posts_once(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot().start()
    case = ask(world)
    world.mm.hang_rest_next(1, 30, match="POST /api/v4/posts")
    world.dk.agent_reply(case["case_id"], content="the file", attachments=[pdf(1)])
    wait_for(lambda: _logged(world, "POST", "/api/v4/files", 201), what="the upload")
    time.sleep(0.3)  # the post is on the wire, hanging
    bot.kill()
    world.mm.clear_rest_faults()
    bot.start()
    (post,) = wait_for(lambda: bot_posts(world, world.jane_dm["id"]), 20, "the answer")
    assert attached(world, post) == [("part1.pdf", b"%PDF-1")]
    time.sleep(1.5)
    assert len(bot_posts(world, world.jane_dm["id"])) == 1
    # The copy uploaded before the kill was never attached to anything.
    assert sorted(bool(f["post_id"]) for f in bot_uploads(world)) == [False, True]


def test_killed_after_posting_before_recording_posts_once(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    world.mm.variants.pending_post_dedup = False  # only the bot's own props can find the post
    bot = make_bot().start()
    case = ask(world)
    world.mm.fail_rest_after_apply_next(1, 504, match="POST /api/v4/posts", seconds=30)
    world.dk.agent_reply(case["case_id"], content="the file", attachments=[pdf(1)])
    wait_for(lambda: bot_posts(world, world.jane_dm["id"]), what="the post made, its answer hanging")
    bot.kill()
    world.mm.clear_rest_faults()
    bot.start()
    time.sleep(2.5)  # recovery has run: the ledger is posting, the post is found by its props
    (post,) = bot_posts(world, world.jane_dm["id"])
    assert attached(world, post) == [("part1.pdf", b"%PDF-1")]
    assert [bool(f["post_id"]) for f in bot_uploads(world)] == [True]
    assert bot.metrics()["deskie_mm_answers_posted_total"] == 1  # run 2 finished the answer it found
