"""`stop` drains: what is queued is delivered while both services answer (within the 10 s deadline),
a failing service is not waited for, and what is left stays for the next start, which delivers it once.
The bot runs as a subprocess and is stopped with the CLI, as an admin would."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from deskie_mm_bot.sandbox_runner import World
from tests.support.delivery import add_customers
from tests.support.harness import NETGUARD, REPO, BotProcess, cases_of, wait_for


def cli_stop(bot: BotProcess) -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(NETGUARD), str(REPO)]))
    assert bot.proc is not None
    # The bot is this process's child: reap it as it exits, or `stop` would see a zombie still there.
    reaper = threading.Thread(target=bot.proc.wait, daemon=True)
    reaper.start()
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "deskie_mm_bot", "stop", "-c", str(bot.config_path)],
                       capture_output=True, text=True, timeout=60, env=env, cwd=str(REPO))
    return r, time.monotonic() - t0


def recorded(bot: BotProcess) -> int:
    """Posts the bot has taken into its outbox (read from its store, as `status` does)."""
    path = bot.config_path.parent / "state.sqlite3"
    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def delivered(world: World) -> list[str]:
    return sorted(m["content"] for c in cases_of(world) for m in world.dk.messages(c["case_id"]) if not m["staff_id"])


def test_stop_delivers_what_is_queued_behind_a_slow_deskie(world: World, make_bot: Callable[..., BotProcess]) -> None:
    bot = make_bot(poll_interval="1h").start()
    customers = add_customers(world, 3)
    world.dk.slow_next_write(3, 1.5)  # each write is applied, and answered 1.5 s later
    for c in customers:
        world.mm.post_as(c.user["id"], c.dm["id"], f"question from {c.name}")
    wait_for(lambda: recorded(bot) == 3, what="three posts in the outbox")
    assert len(cases_of(world)) < 3  # still queued when the stop begins
    r, took = cli_stop(bot)
    assert r.returncode == 0, r.stderr
    assert bot.wait_exit(5) == 0
    assert delivered(world) == ["question from u0", "question from u1", "question from u2"]
    assert "waiting for the next start: 0 to Deskie, 0 to Mattermost" in r.stdout
    assert took < 12


def test_stop_with_deskie_down_leaves_the_queue_for_the_next_start(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot(poll_interval="1h").start()
    customers = add_customers(world, 2)
    world.dk.outage(120, "5xx")
    for c in customers:
        world.mm.post_as(c.user["id"], c.dm["id"], f"question from {c.name}")
    wait_for(lambda: recorded(bot) == 2, what="two posts in the outbox")
    r, took = cli_stop(bot)
    assert r.returncode == 0, r.stderr
    assert took < 12  # a failing Deskie is not waited for
    assert "waiting for the next start: 2 to Deskie, 0 to Mattermost" in r.stdout
    assert cases_of(world) == []
    world.dk.clear_faults()
    bot.start()
    wait_for(lambda: len(delivered(world)) == 2, 20, "both after the restart")
    time.sleep(1.5)
    assert delivered(world) == ["question from u0", "question from u1"]  # once each


def test_stop_with_deskie_hanging_returns_within_the_deadline(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot(poll_interval="1h").start()
    (c,) = add_customers(world, 1)
    world.dk.outage(120, "hang")
    world.mm.post_as(c.user["id"], c.dm["id"], "anybody?")
    wait_for(lambda: recorded(bot) == 1, what="the post in the outbox")
    time.sleep(0.5)  # its write is on the wire, hanging
    r, took = cli_stop(bot)
    assert r.returncode == 0, r.stderr
    assert took < 14
    assert "waiting for the next start: 1 to Deskie" in r.stdout
    world.dk.clear_faults()
    bot.start()
    wait_for(lambda: delivered(world) == ["anybody?"], 30, "the message after the restart")
    time.sleep(1.5)
    assert delivered(world) == ["anybody?"]


def test_stop_delivers_answers_queued_behind_a_slow_mattermost(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot(poll_interval="1h").start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello")
    case = wait_for(lambda: next(iter(cases_of(world)), None), what="the case")
    # The first answer's post hangs for 2 s and fails; the chat's next answers wait behind it.
    world.mm.hang_rest_next(1, 2.0, match="POST /api/v4/posts")
    for i in range(3):
        world.dk.agent_reply(case["case_id"], content=f"answer {i}")
    time.sleep(0.5)
    r, took = cli_stop(bot)
    assert r.returncode == 0, r.stderr
    posts = [p["message"] for p in world.mm.posts_in(world.jane_dm["id"]) if p["user_id"] == world.bot["id"]]
    assert posts == ["answer 0", "answer 1", "answer 2"]  # in order, once each, none left behind
    assert "waiting for the next start: 0 to Deskie, 0 to Mattermost" in r.stdout
    assert took < 12
