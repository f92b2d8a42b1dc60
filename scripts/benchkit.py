"""What scripts/bench.py and scripts/stress_crash.py share: the real bot (a subprocess, or in this
process on its own loop), customers who post numbered messages and a checker that reads Deskie back,
chats seeded in bulk, and a relay with no logic of its own (the emulators' direct round trip).

Only the installed package is needed (no test helpers): run from a checkout after `pip install .`.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import requests
import yaml
from aiohttp import web

import deskie_mm_bot
from deskie_mm_bot.app import CATCHUP_FLOOR, BotApp
from deskie_mm_bot.config import load_config
from deskie_mm_bot.sandbox.mattermost import MattermostEmulator
from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, DESKIE_KEY, STAFF_EMAIL, World, free_port, seed_team
from deskie_mm_bot.store import Store

T = TypeVar("T")
# The checkout the package was imported from: the bot subprocess runs that very code.
PACKAGE_ROOT = Path(deskie_mm_bot.__file__).resolve().parent.parent
TOKEN = re.compile(r"\b(u\d+-m\d+)\b")


def until(predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition", interval: float = 0.005) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def proc_status_mib(pid: int, key: str) -> float:
    """A memory figure of /proc/PID/status (VmRSS now, VmHWM the peak), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---- the bot -------------------------------------------------------------------------------------
class BotProcess:
    """`python -m deskie_mm_bot run` in a subprocess, as systemd or a container would run it."""

    def __init__(self, config_path: Path, world: World, name: str = "bot") -> None:
        self.config_path = config_path
        self.world = world
        self.log_path = config_path.parent / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.started_at = 0.0

    def start(self, wait: bool = True) -> BotProcess:
        self.runs += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== run {self.runs} =====\n".encode())
            log.flush()
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "deskie_mm_bot", "run", "-c", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.environment(),
                cwd=self.cwd,
            )
        if wait:
            self.wait_healthy()
        return self

    cwd: str | None = None  # where the bot runs (None: here)

    def environment(self) -> dict[str, str]:
        """The bot's environment: this one without proxies, the checkout first on its path."""
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.world.webhook_port}/healthz"
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def ok() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"bot exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            return self.healthy()

        until(ok, timeout, "the bot to become healthy", interval=0.02)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class InProcessBot:
    """The real bot on its own thread and event loop here: lets the benchmark run one reconciliation
    poll at a time. Everything still goes over real sockets to the emulators."""

    def __init__(self, config_path: Path) -> None:
        self.settings = load_config(config_path, env={})
        self.app: BotApp | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> InProcessBot:
        def main() -> None:
            async def go() -> int:
                self.app = BotApp(self.settings)
                self.loop = asyncio.get_running_loop()
                return await self.app.run()

            asyncio.run(go())

        self._thread = threading.Thread(target=main, name="bot", daemon=True)
        self._thread.start()
        until(lambda: self.app is not None and (self.app.started.is_set() or self.app.stopping.is_set()),
              60, "the bot to start")
        assert self.app is not None and not self.app.stopping.is_set(), self.app.exit_message
        until(lambda: self.app is not None and self.app.ws is not None and self.app.ws.connected.is_set(),
              60, "the websocket")
        return self

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 120.0) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.app is not None and self.loop is not None and self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.app.request_stop)
            self._thread.join(30)


# ---- several workspaces -------------------------------------------------------------------------
def seed_workspace(mm: MattermostEmulator, like: World, team_name: str) -> World:
    """Another workspace on `mm`, with seed_world's cast (a bot, Jane, Bob, ~support), for `like`'s
    Deskie account: its emulator, group, staff and webhook port are shared."""
    team, bot, token, jane, bob, jane_dm, support = seed_team(mm, team_name)
    return World(mm, like.dk, team, bot, token, jane, bob, jane_dm, support, like.group, like.staff,
                 like.webhook_port)


def workspaces_config(worlds: dict[str, World], state_path: str, *,
                      extra: dict[str, dict[str, Any]] | None = None, **chats: Any) -> dict[str, Any]:
    """The bot's config with `workspaces:`, one entry per world in order (the first world's Deskie,
    webhook and chats settings); `extra[name]`: further keys of that entry."""
    first = next(iter(worlds.values()))
    cfg = first.config(state_path, **chats)
    cfg.pop("mattermost")
    entries = [{"name": name, "url": w.mm.url, "bot_token": w.bot_token, "team": "", **(extra or {}).get(name, {})}
               for name, w in worlds.items()]
    return {"workspaces": entries, **cfg}


