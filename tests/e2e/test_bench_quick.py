"""`scripts/bench.py --quick` runs end to end, and its cost figures hold (timings are printed, never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.harness import NETGUARD, REPO


@pytest.mark.timeout(180)
def test_quick_benchmark_cost_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    # Only the installed package and the script's own helpers; the network guard for it and its bots.
    env["PYTHONPATH"] = str(NETGUARD)
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    r = json.loads(out.read_text())
    assert "reconcile requests/poll" in done.stdout and "restart catch-up" in done.stdout

    # Reconciliation: one list page and the 3 changed cases' messages (at most one more, a case of the
    # previous poll's newest second), the same whatever the number of open chats; 40 chats the bot
    # itself has just opened are not read back.
    rec = r["reconcile_requests_per_poll"]
    assert len(rec) >= 2
    assert all(4 <= v["changed_3"] <= 5 for v in rec.values()), rec
    assert all(v["after_40_new_chats"] <= 5 for v in rec.values()), rec

    # A burst on a 20 RPM plan: never refused, one chat's 30 messages in a few writes, nothing lost.
    one = r["burst_20rpm"]
    many = next(v for k, v in r.items() if k.startswith("burst_20rpm_") and k.endswith("chats"))
    for b in (one, many):
        assert b["count_429"] == 0 and b["lost"] == b["doubled"] == b["out_of_order"] == 0, b
    assert one["messages"] == 30 and one["writes"] <= 5, one
    assert many["writes"] == many["chats"], many  # one case each

    # Two workspaces on the one 20 RPM plan: the second's few chats are not queued behind the first's
    # burst (they wait for the next window at most), nothing is refused, lost or doubled.
    ws = r["workspaces_20rpm"]["2"]
    assert ws["count_429"] == 0 and ws["lost"] == ws["doubled"] == ws["out_of_order"] == 0, ws
    assert ws["messages"] == 63 and set(ws["by_workspace"]) == {"acme", "globex"}, ws
    assert ws["late_max_wait_s"] <= ws["late_wait_bound_s"] < ws["late_fifo_wait_s"], ws

    # A restart reads the listing and the 3 changed chats, the same at every size.
    restart = r["restart_catchup"]
    assert len(restart) >= 2
    for v in restart.values():
        assert v["posts_calls"] == v["changed"] == 3 and v["changed_missing"] == 0, v
        assert v["rest_calls"] <= 4 + 2 * v["changed"] + 2, v
    assert len({v["rest_calls"] for v in restart.values()}) == 1, restart

    # Taken in while Deskie was down, all delivered once in order afterwards.
    ingest = r["ingest"]
    assert ingest["events"] >= 300 and ingest["lost"] == ingest["doubled"] == ingest["out_of_order"] == 0
    assert r["latency_ms"]["messages_each_way"] >= 20
    assert set(r["targets"]) and all("met" in t for t in r["targets"].values())
