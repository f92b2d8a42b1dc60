"""The websocket client against a tiny loopback server that resumes like Mattermost (§1.8).

A REST hiccup while an event is handled (or while the catch-up after a `hello` runs) must mean
"reconnect and get it again", never the end of the websocket loop, and never a resume that skips
the catch-up.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from websockets.asyncio.server import serve

from deskie_mm_bot.mattermost.rest import MattermostUnavailable
from deskie_mm_bot.mattermost.websocket import MattermostWebsocket
from deskie_mm_bot.retry import Backoff

pytestmark = pytest.mark.timeout(20)


class ResumingServer:
    """Sends `hello` on a fresh connection, replays from `sequence_number` on a resume of a known id."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.known: set[str] = set()
        self.connects: list[dict[str, list[str]]] = []

    async def handler(self, ws: Any) -> None:
        q = parse_qs(urlparse(ws.request.path).query)
        self.connects.append(q)
        cid = (q.get("connection_id") or [""])[0]
        if cid in self.known:
            start = int(q["sequence_number"][0])
        else:
            cid = f"conn{len(self.known) + 1}"
            self.known.add(cid)
            await ws.send(json.dumps({"event": "hello", "seq": 0, "data": {"connection_id": cid}}))
            start = 1
        for seq in range(start, len(self.events) + 1):
            await ws.send(json.dumps({**self.events[seq - 1], "seq": seq}))
        await ws.wait_closed()


async def _run_client(server: ResumingServer, on_event: Any, on_resync: Any, done: Any) -> MattermostWebsocket:
    async with serve(server.handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        client = MattermostWebsocket(
            f"http://127.0.0.1:{port}", "tok", on_event, on_resync,
            ping_interval=60, ping_timeout=10, backoff=Backoff(base=0.01, cap=0.02),
        )
        task = asyncio.create_task(client.run())
        for _ in range(400):
            if done() or task.done():
                break
            await asyncio.sleep(0.01)
        await client.stop()
        await asyncio.wait_for(task, 5)  # re-raises if the loop died
        return client


def _posted(n: int) -> dict[str, Any]:
    return {"event": "posted", "data": {"post": json.dumps({"id": f"p{n}"})}}


def test_a_rest_hiccup_while_handling_an_event_reconnects_and_gets_the_event_again() -> None:
    server = ResumingServer([_posted(1), _posted(2)])
    handled: list[str] = []
    failures = [1]

    async def on_event(ev: dict[str, Any]) -> None:
        post = json.loads(ev["data"]["post"])["id"]
        if post == "p1" and failures:
            failures.pop()
            raise MattermostUnavailable("Mattermost answered HTTP 502")
        handled.append(post)

    async def on_resync() -> None:
        return None

    asyncio.run(_run_client(server, on_event, on_resync, lambda: len(handled) >= 2))
    assert handled == ["p1", "p2"]
    # The second connection resumed where the unfinished event was.
    assert server.connects[1]["sequence_number"] == ["1"]


def test_a_catch_up_that_fails_is_done_again_before_any_event_is_taken() -> None:
    server = ResumingServer([_posted(1)])
    handled: list[str] = []
    resyncs: list[str] = []

    async def on_event(ev: dict[str, Any]) -> None:
        handled.append(json.loads(ev["data"]["post"])["id"])

    async def on_resync() -> None:
        if not resyncs:
            resyncs.append("failed")
            raise MattermostUnavailable("Mattermost unreachable: ConnectError")
        resyncs.append("ok")

    asyncio.run(_run_client(server, on_event, on_resync, lambda: bool(handled)))
    # Resuming the new connection would skip the catch-up that never finished: posts made while
    # the bot was away would be lost for good.
    assert resyncs == ["failed", "ok"]
    assert handled == ["p1"]