def write_workspaces_config(worlds: dict[str, World], folder: Path, **kw: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bot_config.yaml"
    path.write_text(yaml.safe_dump(workspaces_config(worlds, str(folder / "state.sqlite3"), **kw), sort_keys=False))
    return path


def workspace_websockets(world: World) -> dict[str, str]:
    """Each workspace's websocket state as the bot's /healthz reports it ({} while it does not answer)."""
    try:
        body = requests.get(f"http://127.0.0.1:{world.webhook_port}/healthz", timeout=3).json()
    except (requests.RequestException, ValueError):
        return {}
    return {name: w.get("websocket", "") for name, w in (body.get("workspaces") or {}).items()}


# ---- customers -----------------------------------------------------------------------------------
@dataclass
class Customer:
    name: str
    user: dict[str, Any]
    dm: dict[str, Any]
    sent: list[str] = field(default_factory=list)
    workspace: str = ""  # its workspaces[].name; "" in the single `mattermost:` form

    @property
    def custom_id(self) -> str:
        """Its Deskie user_custom_id: `u:<id>`, or `<workspace>:u:<id>` with several workspaces."""
        return f"{self.workspace}:u:{self.user['id']}" if self.workspace else f"u:{self.user['id']}"


def add_customers(world: World, n: int, prefix: str = "cust", *, workspace: str = "",
                  first: int = 0) -> list[Customer]:
    """n customers of `world` with a DM to the bot, named u<first>.. (give each workspace its own
    `first`, so that a token found in the other workspace's case is nobody's there)."""
    out = []
    for i in range(first, first + n):
        user = world.mm.add_user(f"{prefix}{i}", f"Customer{i}", "Test")
        world.mm.add_team_member(world.team["id"], user["id"])
        dm = world.mm.direct_channel(world.bot["id"], user["id"])
        out.append(Customer(f"u{i}", user, dm, workspace=workspace))
    return out


def burst(world: World, customers: list[Customer], per_customer: int, *, gap: float = 0.01,
          rng: random.Random | None = None, on_post: Callable[[], None] | None = None,
          stamps: dict[str, float] | None = None) -> None:
    """Interleaved posts from several customers, each one's own in order; each carries a token like u3-m07.
    `stamps`, when given, gets each token's post time (its create_at, in seconds)."""
    rng = rng or random.Random()
    order: list[tuple[Customer, int]] = []
    cursors = {c.name: 0 for c in customers}
    while len(order) < len(customers) * per_customer:
        c = rng.choice([c for c in customers if cursors[c.name] < per_customer])
        order.append((c, cursors[c.name]))
        cursors[c.name] += 1
    for c, i in order:
        token = f"{c.name}-m{i:02d}"
        post = world.mm.post_as(c.user["id"], c.dm["id"], f"question {token} please")
        c.sent.append(token)
        if stamps is not None:
            stamps[token] = post["create_at"] / 1000
        if on_post is not None:
            on_post()
        if gap:
            time.sleep(rng.uniform(0, gap))


def burst_in_background(world: World, customers: list[Customer], per_customer: int, **kw: Any) -> threading.Thread:
    t = threading.Thread(target=burst, args=(world, customers, per_customer), kwargs=kw, daemon=True)
    t.start()
    return t


@dataclass
class Verdict:
    lost: list[str]
    doubled: list[str]
    out_of_order: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.out_of_order)


def tokens_by_customer(world: World) -> dict[str, list[str]]:
    """Customer tokens as Deskie holds them, per user_custom_id: cases in order, messages in order."""
    out: dict[str, list[str]] = {}
    for case in world.dk.cases(CHANNEL_CODE):
        custom = str(world.dk.user(case["user_id"]).get("user_custom_id"))
        for m in world.dk.messages(case["case_id"]):
            if not m["staff_id"] and not m["note"]:
                out.setdefault(custom, []).extend(TOKEN.findall(m["content"] or ""))
    return out


def verdict(world: World, customers: list[Customer]) -> Verdict:
    lost: list[str] = []
    doubled: list[str] = []
    disorder: list[str] = []
    held = tokens_by_customer(world)
    for c in customers:
        got = held.get(c.custom_id, [])
        for t in c.sent:
            n = got.count(t)
            if n == 0:
                lost.append(t)
            elif n > 1:
                doubled.append(t)
        firsts = list(dict.fromkeys(got))
        if firsts != [t for t in c.sent if t in firsts]:
            disorder.append(c.name)
    return Verdict(lost, doubled, disorder)


def all_delivered(world: World, customers: list[Customer]) -> bool:
    held = tokens_by_customer(world)
    return all(set(c.sent) <= set(held.get(c.custom_id, [])) for c in customers)


# ---- chats seeded in bulk ------------------------------------------------------------------------
@dataclass
class Chat:
    user: dict[str, Any]
    dm: dict[str, Any]
    case: dict[str, Any]
    name: str


