"""`deskie-mm-bot sandbox --demo`: the one-command way to try the bot works, in both reply modes."""

from __future__ import annotations

import pytest

from tests.support.harness import cli


@pytest.mark.parametrize("mode", ["group_chat", "thread"])
def test_sandbox_demo_plays_a_conversation(mode: str) -> None:
    r = cli("sandbox", "--demo", "--reply-mode", mode)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "opened in group 'Support' for 'Jane Doe (@jane)'" in out
    assert "- call **facilities**" in out  # the agent's HTML answer, as Markdown in the DM
    assert "now has 3 messages" in out
    if mode == "thread":
        assert "(DM, in the thread of her post)" in out and "(in the thread of Bob's post)" in out
    else:
        assert "(DM, at the top level)" in out and "(at the top of ~support)" in out
    assert f"demo done (reply mode {mode})" in out
