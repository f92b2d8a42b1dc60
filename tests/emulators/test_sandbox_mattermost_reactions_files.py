"""The Mattermost emulator's reactions, file limits and client config, as the reference describes the
real server (mattermost-protocol.md §2.3 "Reactions", "POST /api/v4/files")."""

from __future__ import annotations

import asyncio
import json
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
    token: str
    alice: dict[str, Any]
    alice_token: str
    town: dict[str, Any]
    post: dict[str, Any]

    def req(self, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return requests.request(method, self.emu.url + "/api/v4" + path, headers=headers, timeout=5, **kw)


@pytest.fixture
def world() -> Iterator[World]:
    with MattermostEmulator() as emu:
        team = emu.add_team("acme")
        bot, token = emu.add_bot("helpbot")
        alice = emu.add_user("alice")
        town = emu.add_channel(team["id"], "town", "Town Hall")
        for user in (bot, alice):
            emu.add_channel_member(town["id"], user["id"])
        post = emu.post_as(alice["id"], town["id"], "my printer is on fire")
        yield World(emu, bot, token, alice, emu.create_token(alice["id"]), town, post)


def react(world: World, emoji: str, user_id: str | None = None, token: str | None = None) -> requests.Response:
    body = {"user_id": user_id or world.bot["id"], "post_id": world.post["id"], "emoji_name": emoji}
    return world.req("POST", "/reactions", token=token, json=body)


def test_a_reaction_is_saved_with_200_and_again_as_an_upsert(world: World) -> None:
    first = react(world, "eyes")
    assert first.status_code == 200  # not the 201 the OpenAPI file claims
    r = first.json()
    assert (r["user_id"], r["post_id"], r["emoji_name"], r["delete_at"]) == (
        world.bot["id"], world.post["id"], "eyes", 0)
    assert r["channel_id"] == world.town["id"] and "remote_id" in r
    assert react(world, "eyes").status_code == 200
    listed = world.req("GET", f"/posts/{world.post['id']}/reactions")
    assert listed.status_code == 200 and [x["emoji_name"] for x in listed.json()] == ["eyes"]
    by_ids = world.req("POST", "/posts/ids/reactions", json=[world.post["id"]]).json()
    assert [x["emoji_name"] for x in by_ids[world.post["id"]]] == ["eyes"]


def test_a_reaction_bumps_the_posts_update_at_so_since_brings_it_back(world: World) -> None:
    before = world.emu.posts_in(world.town["id"])[0]["update_at"]
    react(world, "white_check_mark")
    after = world.emu.posts_in(world.town["id"])[0]
    assert after["update_at"] > before and after["has_reactions"] is True
    since = world.req("GET", f"/channels/{world.town['id']}/posts", params={"since": before}).json()
    assert world.post["id"] in since["order"]


def test_reactions_are_refused_as_the_server_refuses_them(world: World) -> None:
    wrong_user = react(world, "eyes", user_id=world.alice["id"])
    assert (wrong_user.status_code, wrong_user.json()["id"]) == (403, "api.reaction.save_reaction.user_id.app_error")
    unknown = react(world, "not_an_emoji_anywhere")
    assert (unknown.status_code, unknown.json()["id"]) == (404, "app.emoji.get_by_name.no_result")
    bad = react(world, ":eyes:")
    assert (bad.status_code, bad.json()["id"]) == (400, "api.reaction.save_reaction.invalid.app_error")
    outsider = world.emu.add_user("mallory")
    mallory_token = world.emu.create_token(outsider["id"])
    assert react(world, "eyes", user_id=outsider["id"], token=mallory_token).status_code == 403


def test_removing_a_reaction(world: World) -> None:
    react(world, "eyes")
    path = f"/users/{world.bot['id']}/posts/{world.post['id']}/reactions/eyes"
    other = world.req("DELETE", path, token=world.alice_token)
    assert other.status_code == 403  # someone else's
    gone = world.req("DELETE", path)
    assert (gone.status_code, gone.json()) == (200, {"status": "OK"})
    assert world.emu.reactions_on(world.post["id"]) == []


def test_reaction_events_carry_the_reaction_as_a_json_string(world: World) -> None:
    ws_url = world.emu.url.replace("http://", "ws://") + "/api/v4/websocket"

    async def main() -> None:
        async with connect(ws_url, additional_headers={"Authorization": f"Bearer {world.alice_token}"}) as ws:
            assert json.loads(await ws.recv())["event"] == "hello"
            await asyncio.to_thread(react, world, "eyes")
            await asyncio.to_thread(
                world.req, "DELETE", f"/users/{world.bot['id']}/posts/{world.post['id']}/reactions/eyes")
            seen = []
            while len(seen) < 2:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 3))
                if msg.get("event", "").startswith("reaction_"):
                    seen.append(msg)
            added, removed = seen
            assert added["event"] == "reaction_added" and removed["event"] == "reaction_removed"
            assert isinstance(added["data"]["reaction"], str)
            assert json.loads(added["data"]["reaction"])["emoji_name"] == "eyes"
            assert added["broadcast"]["channel_id"] == world.town["id"]
            assert json.loads(removed["data"]["reaction"])["emoji_name"] == "eyes"

    asyncio.run(main())


def upload(world: World, data: bytes, name: str = "log.txt") -> requests.Response:
    return world.req("POST", "/files", data={"channel_id": world.town["id"]}, files={"files": (name, data)})


def test_uploads_over_max_file_size_are_refused_with_413(world: World) -> None:
    world.emu.settings.max_file_size = 1024
    ok = upload(world, b"x" * 1024)
    assert ok.status_code == 201 and ok.json()["file_infos"][0]["size"] == 1024 and ok.json()["client_ids"] == []
    big = upload(world, b"x" * 1025)
    assert (big.status_code, big.json()["id"]) == (413, "api.file.upload_file.too_large_detailed.app_error")


def test_uploads_when_attachments_are_disabled_are_refused(world: World) -> None:
    world.emu.settings.enable_file_attachments = False
    r = upload(world, b"hi")
    assert (r.status_code, r.json()["id"]) == (403, "api.file.attachments.disabled.app_error")


def test_client_config_old_format_tells_the_file_limits(world: World) -> None:
    world.emu.settings.max_file_size = 5242880
    cfg = world.req("GET", "/config/client", params={"format": "old"})
    assert cfg.status_code == 200
    assert cfg.json()["MaxFileSize"] == "5242880" and cfg.json()["EnableFileAttachments"] == "true"
    assert world.req("GET", "/config/client").status_code == 501


def test_a_post_takes_five_files_at_most(world: World) -> None:
    ids = [upload(world, f"{i}".encode(), f"f{i}.txt").json()["file_infos"][0]["id"] for i in range(6)]
    six = world.req("POST", "/posts", json={"channel_id": world.town["id"], "message": "", "file_ids": ids})
    assert six.status_code == 400
    five = world.req("POST", "/posts", json={"channel_id": world.town["id"], "message": "", "file_ids": ids[:5]})
    assert five.status_code == 201
    assert [f["name"] for f in five.json()["metadata"]["files"]] == [f"f{i}.txt" for i in range(5)]
