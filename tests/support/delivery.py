"""Helpers for delivery-guarantee scenarios: customers who post numbered messages, and a checker that
reads Deskie back and says what was lost, doubled or out of order.

They are the benchmark's and the stress runner's own (scripts/benchkit.py, which needs no test code so
that the scripts run after `pip install .`): one implementation serves both."""

from __future__ import annotations

from scripts.benchkit import (
    TOKEN,
    Customer,
    Verdict,
    add_customers,
    all_delivered,
    burst,
    burst_in_background,
    tokens_by_customer,
    verdict,
)

__all__ = ["TOKEN", "Customer", "Verdict", "add_customers", "all_delivered", "burst", "burst_in_background",
           "tokens_by_customer", "verdict"]
