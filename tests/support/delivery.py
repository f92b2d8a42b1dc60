"""Helpers for delivery-guarantee scenarios: customers who post numbered messages, and a checker that
reads Deskie back and says what was lost, doubled or out of order."""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, World

TOKEN = re.compile(r"\b(u\d+-m\d+)\b")


@dataclass
class Customer:
    name: str
    user: dict[str, Any]
    dm: dict[str, Any]
    sent: list[str] = field(default_factory=list)


def add_customers(world: World, n: int) -> list[Customer]:
    out = []
    for i in range(n):
        user = world.mm.add_user(f"cust{i}", f"Customer{i}", "Test")
        world.mm.add_team_member(world.team["id"], user["id"])
        dm = world.mm.direct_channel(world.bot["id"], user["id"])
        out.append(Customer(f"u{i}", user, dm))
    return out


def burst(world: World, customers: list[Customer], per_customer: int, *, gap: float = 0.01,
          rng: random.Random | None = None) -> None:
    """Interleaved posts from several customers; each carries a unique token like u3-m07."""
    rng = rng or random.Random()
    queue = [(c, i) for c in customers for i in range(per_customer)]
    # Interleave customers but keep each one's own order.
    order: list[tuple[Customer, int]] = []
    cursors = {c.name: 0 for c in customers}
    while len(order) < len(queue):
        c = rng.choice([c for c in customers if cursors[c.name] < per_customer])
        order.append((c, cursors[c.name]))
        cursors[c.name] += 1
    for c, i in order:
        token = f"{c.name}-m{i:02d}"
        world.mm.post_as(c.user["id"], c.dm["id"], f"question {token} please")
        c.sent.append(token)
        if gap:
            time.sleep(rng.uniform(0, gap))


def burst_in_background(world: World, customers: list[Customer], per_customer: int, **kw: Any) -> threading.Thread:
    t = threading.Thread(target=burst, args=(world, customers, per_customer), kwargs=kw, daemon=True)
    t.start()
    return t


@dataclass
class Verdict:
    lost: list[str]
    doubled: list[str]
    out_of_order: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.out_of_order)


def received_tokens(world: World, customer: Customer) -> list[str]:
    """Tokens as Deskie holds them for this customer: cases in order, messages in order."""
    tokens: list[str] = []
    for case in world.dk.cases(CHANNEL_CODE):
        user = world.dk.user(case["user_id"])
        if user.get("user_custom_id") != f"u:{customer.user['id']}":
            continue
        for m in world.dk.messages(case["case_id"]):
            if m["staff_id"] or m["note"]:
                continue
            tokens.extend(TOKEN.findall(m["content"] or ""))
    return tokens


def verdict(world: World, customers: list[Customer]) -> Verdict:
    lost: list[str] = []
    doubled: list[str] = []
    disorder: list[str] = []
    for c in customers:
        got = received_tokens(world, c)
        for t in c.sent:
            n = got.count(t)
            if n == 0:
                lost.append(t)
            elif n > 1:
                doubled.append(t)
        firsts = [t for i, t in enumerate(got) if t not in got[:i]]
        expected = [t for t in c.sent if t in firsts]
        if firsts != expected:
            disorder.append(c.name)
    return Verdict(lost, doubled, disorder)


def all_delivered(world: World, customers: list[Customer]) -> bool:
    return all(set(c.sent) <= set(received_tokens(world, c)) for c in customers)
