"""Review: the Deskie client must give back the budget units of a request that failed in any way."""

from __future__ import annotations

import pytest
import requests
import responses

from deskie_mm_bot.deskie.client import DeskieClient, DeskieUnavailable
from deskie_mm_bot.deskie.ratebudget import RateBudget

pytestmark = pytest.mark.timeout(10)

BASE = "https://acme.deskie.io"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_response_broken_mid_body_does_not_leak_budget_and_is_a_maybe_applied_write() -> None:
    """A connection cut while the body is read (ChunkedEncodingError) is neither a ConnectionError nor a
    Timeout. The units it took must be settled, or every such failure lowers the budget for good and,
    once the server's `api_calls_left` is known, all callers end up waiting forever."""
    clock = Clock()
    budget = RateBudget(clock=clock)
    client = DeskieClient(BASE, "a@b.c", "k", budget=budget, sleep=lambda s: None)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        # The server has told its window once: from now on the budget trusts it, minus what is in flight.
        rsps.get(f"{BASE}/api/cases/1.json", json={"case": {"case_id": 1}},
                 headers={"rate_limit_per_minute": "20", "api_calls_left": "19"})
        client.get_case(1)
        before = budget.available()
        rsps.post(f"{BASE}/api/cases/1/messages.json", body=requests.exceptions.ChunkedEncodingError("cut"))
        for _ in range(3):
            with pytest.raises(DeskieUnavailable) as err:
                client.add_user_message(1, 5, "hello")
            assert err.value.maybe_applied
        assert budget._in_flight == 0
        assert budget.available() >= before - 3 * 2
    client.close()
