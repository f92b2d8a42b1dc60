#!/usr/bin/env python3
"""Crash stress runner: kill -9 the bot at random moments during a burst, restart, and count.

Each trial: fresh emulators; 5 customers post 10 numbered messages each (interleaved) while agents
answer; the bot (a subprocess) is killed with SIGKILL at a random moment, sometimes twice, half the
time while a write that Deskie applied is still unanswered; it is restarted; when everything has
arrived, Deskie and the DMs are read back: customer messages and agents' answers lost, doubled, or
out of order.

    python scripts/stress_crash.py --trials 20
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchkit import (  # noqa: E402
    BotProcess,
    Customer,
    add_customers,
    all_delivered,
    burst_in_background,
    until,
    verdict,
)
from tqdm import tqdm  # noqa: E402

from deskie_mm_bot.sandbox.deskie import DeskieEmulator  # noqa: E402
from deskie_mm_bot.sandbox.mattermost import MattermostEmulator  # noqa: E402
from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, World, seed_world  # noqa: E402


def trial(seed: int, workdir: Path) -> tuple[int, int, int, int, float]:
    rng = random.Random(seed)
    with MattermostEmulator() as mm, DeskieEmulator() as dk:
        world = seed_world(mm, dk)
        customers = add_customers(world, 5)
        bot = BotProcess(world.write_config(workdir / f"t{seed}", poll_interval="1s"), world)
        bot.start()
        started = time.monotonic()
        sender = burst_in_background(world, customers, 10, gap=0.03, rng=rng)
        answers = threading.Thread(target=agents_answer, args=(dk, rng, 15), daemon=True)
        answers.start()
        kills = rng.choice([1, 1, 2])
        for _ in range(kills):
            if rng.random() < 0.5:
                # The next write is applied but answered late: a kill now hits the ambiguous window.
                dk.slow_next_write(1, seconds=rng.uniform(0.2, 2.0))
            time.sleep(rng.uniform(0.02, 0.8))
            bot.kill()
            bot.start()
        sender.join(60)
        answers.join(60)
        # A trial that never completes is counted by the verdict below, not raised.
        with contextlib.suppress(TimeoutError):
            until(lambda: all_delivered(world, customers), 90, "delivery", interval=0.05)
        expected = {m["message_id"] for c in dk.cases(CHANNEL_CODE) for m in dk.messages(c["case_id"])
                    if m["staff_id"] and not m["note"]}
        with contextlib.suppress(TimeoutError):
            until(lambda: expected <= set(posted_answer_ids_list(world, customers)), 60, "answers posted",
                  interval=0.05)
        time.sleep(1.0)
        v = verdict(world, customers)
        got = posted_answer_ids_list(world, customers)
        lost_answers = len(expected - set(got))
        doubled_answers = len(got) - len(set(got))
        if not v.ok or lost_answers or doubled_answers:
            for case in dk.cases(CHANNEL_CODE):
                tqdm.write(f"  case {case['case_id']} user {dk.user(case['user_id']).get('user_custom_id')}: "
                      + " | ".join(f"{m['message_id']}:{m['content'][:60]!r}" for m in dk.messages(case["case_id"])
                                   if not m["staff_id"]), flush=True)
            tqdm.write(f"  details: {v}; answers lost={sorted(expected - set(got))} "
                       f"doubled={sorted({x for x in got if got.count(x) > 1})}; log: {bot.log_path}")
        bot.stop()
        return (kills, len(v.lost) + lost_answers, len(v.doubled) + doubled_answers, len(v.out_of_order),
                time.monotonic() - started)


def agents_answer(dk: DeskieEmulator, rng: random.Random, n: int) -> None:
    """Agents answer on whatever cases exist while customers are still writing."""
    for i in range(n):
        time.sleep(rng.uniform(0.02, 0.1))
        cases = dk.cases(CHANNEL_CODE)
        if cases:
            dk.agent_reply(rng.choice(cases)["case_id"], content=f"agent answer {i}")


def posted_answer_ids_list(world: World, customers: list[Customer]) -> list[int]:
    """Deskie message ids of every answer the bot posted, once per post (so doubles show)."""
    ids = []
    for c in customers:
        for p in world.mm.posts_in(c.dm["id"]):
            mid = (p.get("props") or {}).get("deskie_message_id")
            if p["user_id"] == world.bot["id"] and mid and int((p.get("props") or {}).get("deskie_part", 0)) == 0:
                ids.append(int(mid))
    return ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    totals = [0, 0, 0, 0]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, tqdm(total=args.trials, desc="crash trials", unit="trial") as bar:
        for i in range(args.trials):
            kills, lost, doubled, disorder, secs = trial(args.seed + i, Path(tmp))
            totals = [totals[0] + kills, totals[1] + lost, totals[2] + doubled, totals[3] + disorder]
            tqdm.write(f"trial {i + 1:3d}: kills={kills} lost={lost} doubled={doubled} "
                       f"out_of_order_chats={disorder} ({secs:.1f}s)")
            bar.set_postfix(kills=totals[0], lost=totals[1], doubled=totals[2], disorder=totals[3])
            bar.update(1)
    verdict_text = "OK" if totals[1:] == [0, 0, 0] else "FAILED"
    print(f"summary: {verdict_text}: trials={args.trials} messages={args.trials * 50} kills={totals[0]} "
          f"lost={totals[1]} doubled={totals[2]} out_of_order_chats={totals[3]} seed={args.seed} "
          f"({time.monotonic() - started:.0f} s)")
    return 0 if totals[1:] == [0, 0, 0] else 1


if __name__ == "__main__":
    sys.exit(main())
