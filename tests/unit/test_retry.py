import random

from deskie_mm_bot.retry import Backoff, backoff_delay


def test_backoff_grows_and_is_capped() -> None:
    b = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    ceilings = []
    for _ in range(10):
        ceilings.append(min(8.0, 1.0 * 2 ** b.attempt))
        d = b.next_delay()
        assert 0.1 <= d <= ceilings[-1]
    assert ceilings[-1] == 8.0


def test_backoff_never_spins() -> None:
    class Zero(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return 0.0

    b = Backoff(base=0.5, rng=Zero())
    assert all(b.next_delay() >= 0.05 for _ in range(5))


def test_backoff_reset_starts_small_again() -> None:
    b = Backoff(base=1.0, cap=100.0, rng=random.Random(3))
    for _ in range(6):
        b.next_delay()
    b.reset()
    assert b.next_delay() <= 1.0


def test_stateless_delay_respects_cap() -> None:
    assert backoff_delay(50, base=1, cap=5, rng=random.Random(0)) <= 5
