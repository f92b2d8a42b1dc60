#!/usr/bin/env python3
"""Benchmark: customer messages through the real bot (a subprocess) into the Deskie emulator.

Prints the throughput (messages relayed per second, end to end), the latency of a single DM to its
case, the agent-answer latency, and the bot's peak resident memory (VmHWM). Loopback only.

    python scripts/bench.py --customers 50 --messages 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deskie_mm_bot.sandbox.deskie import DeskieEmulator  # noqa: E402
from deskie_mm_bot.sandbox.mattermost import MattermostEmulator  # noqa: E402
from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, seed_world  # noqa: E402
from tests.delivery import add_customers, all_delivered, burst  # noqa: E402
from tests.harness import BotProcess, bot_posts, wait_for  # noqa: E402


def until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """A tight wait (2 ms), so the latency figures are the bot's, not the poll's."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step timed out")
        time.sleep(0.002)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=50)
    ap.add_argument("--messages", type=int, default=20, help="per customer")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, MattermostEmulator() as mm, \
            DeskieEmulator(rate_limit_per_minute=100_000) as dk:
        world = seed_world(mm, dk)
        bot = BotProcess(world.write_config(Path(tmp), poll_interval="30s"), world)
        bot.start()
        assert bot.proc is not None

        # Latency of one DM, one answer (a quiet system).
        lat_in, lat_out = [], []
        for i in range(10):
            t0 = time.monotonic()
            mm.post_as(world.jane["id"], world.jane_dm["id"], f"latency probe {i}")
            until(lambda i=i: any(f"latency probe {i}" in m["content"]
                                  for c in dk.cases(CHANNEL_CODE) for m in dk.messages(c["case_id"])))
            lat_in.append(time.monotonic() - t0)
            case_id = dk.cases(CHANNEL_CODE)[0]["case_id"]
            t0 = time.monotonic()
            dk.agent_reply(case_id, content=f"answer {i}")
            until(lambda i=i: len(bot_posts(world, world.jane_dm["id"])) > i)
            lat_out.append(time.monotonic() - t0)

        customers = add_customers(world, args.customers)
        total = args.customers * args.messages
        t0 = time.monotonic()
        burst(world, customers, args.messages, gap=0)
        posted = time.monotonic() - t0
        wait_for(lambda: all_delivered(world, customers), 600, "all delivered")
        elapsed = time.monotonic() - t0
        rss = peak_rss_mib(bot.proc.pid)
        writes = dk.writes()
        bot.stop()
    print(f"customer -> case latency: median {statistics.median(lat_in) * 1000:.0f} ms, "
          f"max {max(lat_in) * 1000:.0f} ms (10 DMs)")
    print(f"agent answer -> DM latency: median {statistics.median(lat_out) * 1000:.0f} ms, "
          f"max {max(lat_out) * 1000:.0f} ms (10 answers)")
    print(f"burst: {total} messages from {args.customers} customers posted in {posted:.1f} s, "
          f"all in Deskie after {elapsed:.1f} s = {total / elapsed:.0f} msg/s, {writes} Deskie writes")
    print(f"bot peak RSS: {rss:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
