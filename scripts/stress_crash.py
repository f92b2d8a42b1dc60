#!/usr/bin/env python3
"""Crash stress runner: kill -9 the bot at random moments during a burst, restart, and count.

Each trial: fresh emulators; 5 customers post 10 numbered messages each (interleaved); the bot (a
subprocess) is killed with SIGKILL at a random moment, sometimes twice; it is restarted; when
everything has arrived, Deskie is read back and every message is checked: lost, doubled, out of order.

    python scripts/stress_crash.py --trials 20
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deskie_mm_bot.sandbox.deskie import DeskieEmulator  # noqa: E402
from deskie_mm_bot.sandbox.mattermost import MattermostEmulator  # noqa: E402
from deskie_mm_bot.sandbox_runner import seed_world  # noqa: E402
from tests.delivery import add_customers, all_delivered, burst_in_background, verdict  # noqa: E402
from tests.harness import BotProcess, wait_for  # noqa: E402


def trial(seed: int, workdir: Path) -> tuple[int, int, int, int, float]:
    rng = random.Random(seed)
    with MattermostEmulator() as mm, DeskieEmulator() as dk:
        world = seed_world(mm, dk)
        customers = add_customers(world, 5)
        bot = BotProcess(world.write_config(workdir / f"t{seed}", poll_interval="1s"), world)
        bot.start()
        started = time.monotonic()
        sender = burst_in_background(world, customers, 10, gap=0.03, rng=rng)
        kills = rng.choice([1, 1, 2])
        for _ in range(kills):
            time.sleep(rng.uniform(0.02, 0.8))
            bot.kill()
            bot.start()
        sender.join(60)
        # A trial that never completes is counted by the verdict below, not raised.
        with contextlib.suppress(AssertionError):
            wait_for(lambda: all_delivered(world, customers), 90, "delivery")
        time.sleep(1.0)
        v = verdict(world, customers)
        bot.stop()
        return kills, len(v.lost), len(v.doubled), len(v.out_of_order), time.monotonic() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    totals = [0, 0, 0, 0]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.trials):
            kills, lost, doubled, disorder, secs = trial(args.seed + i, Path(tmp))
            totals = [totals[0] + kills, totals[1] + lost, totals[2] + doubled, totals[3] + disorder]
            print(f"trial {i + 1:3d}: kills={kills} lost={lost} doubled={doubled} "
                  f"out_of_order_chats={disorder} ({secs:.1f}s)", flush=True)
    print(f"summary: trials={args.trials} messages={args.trials * 50} kills={totals[0]} "
          f"lost={totals[1]} doubled={totals[2]} out_of_order_chats={totals[3]} seed={args.seed}")
    return 0 if totals[1:] == [0, 0, 0] else 1


if __name__ == "__main__":
    sys.exit(main())