def seed_chats(world: World, state_path: Path, n: int, *, prefix: str = "known") -> list[Chat]:
    """n open chats the bot already knows, as if it had run for months: a customer, a DM with one old
    post, an open case (a minute old) in Deskie, and the bot's conversation and cursor for it.
    Made straight in the emulators' state (the same code their HTTP APIs run) and the bot's store."""
    mm, dk = world.mm, world.dk
    chats: list[Chat] = []
    dk.advance_clock(-60)
    try:
        for i in range(n):
            user = mm.add_user(f"{prefix}{i:05d}", f"Known{i}", "Customer")
            mm.add_team_member(world.team["id"], user["id"])
            dm = mm.direct_channel(world.bot["id"], user["id"])
            post = mm.post_as(user["id"], dm["id"], f"old question {i}")
            dm["last_post_at"] = post["create_at"]
            case = dk.state.create_case({"channel": CHANNEL_CODE, "user_custom_id": f"u:{user['id']}",
                                         "user_full_name": f"Known{i} Customer (@{user['username']})",
                                         "group_id": world.group["group_id"], "content": f"old question {i}"})
            chats.append(Chat(user, dm, case.to_api(dk.state.fmt), f"Known{i} Customer (@{user['username']})"))
    finally:
        dk.advance_clock(60)
    store = Store(state_path)
    try:
        # Seeding only: one fsync per row would make 10,000 chats take minutes.
        store._exec("PRAGMA synchronous=OFF")
        if store.get_cursor(CATCHUP_FLOOR) is None and chats:
            store.set_cursor(CATCHUP_FLOOR, str(int(chats[0].dm["last_post_at"]) - 60_000))
        for chat in chats:
            store.create_conversation(
                conv_key=f"ch:{chat.dm['id']}", channel_id=chat.dm["id"], reply_root_id="",
                user_custom_id=f"u:{chat.user['id']}", user_full_name=chat.name, case_id=chat.case["case_id"],
                case_number=chat.case["case_number"], deskie_user_id=chat.case["user_id"], last_message_id=0,
                case_updated_at=chat.case["updated_at"],
            )
            store.advance_cursor(f"mm.channel.{chat.dm['id']}", int(chat.dm["last_post_at"]))
    finally:
        store.close()
    return chats


# ---- a relay with no logic: what the emulators alone cost ----------------------------------------
class DirectRelay:
    """Customer post -> Deskie message and agent answer -> Mattermost post, each the least a relay must
    do (one websocket event in, one REST write out; one webhook in, one REST write out), on its own
    thread and loop. The bot's latency beside this one is the bot's own overhead."""

    def __init__(self, world: World, cases: dict[str, dict[str, Any]]) -> None:
        self.world = world
        self.cases = cases  # channel id -> its case
        self.channel_of = {int(c["case_id"]): ch for ch, c in cases.items()}
        self.port = free_port()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> DirectRelay:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="direct", daemon=True)
        self._thread.start()
        if not self._ready.wait(20):
            raise TimeoutError("the direct relay did not start")
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        w = self.world
        mm_auth = {"Authorization": f"Bearer {w.bot_token}"}
        async with aiohttp.ClientSession() as http:
            async def hook(request: web.Request) -> web.Response:
                form = await request.post()
                case_id = int(str(form.get("object[case_id]") or 0))
                channel = self.channel_of.get(case_id)
                if channel and form.get("object[staff_id]") not in (None, "", "0"):
                    body = {"channel_id": channel, "message": str(form.get("object[content]") or "")}
                    async with http.post(f"{w.mm.url}/api/v4/posts", json=body, headers=mm_auth) as r:
                        await r.read()
                return web.Response(text="ok")

            app = web.Application()
            app.router.add_post("/hook", hook)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            ws_url = w.mm.url.replace("http://", "ws://") + "/api/v4/websocket"
            deskie_auth = aiohttp.BasicAuth(STAFF_EMAIL, DESKIE_KEY)
            async with http.ws_connect(ws_url, headers=mm_auth) as ws:
                self._ready.set()
                reader = asyncio.ensure_future(self._read(ws, http, deskie_auth))
                await self._stop.wait()
                reader.cancel()
            await runner.cleanup()

    async def _read(self, ws: Any, http: aiohttp.ClientSession, auth: aiohttp.BasicAuth) -> None:
        import json

        async for msg in ws:
            event = json.loads(msg.data)
            if event.get("event") != "posted":
                continue
            post = json.loads(event["data"]["post"])
            case = self.cases.get(post["channel_id"])
            if case is None or post["user_id"] == self.world.bot["id"]:
                continue
            body = {"message": {"user_id": case["user_id"], "content": post["message"]}}
            async with http.post(f"{self.world.dk.url}/api/cases/{case['case_id']}/messages.json",
                                 json=body, auth=auth) as r:
                await r.read()
