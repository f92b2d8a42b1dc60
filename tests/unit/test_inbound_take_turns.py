"""The order the inbound relay serves chats with work waiting in."""

from __future__ import annotations

from deskie_mm_bot.relay.inbound import take_turns


def test_workspaces_take_turns_so_a_backlog_in_one_does_not_hold_back_another() -> None:
    waiting = ["acme:ch:1", "acme:ch:2", "acme:ch:3", "globex:ch:9", "out:5"]
    assert take_turns(waiting) == ["acme:ch:1", "globex:ch:9", "out:5", "acme:ch:2", "acme:ch:3"]
    # One workspace: oldest first, as before.
    assert take_turns(["ch:3", "ch:1", "th:2"]) == ["ch:3", "ch:1", "th:2"]
