"""Shared test fixtures.

Every test runs with outbound network limited to loopback: a test that reaches further fails
instead of silently depending on the internet. (Subprocesses get the same rule: tests/support/netguard.)

The fixtures the kinds share (`world`, `make_bot`, `clock`, `inproc_bot`) come from the support modules as
plugins, so a test asks for one by name and never imports it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "support" / "netguard"))

from deskie_netguard import NetworkBlocked, install  # noqa: E402

__all__ = ["NetworkBlocked"]

pytest_plugins = ["tests.support.harness", "tests.support.inproc", "tests.support.workspaces"]


@pytest.fixture(autouse=True)
def _ban_network(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch.setattr)
