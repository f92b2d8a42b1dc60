"""The Mattermost emulator's REST API and control API, checked with raw HTTP and mattermostautodriver."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from mattermostautodriver import TypedDriver
from mattermostautodriver.exceptions import NoAccessTokenProvided, ResourceNotFound
from mattermostautodriver.websocket import Websocket

from deskie_mm_bot.sandbox.mattermost import MattermostEmulator
from deskie_mm_bot.sandbox.mattermost.util import ID_ALPHABET


@dataclass
class World:
    emu: MattermostEmulator
    team: dict[str, Any]
    bot: dict[str, Any]
    bot_token: str
    alice: dict[str, Any]
    alice_token: str
    town: dict[str, Any]

    def req(self, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.bot_token}"}
        return requests.request(method, self.emu.url + "/api/v4" + path, headers=headers, timeout=5, **kw)


@pytest.fixture
def world() -> Iterator[World]:
    with MattermostEmulator() as emu:
        team = emu.add_team("acme", "Acme")
        bot, bot_token = emu.add_bot("helpbot", "Help Bot")
        alice = emu.add_user("alice", "Alice", "Liddell")
        alice_token = emu.create_token(alice["id"])
        for user in (bot, alice):
            emu.add_team_member(team["id"], user["id"])
        town = emu.add_channel(team["id"], "town-square", "Town Square")
        for user in (bot, alice):
            emu.add_channel_member(town["id"], user["id"])
        yield World(emu, team, bot, bot_token, alice, alice_token, town)


def driver(world: World, token: str | None = None) -> TypedDriver:
    port = int(world.emu.url.rsplit(":", 1)[1])
    options = {
        "url": "127.0.0.1",
        "port": port,
        "scheme": "http",
        "token": token or world.bot_token,
        "verify": False,
    }
    return TypedDriver(options)


def test_ids_are_mattermost_shaped(world: World) -> None:
    for obj in (world.team, world.bot, world.alice, world.town):
        assert len(obj["id"]) == 26
        assert set(obj["id"]) <= set(ID_ALPHABET)


def test_json_content_type_is_exact_and_headers_present(world: World) -> None:
    resp = world.req("GET", "/users/me")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Expires"] == "0"
    assert resp.headers["X-Request-Id"]
    assert resp.headers["X-Version-Id"].startswith("10.11.0.")
    created = world.req("POST", "/posts", json={"channel_id": world.town["id"], "message": "hi"})
    assert created.headers["Content-Type"] == "application/json"
    assert "Expires" not in created.headers


def test_missing_token_is_401_app_error(world: World) -> None:
    resp = requests.get(world.emu.url + "/api/v4/users/me", timeout=5)
    body = resp.json()
    assert resp.status_code == 401
    assert body["id"] == "api.context.session_expired.app_error"
    assert {"id", "message", "detailed_error", "request_id", "status_code"} <= set(body)


def test_unknown_route_404_and_wrong_method_405(world: World) -> None:
    assert world.req("GET", "/no/such/route").status_code == 404
    resp = world.req("DELETE", "/users/me/teams")
    assert resp.status_code == 405
    assert resp.json()["status_code"] == 405


def test_driver_login_get_user_direct_channel_and_post(world: World) -> None:
    drv = driver(world)
    me = drv.login()
    assert me["id"] == world.bot["id"] and me["is_bot"] is True
    assert drv.users.get_user(world.alice["id"])["username"] == "alice"
    dm = drv.channels.create_direct_channel([world.bot["id"], world.alice["id"]])
    assert dm["type"] == "D" and dm["team_id"] == ""
    assert dm["name"] == "__".join(sorted([world.bot["id"], world.alice["id"]]))
    again = drv.channels.create_direct_channel([world.alice["id"], world.bot["id"]])
    assert again["id"] == dm["id"]
    post = drv.posts.create_post(channel_id=dm["id"], message="hello alice")
    assert post["props"]["from_bot"] == "true"
    assert [p["message"] for p in world.emu.posts_in(dm["id"])] == ["hello alice"]


def test_driver_error_mapping(world: World) -> None:
    drv = driver(world)
    drv.login()
    with pytest.raises(ResourceNotFound) as exc:
        drv.posts.get_post("x" * 26)
    assert exc.value.status_code == 404
    world.emu.revoke_token(world.bot_token)
    with pytest.raises(NoAccessTokenProvided):
        drv.users.get_user("me")


def test_post_shape_matches_post_struct(world: World) -> None:
    post = world.req("POST", "/posts", json={"channel_id": world.town["id"], "message": "see #tag"}).json()
    expected = [
        "id", "create_at", "update_at", "edit_at", "delete_at", "is_pinned", "user_id", "channel_id",
        "root_id", "original_id", "message", "type", "props", "hashtags", "pending_post_id",
        "reply_count", "last_reply_at", "participants", "metadata",
    ]  # fmt: skip
    assert list(post) == expected  # file_ids is omitempty: no key on a post without files
    assert post["hashtags"] == "#tag"
    assert post["user_id"] == world.bot["id"]
    human = world.req(
        "POST", "/posts", world.alice_token, json={"channel_id": world.town["id"], "message": "x"}
    )
    assert "from_bot" not in human.json()["props"]


def test_post_validation_errors(world: World) -> None:
    outsider = world.emu.add_user("mallory")
    token = world.emu.create_token(outsider["id"])
    resp = world.req("POST", "/posts", token, json={"channel_id": world.town["id"], "message": "x"})
    assert resp.status_code == 403
    resp = world.req("POST", "/posts", json={"channel_id": world.town["id"], "message": "x" * 16384})
    assert resp.status_code == 400
    assert resp.json()["id"] == "model.post.is_valid.message_length.app_error"
    assert (
        world.req("POST", "/posts", json={"channel_id": world.town["id"], "message": ""}).status_code == 400
    )
    resp = world.req(
        "POST", "/posts", json={"channel_id": world.town["id"], "message": "r", "root_id": "y" * 26}
    )
    assert resp.status_code == 400
    with pytest.raises(ValueError):
        world.emu.post_as(outsider["id"], world.town["id"], "sneaky")


def test_threads_reply_to_root_only(world: World) -> None:
    root = world.emu.post_as(world.alice["id"], world.town["id"], "question")
    reply = world.req(
        "POST", "/posts", json={"channel_id": world.town["id"], "message": "a", "root_id": root["id"]}
    )
    assert reply.status_code == 201
    nested = {"channel_id": world.town["id"], "message": "b", "root_id": reply.json()["id"]}
    assert world.req("POST", "/posts", json=nested).status_code == 400
    thread = world.req("GET", f"/posts/{root['id']}/thread").json()
    assert thread["order"] == [reply.json()["id"], root["id"]]
    assert thread["posts"][root["id"]]["reply_count"] == 1


def test_pending_post_id_dedups_under_one_key_for_all_users(world: World) -> None:
    body = {"channel_id": world.town["id"], "message": "once", "pending_post_id": "abc:1"}
    first = world.req("POST", "/posts", json=body)
    second = world.req("POST", "/posts", json=body)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    # The key is the raw string, global: another user's create with the same id gets the first post.
    other = world.req("POST", "/posts", world.alice_token, json=body)
    assert other.json()["id"] == first.json()["id"]
    assert len(world.emu.posts_in(world.town["id"])) == 1


def test_edit_delete_and_since_catch_up(world: World) -> None:
    cid = world.town["id"]
    first = world.emu.post_as(world.alice["id"], cid, "one")
    second = world.emu.post_as(world.alice["id"], cid, "two")
    mark = second["create_at"]
    third = world.emu.post_as(world.alice["id"], cid, "three")
    edited = world.emu.edit_post(first["id"], "one, edited")
    assert edited["edit_at"] > 0 and edited["update_at"] == edited["edit_at"]
    world.emu.delete_post(second["id"])
    since = world.req("GET", f"/channels/{cid}/posts", params={"since": mark}).json()
    (history,) = [p for p in since["posts"].values() if p["original_id"]]  # the edit's copy of "one"
    assert set(since["order"]) == {first["id"], second["id"], third["id"], history["id"]}
    assert since["posts"][second["id"]]["delete_at"] > 0 and since["posts"][second["id"]]["original_id"] == ""
    assert world.req("GET", f"/posts/{second['id']}").status_code == 404
    page = world.req("GET", f"/channels/{cid}/posts").json()
    assert page["order"] == [third["id"], first["id"]]
    assert [p["id"] for p in world.emu.posts_in(cid, include_deleted=True)] == [
        first["id"],
        second["id"],
        third["id"],
    ]


def test_channel_posts_pagination(world: World) -> None:
    ids = [world.emu.post_as(world.alice["id"], world.town["id"], str(i))["id"] for i in range(5)]
    page0 = world.req("GET", f"/channels/{world.town['id']}/posts", params={"per_page": 2}).json()
    page1 = world.req("GET", f"/channels/{world.town['id']}/posts", params={"per_page": 2, "page": 1}).json()
    assert page0["order"] == [ids[4], ids[3]] and page1["order"] == [ids[2], ids[1]]
    before = world.req("GET", f"/channels/{world.town['id']}/posts", params={"before": ids[2]}).json()
    assert before["order"] == [ids[1], ids[0]]
    after = world.req("GET", f"/channels/{world.town['id']}/posts", params={"after": ids[2]}).json()
    assert after["order"] == [ids[4], ids[3]]


def test_channel_access_rules(world: World) -> None:
    secret = world.emu.add_channel(world.team["id"], "secret", "Secret", type="P")
    world.emu.add_channel_member(secret["id"], world.alice["id"])
    assert world.req("GET", f"/channels/{secret['id']}").status_code == 403
    assert world.req("GET", f"/channels/{secret['id']}", world.alice_token).status_code == 200
    assert world.req("GET", "/channels/" + "q" * 26).status_code == 404
    assert (
        world.req("GET", f"/channels/{secret['id']}/members/{world.bot['id']}", world.alice_token).status_code
        == 404
    )
    member = world.req("GET", f"/channels/{world.town['id']}/members/{world.bot['id']}").json()
    assert member["user_id"] == world.bot["id"] and member["roles"] == "channel_user"
    added = world.req(
        "POST", f"/channels/{secret['id']}/members", world.alice_token, json={"user_id": world.bot["id"]}
    )
    assert added.status_code == 201
    assert world.req("GET", f"/channels/{secret['id']}").status_code == 200


def test_user_and_team_lookups(world: World) -> None:
    teams = world.req("GET", "/users/me/teams").json()
    assert [t["name"] for t in teams] == ["acme"]
    assert world.req("GET", "/teams/name/acme").json()["id"] == world.team["id"]
    chans = world.req("GET", f"/users/me/teams/{world.team['id']}/channels").json()
    assert [c["name"] for c in chans] == ["town-square"]
    dm = world.emu.direct_channel(world.bot["id"], world.alice["id"])
    all_chans = world.req("GET", "/users/me/channels").json()
    assert {c["id"] for c in all_chans} == {world.town["id"], dm["id"]}
    found = world.req("POST", "/users/search", json={"term": "ALI"}).json()
    assert [u["username"] for u in found] == ["alice"]
    by_last = world.req("POST", "/users/search", json={"term": "lidd", "team_id": world.team["id"]}).json()
    assert [u["id"] for u in by_last] == [world.alice["id"]]
    auto = world.req(
        "GET", "/users/autocomplete", params={"name": "help", "team_id": world.team["id"]}
    ).json()
    assert [u["username"] for u in auto["users"]] == ["helpbot"]
    ids = world.req("POST", "/users/ids", json=[world.alice["id"], "z" * 26]).json()
    assert [u["id"] for u in ids] == [world.alice["id"]]
    search = world.req("POST", f"/teams/{world.team['id']}/channels/search", json={"term": "town"}).json()
    assert [c["id"] for c in search] == [world.town["id"]]
    by_name = world.req("GET", f"/teams/{world.team['id']}/channels/name/town-square").json()
    assert by_name["id"] == world.town["id"]


def test_group_channel(world: World) -> None:
    carol = world.emu.add_user("carol")
    gm = world.req("POST", "/channels/group", json=[world.bot["id"], world.alice["id"], carol["id"]])
    assert gm.status_code == 201 and gm.json()["type"] == "G"
    assert world.emu.group_channel([carol["id"], world.alice["id"], world.bot["id"]])["id"] == gm.json()["id"]
    assert world.req("POST", "/channels/group", json=[world.bot["id"], world.alice["id"]]).status_code == 400


def test_file_upload_download_and_attach(world: World) -> None:
    files = {"files": ("log.txt", b"hello file", "text/plain")}
    resp = world.req("POST", "/files", data={"channel_id": world.town["id"]}, files=files)
    assert resp.status_code == 201
    info = resp.json()["file_infos"][0]
    assert info["name"] == "log.txt" and info["size"] == 10 and info["extension"] == "txt"
    raw = world.req("GET", f"/files/{info['id']}")
    assert raw.content == b"hello file"
    assert raw.headers["Content-Type"] == "text/plain"
    assert raw.headers["Content-Disposition"].startswith("attachment")
    assert world.req("GET", f"/files/{info['id']}/info").json()["id"] == info["id"]
    post = world.req(
        "POST", "/posts", json={"channel_id": world.town["id"], "message": "", "file_ids": [info["id"]]}
    )
    assert post.status_code == 201
    assert post.json()["metadata"]["files"][0]["id"] == info["id"]
    other = world.emu.upload_file(world.alice["id"], world.town["id"], "pic.png", b"\x89PNG")
    assert other["mime_type"] == "image/png"
    dm = world.emu.direct_channel(world.bot["id"], world.alice["id"])
    wrong = {"channel_id": dm["id"], "message": "x", "file_ids": [other["id"]]}
    assert world.req("POST", "/posts", json=wrong).status_code == 400


def test_http_control_interface(world: World) -> None:
    base = world.emu.url + "/_emu"
    user = requests.post(base + "/users", json={"username": "dave"}, timeout=5).json()
    bot = requests.post(base + "/bots", json={"username": "otherbot"}, timeout=5).json()
    assert bot["user"]["is_bot"] is True and bot["token"]
    dm = requests.post(base + "/direct", json={"user_ids": [user["id"], bot["user"]["id"]]}, timeout=5).json()
    body = {"user_id": user["id"], "channel_id": dm["id"], "message": "ping"}
    assert requests.post(base + "/post_as", json=body, timeout=5).status_code == 201
    posts = requests.get(f"{base}/posts/{dm['id']}", timeout=5).json()
    assert [p["message"] for p in posts] == ["ping"]
    assert world.emu.request_log == []  # control requests are not logged
    resp = requests.post(
        base + "/post_as", json={"user_id": user["id"], "channel_id": world.town["id"]}, timeout=5
    )
    assert resp.status_code == 403
    assert json.loads(resp.content)["request_id"]


def test_request_log_records_rest_calls(world: World) -> None:
    world.req("GET", f"/channels/{world.town['id']}/posts", params={"since": "5"})
    world.req("GET", "/users/me", "bogus")
    assert world.emu.request_log == [
        {
            "method": "GET",
            "path": f"/api/v4/channels/{world.town['id']}/posts",
            "query": {"since": "5"},
            "status": 200,
        },
        {"method": "GET", "path": "/api/v4/users/me", "query": {}, "status": 401},
    ]
    world.emu.clear_request_log()
    assert world.emu.request_log == []


def test_driver_file_upload(world: World) -> None:
    drv = driver(world)
    drv.login()
    resp = drv.files.upload_file(files=("notes.txt", b"abc"), channel_id=world.town["id"])
    info = resp["file_infos"][0]
    assert info["name"] == "notes.txt" and info["channel_id"] == world.town["id"]
    post = drv.posts.create_post(channel_id=world.town["id"], message="see file", file_ids=[info["id"]])
    assert post["file_ids"] == [info["id"]]


@pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")
def test_autodriver_websocket_gets_hello_ok_and_posted(world: World) -> None:
    drv = driver(world)
    drv.login()
    received: list[dict[str, Any]] = []

    async def main() -> None:
        ws = Websocket(drv.options, world.bot_token)
        got_post = asyncio.Event()

        async def handler(message: str) -> None:
            received.append(json.loads(message))
            if received[-1].get("event") == "posted":
                got_post.set()

        task = asyncio.create_task(ws.connect(handler))
        await asyncio.to_thread(world.emu.wait_for, lambda: world.emu.connection_count() == 1, 5)
        await asyncio.to_thread(world.emu.post_as, world.alice["id"], world.town["id"], "hi @helpbot")
        await asyncio.wait_for(got_post.wait(), 5)
        ws.disconnect()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert received[0]["event"] == "hello" and received[0]["seq"] == 0
    assert received[1] == {"status": "OK", "seq_reply": 1}
    assert received[2]["event"] == "posted" and received[2]["seq"] == 1
    assert json.loads(received[2]["data"]["mentions"]) == [world.bot["id"]]


def test_channel_listing_carries_each_channels_last_post_at(world: World) -> None:
    """GET /users/{id}/teams/{team}/channels: the Channel objects (DMs included) move `last_post_at`
    with each new post (what the bot's catch-up relies on to skip unchanged chats)."""
    dm = world.emu.direct_channel(world.bot["id"], world.alice["id"])

    def listed() -> dict[str, int]:
        r = world.req("GET", f"/users/{world.bot['id']}/teams/{world.team['id']}/channels")
        assert r.status_code == 200
        return {c["id"]: c["last_post_at"] for c in r.json()}

    assert listed() == {world.town["id"]: 0, dm["id"]: 0}
    first = world.emu.post_as(world.alice["id"], dm["id"], "hello")
    assert listed()[dm["id"]] == first["create_at"]
    second = world.emu.post_as(world.alice["id"], dm["id"], "again")
    assert listed() == {world.town["id"]: 0, dm["id"]: second["create_at"]}
