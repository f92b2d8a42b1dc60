"""Reconciliation's poll over the fake helpdesk and a real store: a case the helpdesk will not show does
not stop the poll for the others."""

from __future__ import annotations

import asyncio
from pathlib import Path

from deskie_mm_bot.model import AgentAnswer, CaseStatus, CaseSummary
from deskie_mm_bot.relay.reconcile import CURSOR, Reconciler
from deskie_mm_bot.store import Store
from tests.support.fakes import FakeHelpdesk


def test_a_case_deskie_will_not_show_does_not_stop_the_poll_for_the_others(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.set_cursor(CURSOR, "2026-11-25T22:00:05+03:00")
    convs = {}
    for case_id in (1, 2):
        convs[case_id] = store.create_conversation(
            conv_key=f"ch:{case_id}", channel_id=f"c{case_id}", reply_root_id="", user_custom_id=f"u:{case_id}",
            user_full_name="x", case_id=case_id, case_number=str(case_id), deskie_user_id=case_id,
            last_message_id=0, case_updated_at=None,
        )
    helpdesk = FakeHelpdesk()
    helpdesk.listing = [
        CaseSummary(1, CaseStatus.OPEN, "Wed, 25 Nov 2026 22:00:10 +0300"),
        CaseSummary(2, CaseStatus.WAITING, "Wed, 25 Nov 2026 22:00:11 +0300", at_edge=True),
    ]
    helpdesk.gone = {1}
    helpdesk.answers_of[2] = [AgentAnswer(message_id=50, case_id=2, text="answer", staff_id=7)]
    queued = asyncio.run(Reconciler(store, helpdesk).poll())
    assert helpdesk.cursors_asked == ["2026-11-25T22:00:05+03:00"]
    assert queued == 1
    assert store.known_message_ids([50]) == {50}
    gone = store.conversation(convs[1].id)
    assert gone is not None and gone.state == "closed"
