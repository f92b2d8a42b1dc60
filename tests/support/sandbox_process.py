"""`deskie-mm-bot sandbox` as a person starts it, in a subprocess: its console URL is its first line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.harness import NETGUARD, REPO


@dataclass
class Sandbox:
    proc: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def running_sandbox(*args: str, workdir: Path, timeout: float = 20.0) -> Iterator[Sandbox]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = os.pathsep.join([str(NETGUARD), str(REPO), env.get("PYTHONPATH", "")])
    env.pop("DISPLAY", None)  # never a real browser window from a test
    proc = subprocess.Popen(
        [sys.executable, "-m", "deskie_mm_bot", "sandbox", "--workdir", str(workdir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env,
        cwd=str(REPO),
    )
    lines: list[str] = []
    first = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            first.set()
        first.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not first.wait(timeout) or not lines:
            raise AssertionError(f"the sandbox printed nothing within {timeout:.0f} s")
        head = lines[0].split()
        if head[:1] != ["Console:"]:
            raise AssertionError(f"the first line is not the console URL: {lines[0]!r}")
        yield Sandbox(proc, head[1], lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
