"""Capped exponential backoff with full jitter: one small policy shared by every retry loop.

Jitter keeps many restarted bots (or one bot's many loops) from hammering a recovering server in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        """Delay before the next try; grows until `cap`, never zero, never spins."""
        ceiling = min(self.cap, self.base * (self.factor**self.attempt))
        self.attempt += 1
        # Full jitter, but never less than a tenth of the base so a loop cannot spin.
        return max(self.base / 10, self.rng.uniform(0, ceiling))

    def reset(self) -> None:
        self.attempt = 0


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> float:
    """Stateless form for retries counted elsewhere (for example in the store)."""
    b = Backoff(base=base, cap=cap, attempt=attempt, rng=rng or random.Random())
    return b.next_delay()
