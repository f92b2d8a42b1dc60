"""`deskie-mm-bot sandbox`: both emulators on loopback, seeded, and the real bot wired to them.

The emulators (in `sandbox/`) know nothing of the bot; this module is the only glue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .sandbox.console import ConsoleServer
from .sandbox.deskie import DeskieEmulator
from .sandbox.mattermost import MattermostEmulator

WEBHOOK_SECRET = "sandbox-webhook-secret-0123456789"
DESKIE_KEY = "sandbox-api-key"
STAFF_EMAIL = "bot-agent@sandbox.local"
CHANNEL_CODE = "cch12"
SANDBOX_RPM = 50
CONSOLE_PORT = 8765


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    """A seeded Mattermost workspace and Deskie account, and the bot's place in them."""

    mm: MattermostEmulator
    dk: DeskieEmulator
    team: dict[str, Any]
    bot: dict[str, Any]
    bot_token: str
    jane: dict[str, Any]
    bob: dict[str, Any]
    jane_dm: dict[str, Any]
    support: dict[str, Any]
    group: dict[str, Any]
    staff: dict[str, Any]
    webhook_port: int

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/deskie/webhook/{WEBHOOK_SECRET}"

    def config(self, state_path: str, **chats: Any) -> dict[str, Any]:
        return {
            "mattermost": {"url": self.mm.url, "bot_token": self.bot_token, "team": ""},
            "deskie": {
                "url": self.dk.url,
                "staff_email": STAFF_EMAIL,
                "api_key": DESKIE_KEY,
                "channel": CHANNEL_CODE,
                "default_group": self.group["group_title"],
            },
            "webhook": {"listen": f"127.0.0.1:{self.webhook_port}", "secret": WEBHOOK_SECRET},
            "chats": {"mention_only": True, "reply_mode": "group_chat", "idle_timeout": "10m",
                      "poll_interval": "30s", **chats},
            "state": {"path": state_path},
            "log": {"level": "info", "format": "text"},
        }

    def write_config(self, folder: str | Path, **chats: Any) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "bot_config.yaml"
        path.write_text(yaml.safe_dump(self.config(str(folder / "state.sqlite3"), **chats), sort_keys=False))
        return path


def seed_team(mm: MattermostEmulator, team_name: str = "acme") -> tuple[Any, ...]:
    """A workspace's cast on `mm`: (team, bot, bot token, Jane, Bob, Jane's DM with the bot, ~support)."""
    team = mm.add_team(team_name, team_name.title())
    bot, token = mm.add_bot("helpbot", "Help Bot")
    jane = mm.add_user("jane", "Jane", "Doe")
    bob = mm.add_user("bob", "Bob", "Stone")
    for u in (bot, jane, bob):
        mm.add_team_member(team["id"], u["id"])
    support = mm.add_channel(team["id"], "support", "Support", "O")
    for u in (bot, jane, bob):
        mm.add_channel_member(support["id"], u["id"])
    jane_dm = mm.direct_channel(bot["id"], jane["id"])
    return team, bot, token, jane, bob, jane_dm, support


def seed_world(mm: MattermostEmulator, dk: DeskieEmulator, webhook_port: int | None = None) -> World:
    port = webhook_port or free_port()
    team, bot, token, jane, bob, jane_dm, support = seed_team(mm)
    staff = dk.add_staff(STAFF_EMAIL, "Bot Agent", api_key=DESKIE_KEY)
    dk.add_staff("anna@sandbox.local", "Anna Agent")
    group = dk.add_group("Support")
    world = World(mm, dk, team, bot, token, jane, bob, jane_dm, support, group, staff, port)
    dk.add_custom_channel(CHANNEL_CODE, "Mattermost", webhook_url=world.webhook_url, channel_type="sync")
    return world


