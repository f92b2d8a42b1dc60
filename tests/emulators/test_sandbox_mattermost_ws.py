"""The Mattermost emulator's websocket: hello, challenge auth, events, pings, resume and faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import requests
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from deskie_mm_bot.sandbox.mattermost import MattermostEmulator


@dataclass
class World:
    emu: MattermostEmulator
    bot: dict[str, Any]
    token: str
    alice: dict[str, Any]
    dm: dict[str, Any]
    town: dict[str, Any]

    @property
    def ws_url(self) -> str:
        return self.emu.url.replace("http://", "ws://") + "/api/v4/websocket"


@pytest.fixture
def world() -> Iterator[World]:
    with MattermostEmulator() as emu:
        team = emu.add_team("acme")
        bot, token = emu.add_bot("helpbot")
        alice = emu.add_user("alice")
        dm = emu.direct_channel(alice["id"], bot["id"])
        town = emu.add_channel(team["id"], "town", "Town Hall")
        for user in (bot, alice):
            emu.add_channel_member(town["id"], user["id"])
        yield World(emu, bot, token, alice, dm, town)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def recv(ws: ClientConnection, timeout: float = 3.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_event(ws: ClientConnection, name: str, timeout: float = 3.0) -> dict[str, Any]:
    while True:
        msg = await recv(ws, timeout)
        if msg.get("event") == name:
            return msg


async def post_in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def test_hello_on_header_auth(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            hello = await recv(ws)
            assert hello["event"] == "hello" and hello["seq"] == 0
            assert len(hello["data"]["connection_id"]) == 26
            assert hello["data"]["server_version"].startswith("10.11.0.")
            assert "server_hostname" in hello["data"]
            assert hello["broadcast"]["user_id"] == world.bot["id"]
            assert world.emu.connection_count() == 1

    asyncio.run(main())


def test_trailing_slash_endpoint(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url + "/", additional_headers=bearer(world.token)) as ws:
            assert (await recv(ws))["event"] == "hello"

    asyncio.run(main())


def test_challenge_auth_sends_hello_then_ok(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url) as ws:
            await ws.send(
                json.dumps({"seq": 1, "action": "authentication_challenge", "data": {"token": world.token}})
            )
            hello = await recv(ws)
            assert hello["event"] == "hello" and hello["seq"] == 0
            assert await recv(ws) == {"status": "OK", "seq_reply": 1}
            await ws.send(
                json.dumps({"seq": 2, "action": "authentication_challenge", "data": {"token": "x"}})
            )
            await ws.send(json.dumps({"seq": 3, "action": "ping"}))
            assert (await recv(ws))["seq_reply"] == 3  # the repeated challenge got no reply

    asyncio.run(main())


def test_bad_token_drops_without_close_frame(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url) as ws:
            await ws.send(
                json.dumps({"seq": 1, "action": "authentication_challenge", "data": {"token": "nope"}})
            )
            with pytest.raises(ConnectionClosedError) as exc:
                await recv(ws)
            assert exc.value.rcvd is None  # no close frame: the client reports 1006

    asyncio.run(main())


def test_revoked_token_cannot_authenticate(world: World) -> None:
    world.emu.revoke_token(world.token)

    async def main() -> None:
        async with connect(world.ws_url) as ws:
            await ws.send(
                json.dumps({"seq": 1, "action": "authentication_challenge", "data": {"token": world.token}})
            )
            with pytest.raises(ConnectionClosedError):
                await recv(ws)

    asyncio.run(main())


def test_dm_post_reaches_bot_with_mentions(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            await recv(ws)
            sent = await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "hello bot")
            evt = await recv(ws)
            assert evt["event"] == "posted" and evt["seq"] == 1
            data = evt["data"]
            assert isinstance(data["post"], str)
            post = json.loads(data["post"])
            assert post["id"] == sent["id"] and post["message"] == "hello bot"
            assert data["channel_type"] == "D"
            assert data["channel_name"] == world.dm["name"]
            assert data["channel_display_name"] == "@alice"
            assert data["sender_name"] == "@alice"
            assert data["team_id"] == "" and data["set_online"] is True
            assert json.loads(data["mentions"]) == [world.bot["id"]]
            assert evt["broadcast"]["channel_id"] == world.dm["id"]

    asyncio.run(main())


def test_channel_mentions_only_for_mentioned_connection(world: World) -> None:
    alice_token = world.emu.create_token(world.alice["id"])

    async def main() -> None:
        async with (
            connect(world.ws_url, additional_headers=bearer(world.token)) as bot_ws,
            connect(world.ws_url, additional_headers=bearer(alice_token)) as alice_ws,
        ):
            await recv(bot_ws)
            await recv(alice_ws)
            await post_in_thread(world.emu.post_as, world.alice["id"], world.town["id"], "hey @HelpBot.")
            bot_evt = await recv_event(bot_ws, "posted")
            alice_evt = await recv_event(alice_ws, "posted")
            assert json.loads(bot_evt["data"]["mentions"]) == [world.bot["id"]]
            assert "mentions" not in alice_evt["data"]  # the poster is never mentioned
            assert bot_evt["data"]["channel_display_name"] == "Town Hall"
            await post_in_thread(world.emu.post_as, world.alice["id"], world.town["id"], "no mention")
            assert "mentions" not in (await recv_event(bot_ws, "posted"))["data"]

    asyncio.run(main())


def test_bot_receives_its_own_posts_and_seq_increments(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            await recv(ws)
            for text in ("one", "two", "three"):
                resp = await asyncio.to_thread(
                    requests.post,
                    world.emu.url + "/api/v4/posts",
                    json={"channel_id": world.dm["id"], "message": text},
                    headers=bearer(world.token),
                    timeout=5,
                )
                assert resp.status_code == 201
            events = [await recv(ws) for _ in range(3)]
            assert [e["seq"] for e in events] == [1, 2, 3]
            posts = [json.loads(e["data"]["post"]) for e in events]
            assert [p["message"] for p in posts] == ["one", "two", "three"]
            assert all(p["user_id"] == world.bot["id"] for p in posts)
            assert all(p["props"]["from_bot"] == "true" for p in posts)
            assert all("mentions" not in e["data"] for e in events)

    asyncio.run(main())


def test_app_ping_and_typing_replies(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            await recv(ws)
            await ws.send(json.dumps({"action": "ping", "seq": 7}))
            reply = await recv(ws)
            assert reply["status"] == "OK" and reply["seq_reply"] == 7
            assert reply["data"]["text"] == "pong" and reply["data"]["node_id"] == ""
            assert reply["data"]["version"] == "10.11.0" and reply["data"]["server_time"] > 0
            assert "seq" not in reply and "event" not in reply
            typing = {
                "action": "user_typing",
                "seq": 8,
                "data": {"channel_id": world.dm["id"], "parent_id": ""},
            }
            await ws.send(json.dumps(typing))
            assert await recv(ws) == {"status": "OK", "seq_reply": 8}

    asyncio.run(main())


def test_typing_event_omits_typer(world: World) -> None:
    alice_token = world.emu.create_token(world.alice["id"])

    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as bot_ws:
            await recv(bot_ws)
            async with connect(world.ws_url, additional_headers=bearer(alice_token)) as alice_ws:
                await recv(alice_ws)
                typing = {"action": "user_typing", "seq": 1, "data": {"channel_id": world.dm["id"]}}
                await alice_ws.send(json.dumps(typing))
                evt = await recv_event(bot_ws, "typing")
                assert evt["data"] == {"parent_id": "", "user_id": world.alice["id"]}
                assert evt["broadcast"]["omit_users"] == {world.alice["id"]: True}

    asyncio.run(main())


def test_edit_and_delete_events(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            await recv(ws)
            post = await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "v1")
            await recv_event(ws, "posted")
            await post_in_thread(world.emu.edit_post, post["id"], "v2")
            edited = json.loads((await recv_event(ws, "post_edited"))["data"]["post"])
            assert edited["message"] == "v2" and edited["edit_at"] > 0
            await post_in_thread(world.emu.delete_post, post["id"])
            deleted = json.loads((await recv_event(ws, "post_deleted"))["data"]["post"])
            assert deleted["id"] == post["id"] and deleted["delete_at"] > 0

    asyncio.run(main())


def test_resumable_drop_replays_missed_events_without_hello(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            hello = await recv(ws)
            cid = hello["data"]["connection_id"]
            await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "before")
            assert (await recv(ws))["seq"] == 1
            await asyncio.to_thread(world.emu.drop_connections, True)
            with pytest.raises(ConnectionClosedError) as exc:
                await recv(ws)
            assert exc.value.rcvd is None
        await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "while away 1")
        await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "while away 2")
        url = f"{world.ws_url}?connection_id={cid}&sequence_number=2"
        async with connect(url, additional_headers=bearer(world.token)) as ws:
            first, second = await recv(ws), await recv(ws)
            assert [first["event"], second["event"]] == ["posted", "posted"]
            assert [first["seq"], second["seq"]] == [2, 3]
            assert json.loads(first["data"]["post"])["message"] == "while away 1"
            await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "live")
            assert (await recv(ws))["seq"] == 4

    asyncio.run(main())


def test_resume_replays_from_dead_queue(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            cid = (await recv(ws))["data"]["connection_id"]
            for i in range(3):
                await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], f"m{i}")
            assert [(await recv(ws))["seq"] for _ in range(3)] == [1, 2, 3]
        # pretend the client only saw up to seq 1: it asks for 2 and gets 2 and 3 again, no hello
        url = f"{world.ws_url}?connection_id={cid}&sequence_number=2"
        async with connect(url, additional_headers=bearer(world.token)) as ws:
            replay = [await recv(ws), await recv(ws)]
            assert [m["seq"] for m in replay] == [2, 3]
            assert [json.loads(m["data"]["post"])["message"] for m in replay] == ["m1", "m2"]

    asyncio.run(main())


def test_resume_with_lost_seq_gets_new_connection(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            cid = (await recv(ws))["data"]["connection_id"]
        url = f"{world.ws_url}?connection_id={cid}&sequence_number=57"
        async with connect(url, additional_headers=bearer(world.token)) as ws:
            hello = await recv(ws)
            assert hello["event"] == "hello" and hello["seq"] == 0
            assert hello["data"]["connection_id"] != cid

    asyncio.run(main())


def test_connection_id_without_sequence_number_is_closed(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            cid = (await recv(ws))["data"]["connection_id"]
        async with connect(
            f"{world.ws_url}?connection_id={cid}", additional_headers=bearer(world.token)
        ) as ws:
            with pytest.raises(ConnectionClosedError):
                await recv(ws)

    asyncio.run(main())


def test_non_resumable_drop_gives_new_connection_and_loses_events(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            cid = (await recv(ws))["data"]["connection_id"]
            await asyncio.to_thread(world.emu.drop_connections, False)
            with pytest.raises(ConnectionClosedError):
                await recv(ws)
        await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "lost")
        url = f"{world.ws_url}?connection_id={cid}&sequence_number=1"
        async with connect(url, additional_headers=bearer(world.token)) as ws:
            hello = await recv(ws)
            assert hello["event"] == "hello" and hello["seq"] == 0
            assert hello["data"]["connection_id"] != cid
            with pytest.raises(asyncio.TimeoutError):
                await recv(ws, timeout=0.3)

    asyncio.run(main())


def test_challenge_auth_ignores_connection_id(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            cid = (await recv(ws))["data"]["connection_id"]
        async with connect(f"{world.ws_url}?connection_id={cid}&sequence_number=1") as ws:
            await ws.send(
                json.dumps({"seq": 1, "action": "authentication_challenge", "data": {"token": world.token}})
            )
            hello = await recv(ws)
            assert hello["event"] == "hello" and hello["data"]["connection_id"] != cid

    asyncio.run(main())


def test_silent_mode_swallows_pings_and_events(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token), ping_interval=None) as ws:
            cid = (await recv(ws))["data"]["connection_id"]
            world.emu.set_silent(True)
            await ws.send(json.dumps({"action": "ping", "seq": 2}))
            await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "into the void")
            with pytest.raises(asyncio.TimeoutError):
                await recv(ws, timeout=0.3)
            pong_waiter = await ws.ping()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(pong_waiter, 0.3)
            world.emu.set_silent(False)
        # the event was recorded in the dead queue: a resume replays it
        url = f"{world.ws_url}?connection_id={cid}&sequence_number=1"
        async with connect(url, additional_headers=bearer(world.token)) as ws:
            evt = await recv(ws)
            assert evt["seq"] == 1 and json.loads(evt["data"]["post"])["message"] == "into the void"

    asyncio.run(main())


def test_rejected_websocket_upgrade_is_503(world: World) -> None:
    world.emu.set_reject_websocket(True)

    async def main() -> None:
        with pytest.raises(InvalidStatus) as exc:
            async with connect(world.ws_url, additional_headers=bearer(world.token)):
                pass
        assert exc.value.response.status_code == 503

    asyncio.run(main())
    assert requests.get(world.emu.url + "/api/v4/users/me", headers=bearer(world.token), timeout=5).ok
    world.emu.set_reject_websocket(False)


def test_server_closes_connection_that_never_pongs() -> None:
    with MattermostEmulator(ping_interval=0.2) as emu:
        bot, token = emu.add_bot("deaf")

        async def main() -> None:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(emu.url + "/api/v4/websocket", headers=bearer(token), autoping=False),
            ):
                assert emu.connection_count() == 1
                await asyncio.sleep(0.8)  # pings pile up unanswered: no receive() call, no pong
                assert emu.connection_count() == 0

        asyncio.run(main())


def test_server_pings_keep_responsive_connection_alive() -> None:
    with MattermostEmulator(ping_interval=0.2) as emu:
        bot, token = emu.add_bot("pinger")
        url = emu.url.replace("http://", "ws://") + "/api/v4/websocket"

        async def main() -> None:
            async with connect(url, additional_headers=bearer(token)) as ws:
                await recv(ws)
                await asyncio.sleep(0.7)  # the client library answers the server's pings
                assert emu.connection_count() == 1

        asyncio.run(main())
        emu.wait_for(lambda: emu.connection_count() == 0, timeout=3)


def test_inactive_connections_are_reaped() -> None:
    with MattermostEmulator(reap_after=0.2) as emu:
        bot, token = emu.add_bot("reaped")
        url = emu.url.replace("http://", "ws://") + "/api/v4/websocket"

        async def main() -> None:
            async with connect(url, additional_headers=bearer(token)) as ws:
                cid = (await recv(ws))["data"]["connection_id"]
            await asyncio.sleep(0.6)
            async with connect(
                f"{url}?connection_id={cid}&sequence_number=1", additional_headers=bearer(token)
            ) as ws:
                hello = await recv(ws)
                assert hello["event"] == "hello" and hello["data"]["connection_id"] != cid

        asyncio.run(main())


def test_unauthenticated_socket_gets_no_reply_and_is_closed_after_auth_timeout(world: World) -> None:
    world.emu.hub.auth_timeout = 0.3

    async def main() -> None:
        async with connect(world.ws_url) as ws:
            # The hub drops replies to sockets it has not registered: neither not_authenticated nor bad_seq.
            await ws.send(json.dumps({"seq": 1, "action": "ping"}))
            await ws.send(json.dumps({"seq": 0, "action": "authentication_challenge", "data": {"token": world.token}}))
            with pytest.raises(ConnectionClosedError) as exc:
                await recv(ws, timeout=2)
            assert exc.value.rcvd is None

    asyncio.run(main())


def test_posted_ack_flag_marks_posted_events(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url + "?posted_ack=true", additional_headers=bearer(world.token)) as ws:
            await recv(ws)
            await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "ack me")
            assert (await recv_event(ws, "posted"))["data"]["should_ack"] is True
            await ws.send(json.dumps({"seq": 2, "action": "posted_ack", "data": {}}))
            assert await recv(ws) == {"status": "OK", "seq_reply": 2}

    asyncio.run(main())


def test_direct_added_and_user_added_events(world: World) -> None:
    carol = world.emu.add_user("carol")

    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            await recv(ws)
            dm = await post_in_thread(world.emu.direct_channel, carol["id"], world.bot["id"])
            evt = await recv_event(ws, "direct_added")
            assert evt["broadcast"]["channel_id"] == dm["id"]
            await post_in_thread(world.emu.add_channel_member, world.town["id"], carol["id"])
            added = await recv_event(ws, "user_added")
            assert added["data"]["user_id"] == carol["id"]

    asyncio.run(main())


def test_a_bad_bearer_token_is_upgraded_then_silent_then_dropped_at_the_auth_tick(world: World) -> None:
    world.emu.hub.auth_timeout = 0.4

    async def main() -> None:
        started = asyncio.get_running_loop().time()
        # The upgrade succeeds (101, no InvalidStatus) whatever the token.
        async with connect(world.ws_url, additional_headers=bearer("expired-token")) as ws:
            await asyncio.to_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "not for you")
            with pytest.raises(ConnectionClosedError) as exc:
                await recv(ws, timeout=3)  # no hello, no event: nothing before the close
            assert exc.value.rcvd is None  # no close frame: 1006
        assert asyncio.get_running_loop().time() - started >= 0.35

    asyncio.run(main())


def test_a_bad_bearer_socket_may_still_authenticate_by_challenge(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer("expired-token")) as ws:
            await ws.send(
                json.dumps({"seq": 1, "action": "authentication_challenge", "data": {"token": world.token}})
            )
            assert (await recv(ws))["event"] == "hello"
            assert await recv(ws) == {"status": "OK", "seq_reply": 1}

    asyncio.run(main())


@pytest.mark.parametrize("query", ["connection_id=not-an-id&sequence_number=1", "connection_id={cid}&sequence_number="])
def test_a_refused_resume_query_is_upgraded_then_closed_at_once(world: World, query: str) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            cid = (await recv(ws))["data"]["connection_id"]
        async with connect(f"{world.ws_url}?{query.format(cid=cid)}", additional_headers=bearer(world.token)) as ws:
            with pytest.raises(ConnectionClosedError) as exc:
                await recv(ws, timeout=1)  # well before the auth tick
            assert exc.value.rcvd is None

    asyncio.run(main())


def test_the_webapps_first_connect_query_is_a_fresh_connection(world: World) -> None:
    async def main() -> None:
        url = f"{world.ws_url}?connection_id=&sequence_number=0"
        async with connect(url, additional_headers=bearer(world.token)) as ws:
            assert (await recv(ws))["event"] == "hello"

    asyncio.run(main())


def test_a_reconnect_the_server_has_not_noticed_the_drop_of_gets_a_new_connection(world: World) -> None:
    """Only an inactive connection can be resumed: after a half-open drop the old one still counts as
    active, so the resume is "not found" and what was posted in between is lost."""

    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as ws:
            cid = (await recv(ws))["data"]["connection_id"]
            await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "seen")
            assert (await recv(ws))["seq"] == 1
            await asyncio.to_thread(world.emu.drop_connections, True, False)
            with pytest.raises(ConnectionClosedError):
                await recv(ws)
        assert world.emu.connection_count() == 0 and world.emu.connection_count(include_unnoticed=True) == 1
        await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "into the half-open socket")
        url = f"{world.ws_url}?connection_id={cid}&sequence_number=2"
        async with connect(url, additional_headers=bearer(world.token)) as ws:
            hello = await recv(ws)
            assert hello["event"] == "hello" and hello["seq"] == 0
            assert hello["data"]["connection_id"] != cid
            with pytest.raises(asyncio.TimeoutError):
                await recv(ws, timeout=0.3)  # the post made in between is not replayed
            new_cid = hello["data"]["connection_id"]
        # Once noticed, the old connection is inactive and resumable like any dropped one.
        await asyncio.to_thread(world.emu.notice_drops)
        assert world.emu.connection_count(include_unnoticed=True) == 0
        async with connect(f"{world.ws_url}?connection_id={cid}&sequence_number=2", additional_headers=bearer(world.token)) as ws:
            replayed = await recv(ws)
            assert replayed["seq"] == 2
            assert json.loads(replayed["data"]["post"])["message"] == "into the half-open socket"
        assert new_cid != cid

    asyncio.run(main())


def test_the_server_notices_a_half_open_connection_at_its_read_deadline() -> None:
    with MattermostEmulator(ping_interval=0.15) as emu:
        bot, token = emu.add_bot("halfopen")
        url = emu.url.replace("http://", "ws://") + "/api/v4/websocket"

        async def main() -> None:
            async with connect(url, additional_headers=bearer(token)) as ws:
                await recv(ws)
                await asyncio.to_thread(emu.drop_connections, True, False)
                with pytest.raises(ConnectionClosedError):
                    await recv(ws)
            assert emu.connection_count(include_unnoticed=True) == 1
            await asyncio.to_thread(emu.wait_for, lambda: emu.connection_count(include_unnoticed=True) == 0, 3)

        asyncio.run(main())


def test_a_second_socket_cannot_take_over_a_live_connection(world: World) -> None:
    async def main() -> None:
        async with connect(world.ws_url, additional_headers=bearer(world.token)) as first:
            cid = (await recv(first))["data"]["connection_id"]
            url = f"{world.ws_url}?connection_id={cid}&sequence_number=1"
            async with connect(url, additional_headers=bearer(world.token)) as second:
                hello = await recv(second)
                assert hello["event"] == "hello" and hello["data"]["connection_id"] != cid
            await post_in_thread(world.emu.post_as, world.alice["id"], world.dm["id"], "still live")
            assert (await recv_event(first, "posted"))["seq"] == 1

    asyncio.run(main())


def test_group_message_mentions_every_member_but_the_poster(world: World) -> None:
    carol = world.emu.add_user("carol")
    alice_token = world.emu.create_token(world.alice["id"])
    gm = world.emu.group_channel([world.bot["id"], world.alice["id"], carol["id"]])

    async def main() -> None:
        async with (
            connect(world.ws_url, additional_headers=bearer(world.token)) as bot_ws,
            connect(world.ws_url, additional_headers=bearer(alice_token)) as alice_ws,
        ):
            await recv(bot_ws)
            await recv(alice_ws)
            await post_in_thread(world.emu.post_as, world.alice["id"], gm["id"], "lunch, carol?")
            bot_evt = await recv_event(bot_ws, "posted")
            alice_evt = await recv_event(alice_ws, "posted")
            # GMMention: the bot counts as mentioned though the text does not name it.
            assert json.loads(bot_evt["data"]["mentions"]) == [world.bot["id"]]
            assert "mentions" not in alice_evt["data"]
            assert bot_evt["data"]["channel_type"] == "G"
            assert bot_evt["data"]["channel_display_name"] == "alice, carol, helpbot"  # the sender included
            world.emu.variants.mentions = "all"
            await post_in_thread(world.emu.post_as, world.alice["id"], gm["id"], "and you, bot?")
            everyone = await recv_event(bot_ws, "posted")
            assert sorted(json.loads(everyone["data"]["mentions"])) == sorted([world.bot["id"], carol["id"]])

    asyncio.run(main())
