"""A bot that can no longer work stops with a non-zero code instead of idling; one bad job does not."""

from __future__ import annotations

from collections.abc import Callable

from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import cases_of, wait_for
from tests.support.inproc import InProcessBot


def test_a_relay_loop_that_dies_takes_the_process_down(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    bot = inproc_bot().start()
    assert bot.app is not None

    async def broken(workspace: str | None = None) -> float | None:
        raise RuntimeError("disk on fire")

    bot.app.inbound.drain = broken  # type: ignore[method-assign]
    bot.app.inbound.wake()
    wait_for(lambda: bot.exit_code is not None, 20, "the bot to stop")
    assert bot.exit_code == 1
    assert "inbound loop died" in bot.app.exit_message and "disk on fire" in bot.app.exit_message


def test_a_failing_scheduled_job_does_not_stop_the_bot(
    world: World, inproc_bot: Callable[..., InProcessBot]
) -> None:
    bot = inproc_bot().start()
    assert bot.app is not None
    job = bot.app._job(_raise)
    bot.call(job)  # logged and recorded, not raised
    assert not bot.app.stopping.is_set()
    assert any("boom" in e["message"] for e in bot.app.store.last_errors())
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "still working?")
    wait_for(lambda: cases_of(world), what="the bot still relaying")


async def _raise() -> None:
    raise ValueError("boom")