def _wait(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("the sandbox did not get there in time")


def _demo(world: World, reply_mode: str, say: Any) -> None:
    t0 = time.monotonic()

    def stamp() -> str:
        return f"[{time.monotonic() - t0:6.2f}s]"

    mm, dk = world.mm, world.dk
    say(f"{stamp()} @jane -> @helpbot (DM): Hi! My printer is on fire. Literally.")
    first = mm.post_as(world.jane["id"], world.jane_dm["id"], "Hi! My printer is on fire. Literally.")
    case = _wait(lambda: next(iter(dk.cases(CHANNEL_CODE)), None))
    say(f"{stamp()} Deskie: case {case['case_number']} opened in group '{world.group['group_title']}' "
        f"for '{dk.user(case['user_id'])['user_full_name']}', subject '{case['subject']}'")
    say(f"{stamp()} agent Anna answers in Deskie (HTML with a link and a list)")
    dk.agent_reply(case["case_id"], html="<p>Please step away from the printer and:</p>"
                   "<ul><li>unplug it</li><li>call <b>facilities</b></li></ul>"
                   '<p>See <a href="https://example.com/fire">our fire guide</a>.</p>')
    answer = _wait(lambda: [p for p in mm.posts_in(world.jane_dm["id"]) if p["user_id"] == world.bot["id"]])
    where = "in the thread of her post" if answer[-1]["root_id"] == first["id"] else "at the top level"
    say(f"{stamp()} @helpbot -> @jane (DM, {where}):")
    for line in answer[-1]["message"].splitlines():
        say(f"          | {line}")
    # In thread mode a chat is a thread: Jane answers in it (a new top-level post would be a new chat).
    root = first["id"] if reply_mode == "thread" else ""
    mm.post_as(world.jane["id"], world.jane_dm["id"], "Thanks, unplugged it. Fire is out.", root_id=root)
    say(f"{stamp()} @jane -> @helpbot (DM{', in the thread' if root else ''}): Thanks, unplugged it. Fire is out.")
    _wait(lambda: len(dk.messages(case["case_id"])) >= 3)
    msgs = dk.messages(case["case_id"])
    say(f"{stamp()} Deskie: case {case['case_number']} now has {len(msgs)} messages:")
    for m in msgs:
        who = "agent   " if m["staff_id"] else "customer"
        say(f"          {who} {(m['content'] or m['content_html'])[:70]!r}")
    support = world.support["id"]
    say(f"{stamp()} @bob in ~support: @helpbot the projector in room 4 is dead")
    question = mm.post_as(world.bob["id"], support, "@helpbot the projector in room 4 is dead")
    chan_case = _wait(lambda: next((c for c in dk.cases(CHANNEL_CODE) if c["case_id"] != case["case_id"]), None))
    say(f"{stamp()} Deskie: case {chan_case['case_number']} for "
        f"'{dk.user(chan_case['user_id'])['user_full_name']}': {dk.messages(chan_case['case_id'])[0]['content']!r}")
    dk.agent_reply(chan_case["case_id"], content="A technician is on the way.")
    reply = _wait(lambda: [p for p in mm.posts_in(support) if p["user_id"] == world.bot["id"]])[-1]
    where = "in the thread of Bob's post" if reply["root_id"] == question["id"] else "at the top of ~support"
    say(f"{stamp()} @helpbot -> ~support ({where}): {reply['message']}")
    say(f"{stamp()} demo done (reply mode {reply_mode})")


def console_config(world: World, reply_mode: str, mention_only: bool) -> dict[str, Any]:
    """What the console page needs to know of the bot: who it is, how it behaves, and how it names
    Deskie users (so an agent's outgoing chat reaches the member or channel it was meant for)."""
    return {
        "bot": {"user_id": world.bot["id"], "username": world.bot["username"], "reply_mode": reply_mode,
                "mention_only": mention_only},
        "deskie": {"channel": CHANNEL_CODE, "bot_staff_email": STAFF_EMAIL, "plan_rpm": SANDBOX_RPM},
        "outgoing": {"member": "u:{id}", "channel": "c:{id}"},
    }


def start_console(world: World, port: int | None, reply_mode: str, mention_only: bool) -> ConsoleServer:
    """The console on `port`; without one, on CONSOLE_PORT or, when that is taken, any free port."""
    upstreams = {"mm": world.mm.url, "dk": world.dk.url, "bot": f"http://127.0.0.1:{world.webhook_port}"}
    config = console_config(world, reply_mode, mention_only)
    try:
        return ConsoleServer(upstreams, config, port=CONSOLE_PORT if port is None else port).start()
    except OSError:
        if port is not None:
            raise
        return ConsoleServer(upstreams, config, port=0).start()


def _can_open_browser() -> bool:
    # Without a display, webbrowser would pick a text browser or print a launcher's errors.
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_sandbox(*, demo: bool, reply_mode: str, mention_only: bool, workdir: str | None,
                port: int | None = None, open_browser: bool = False) -> int:
    from .app import BotApp
    from .config import load_config
    from .logs import setup_logging

    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="deskie-mm-sandbox-"))
    with contextlib.ExitStack() as stack:
        mm = stack.enter_context(MattermostEmulator())
        dk = stack.enter_context(DeskieEmulator(rate_limit_per_minute=SANDBOX_RPM))
        world = seed_world(mm, dk)
        if not demo:
            try:
                console = stack.enter_context(start_console(world, port, reply_mode, mention_only))
            except OSError as e:
                print(f"sandbox: cannot serve the console on port {port}: {e.strerror or e}", file=sys.stderr)
                return 1
            print(f"Console: {console.url}   (open it in a browser: you play the customers and the agents)",
                  flush=True)
            if open_browser and _can_open_browser():
                threading.Thread(target=webbrowser.open, args=(console.url,), daemon=True).start()
        path = world.write_config(folder, reply_mode=reply_mode, mention_only=mention_only,
                                  poll_interval="5s")
        settings = load_config(path, env=os.environ)
        setup_logging("warning" if demo else "info", "text", settings.secrets())
        print(f"Mattermost emulator: {mm.url}   (control: {mm.url}/_emu/...)")
        print(f"Deskie emulator:     {dk.url}   (control: {dk.url}/_emu/...)")
        print(f"bot config:          {path}")
        print(f"reply mode:          {reply_mode}; mention only in channels: {mention_only}")
        if not demo:
            print("\nOr from another terminal:")
            print(f"  curl -s -XPOST {mm.url}/_emu/post_as -d '{{\"user_id\":\"{world.jane['id']}\","
                  f"\"channel_id\":\"{world.jane_dm['id']}\",\"message\":\"Hello, I need help\"}}'")
            print(f"  curl -s {dk.url}/_emu/cases")
            print(f"  curl -s -XPOST {dk.url}/_emu/agent_reply -d '{{\"case_id\":2000,\"content\":\"Hi, how can I help?\"}}'"
                  "   (2000: the first case)")
            print(f"  curl -s {mm.url}/_emu/posts/{world.jane_dm['id']}")
            print(f"  channel ~support: {world.support['id']} (post as bob {world.bob['id']} with '@helpbot ...')")
            print("Ctrl-C stops everything.\n", flush=True)

        async def main() -> int:
            app = BotApp(settings)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, app.request_stop)
            task = asyncio.create_task(app.run())
            if demo:
                await asyncio.wait_for(app.started.wait(), 20)
                while mm.connection_count() == 0 and not task.done():
                    await asyncio.sleep(0.05)
                failure: list[BaseException] = []

                def script() -> None:
                    try:
                        _demo(world, reply_mode, print)
                    except BaseException as e:  # reported below, the bot still stops cleanly
                        failure.append(e)
                    finally:
                        loop.call_soon_threadsafe(app.request_stop)

                threading.Thread(target=script, daemon=True).start()
                code = await task
                if failure:
                    print(f"demo failed: {failure[0]!r}")
                    return 1
                return code
            return await task

        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(main())
        return 0
