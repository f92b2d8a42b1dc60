"""The Mattermost emulator's posts as the server's own source has them (reference §1.5, §2.3): pending_post_id
dedup (30 s, one global key, never stored), what `since=` brings back (edit-history copies, bumped thread
roots, reacted-to posts), `file_ids` omitted when empty, and reactions."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from websockets.asyncio.client import connect

from deskie_mm_bot.sandbox.mattermost import MattermostEmulator


@dataclass
class World:
    emu: MattermostEmulator
    bot: dict[str, Any]
    bot_token: str
    alice: dict[str, Any]
    alice_token: str
    town: dict[str, Any]

    def req(self, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.bot_token}"}
        return requests.request(method, self.emu.url + "/api/v4" + path, headers=headers, timeout=5, **kw)

    def post(self, body: dict[str, Any], token: str | None = None) -> requests.Response:
        return self.req("POST", "/posts", token, json={"channel_id": self.town["id"], **body})

    def since(self, ms: int) -> dict[str, Any]:
        resp = self.req("GET", f"/channels/{self.town['id']}/posts", params={"since": ms})
        assert resp.status_code == 200
        return resp.json()


@pytest.fixture
def world() -> Iterator[World]:
    with MattermostEmulator(pending_post_ttl=0.4) as emu:
        team = emu.add_team("acme")
        bot, bot_token = emu.add_bot("helpbot")
        alice = emu.add_user("alice")
        alice_token = emu.create_token(alice["id"])
        for user in (bot, alice):
            emu.add_team_member(team["id"], user["id"])
        town = emu.add_channel(team["id"], "town", "Town")
        for user in (bot, alice):
            emu.add_channel_member(town["id"], user["id"])
        yield World(emu, bot, bot_token, alice, alice_token, town)


# ---- pending_post_id ----------------------------------------------------------------------------------
def test_pending_post_id_is_echoed_by_the_create_and_the_posted_event_only(world: World) -> None:
    events: list[dict[str, Any]] = []
    answers: list[requests.Response] = []

    async def main() -> None:
        url = world.emu.url.replace("http://", "ws://") + "/api/v4/websocket"
        async with connect(url, additional_headers={"Authorization": f"Bearer {world.alice_token}"}) as ws:
            json.loads(await ws.recv())  # hello
            answers.append(await asyncio.to_thread(world.post, {"message": "root", "pending_post_id": "bot:1"}))
            events.append(json.loads(await asyncio.wait_for(ws.recv(), 3)))

    asyncio.run(main())
    assert answers[0].status_code == 201
    created = answers[0].json()
    assert created["pending_post_id"] == "bot:1"
    assert json.loads(events[0]["data"]["post"])["pending_post_id"] == "bot:1"
    world.post({"message": "reply", "root_id": created["id"]})
    # Tagged db:"-": nothing read back carries it.
    assert world.req("GET", f"/posts/{created['id']}").json()["pending_post_id"] == ""
    assert world.since(created["create_at"] - 1)["posts"][created["id"]]["pending_post_id"] == ""
    assert world.req("GET", f"/posts/{created['id']}/thread").json()["posts"][created["id"]]["pending_post_id"] == ""
    assert world.req("GET", f"/channels/{world.town['id']}/posts").json()["posts"][created["id"]]["pending_post_id"] == ""


def test_a_repeat_within_the_window_gets_the_first_post_read_back(world: World) -> None:
    world.emu.pending_post_ttl = 5.0
    first = world.post({"message": "once", "pending_post_id": "bot:2"}).json()
    again = world.post({"message": "once", "pending_post_id": "bot:2"})
    assert again.status_code == 201
    assert again.json()["id"] == first["id"] and again.json()["pending_post_id"] == ""
    assert len(world.emu.posts_in(world.town["id"])) == 1


def test_a_repeat_after_the_window_makes_a_second_post(world: World) -> None:
    first = world.post({"message": "twice", "pending_post_id": "bot:3"}).json()
    time.sleep(0.5)  # the window is 0.4 s here (30 s on a real server)
    second = world.post({"message": "twice", "pending_post_id": "bot:3"}).json()
    assert second["id"] != first["id"]
    assert [p["message"] for p in world.emu.posts_in(world.town["id"])] == ["twice", "twice"]


def test_a_repeat_while_the_first_create_is_saved_gets_500_pending(world: World) -> None:
    world.emu.pending_post_ttl = 5.0
    world.emu.slow_post_save_next(1, 0.6)
    results: list[requests.Response] = []
    slow = threading.Thread(target=lambda: results.append(world.post({"message": "m", "pending_post_id": "p:1"})))
    slow.start()
    time.sleep(0.2)
    repeat = world.post({"message": "m", "pending_post_id": "p:1"}, world.alice_token)  # any user: one key
    assert repeat.status_code == 500
    assert repeat.json()["id"] == "api.post.deduplicate_create_post.pending"
    slow.join(5)
    assert results[0].status_code == 201
    retry = world.post({"message": "m", "pending_post_id": "p:1"})
    assert retry.status_code == 201 and retry.json()["id"] == results[0].json()["id"]
    assert len(world.emu.posts_in(world.town["id"])) == 1


def test_a_failed_create_does_not_hold_its_pending_post_id(world: World) -> None:
    world.emu.pending_post_ttl = 5.0
    bad = world.post({"message": "x", "root_id": "y" * 26, "pending_post_id": "p:2"})
    assert bad.status_code == 400
    good = world.post({"message": "x", "pending_post_id": "p:2"})
    assert good.status_code == 201 and good.json()["pending_post_id"] == "p:2"


# ---- since= -------------------------------------------------------------------------------------------
def test_since_returns_the_edit_history_copy_of_an_edited_post(world: World) -> None:
    post = world.emu.post_as(world.alice["id"], world.town["id"], "v1")
    mark = post["create_at"]
    edited = world.emu.edit_post(post["id"], "v2")
    listed = world.since(mark)
    (copy,) = [p for p in listed["posts"].values() if p["id"] != post["id"]]
    assert copy["original_id"] == post["id"] and copy["message"] == "v1"
    assert copy["delete_at"] == copy["update_at"] == edited["edit_at"] == edited["update_at"]
    assert len(copy["id"]) == 26 and copy["create_at"] == post["create_at"]
    assert listed["posts"][post["id"]]["message"] == "v2" and listed["posts"][post["id"]]["original_id"] == ""
    assert set(listed["order"]) == {post["id"], copy["id"]}
    # Only since= shows it: it is no post of the channel, of a thread, nor readable by id.
    assert world.req("GET", f"/posts/{copy['id']}").status_code == 404
    page = world.req("GET", f"/channels/{world.town['id']}/posts", params={"include_deleted": "true"}).json()
    assert page["order"] == [post["id"]]
    assert [p["id"] for p in world.emu.posts_in(world.town["id"], include_deleted=True)] == [post["id"]]


def test_since_returns_the_thread_root_a_new_reply_bumped(world: World) -> None:
    root = world.emu.post_as(world.alice["id"], world.town["id"], "question")
    mark = root["create_at"]  # the emulator's clock is strictly increasing: what follows is newer
    reply = world.emu.post_as(world.alice["id"], world.town["id"], "more", root_id=root["id"])
    listed = world.since(mark)
    assert listed["posts"][root["id"]]["update_at"] == reply["create_at"]
    assert set(listed["order"]) == {root["id"], reply["id"]}  # the root counts as modified


def test_since_returns_an_unchanged_root_in_posts_but_not_in_order(world: World) -> None:
    root = world.emu.post_as(world.alice["id"], world.town["id"], "question")
    reply = world.emu.post_as(world.alice["id"], world.town["id"], "answer", root_id=root["id"])
    mark = reply["create_at"]  # the root's update_at: the reply bumped it to this
    world.emu.edit_post(reply["id"], "answer, edited")
    listed = world.since(mark)
    assert root["id"] in listed["posts"] and root["id"] not in listed["order"]
    assert reply["id"] in listed["order"]


def test_since_returns_a_post_whose_reactions_changed(world: World) -> None:
    post = world.emu.post_as(world.alice["id"], world.town["id"], "nice")
    mark = post["create_at"]
    assert world.since(mark)["order"] == []
    saved = world.req("POST", "/reactions", json={"user_id": world.bot["id"], "post_id": post["id"], "emoji_name": "+1"})
    assert saved.status_code == 200 and saved.json()["emoji_name"] == "+1"
    listed = world.since(mark)
    assert listed["order"] == [post["id"]]
    assert listed["posts"][post["id"]]["has_reactions"] is True
    assert listed["posts"][post["id"]]["edit_at"] == 0
    others = {"user_id": world.alice["id"], "post_id": post["id"], "emoji_name": "+1"}
    assert world.req("POST", "/reactions", json=others).status_code == 403
    assert [r["user_id"] for r in world.req("GET", f"/posts/{post['id']}/reactions").json()] == [world.bot["id"]]
    gone = world.req("DELETE", f"/users/{world.bot['id']}/posts/{post['id']}/reactions/+1")
    assert gone.status_code == 200
    assert "has_reactions" not in world.req("GET", f"/posts/{post['id']}").json()


# ---- file_ids -----------------------------------------------------------------------------------------
def test_file_ids_key_is_absent_without_files_everywhere(world: World) -> None:
    events: list[dict[str, Any]] = []

    async def main() -> None:
        url = world.emu.url.replace("http://", "ws://") + "/api/v4/websocket"
        async with connect(url, additional_headers={"Authorization": f"Bearer {world.bot_token}"}) as ws:
            json.loads(await ws.recv())  # hello
            plain = await asyncio.to_thread(world.emu.post_as, world.alice["id"], world.town["id"], "no files")
            info = await asyncio.to_thread(world.emu.upload_file, world.alice["id"], world.town["id"], "a.txt", b"a")
            await asyncio.to_thread(
                world.emu.post_as, world.alice["id"], world.town["id"], "one file", "", None, [info["id"]]
            )
            await asyncio.to_thread(world.emu.edit_post, plain["id"], "no files, edited")
            for _ in range(3):
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 3)))

    asyncio.run(main())
    posts = [json.loads(e["data"]["post"]) for e in events]
    assert [e["event"] for e in events] == ["posted", "posted", "post_edited"]
    assert "file_ids" not in posts[0] and "file_ids" not in posts[2]
    assert len(posts[1]["file_ids"]) == 1
    plain_id, with_file_id = posts[0]["id"], posts[1]["id"]
    assert "file_ids" not in world.req("GET", f"/posts/{plain_id}").json()
    assert "file_ids" in world.req("GET", f"/posts/{with_file_id}").json()
    listed = world.since(1)
    assert all(("file_ids" in p) == (p["id"] == with_file_id) for p in listed["posts"].values())
    page = world.req("GET", f"/channels/{world.town['id']}/posts").json()
    assert "file_ids" not in page["posts"][plain_id]
    created = world.post({"message": "bot, no files"}).json()
    assert "file_ids" not in created
