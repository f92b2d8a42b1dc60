"""Small pieces of the bot's websocket client."""

from __future__ import annotations

import asyncio
import contextlib
import time

from deskie_mm_bot.mattermost.websocket import _stop_task


def test_stopping_a_task_that_swallows_its_first_cancellation_does_not_wait_for_its_next_sleep() -> None:
    """What asyncio.wait_for does on Python < 3.12 when the awaited future completes as it is cancelled."""

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # swallowed, as wait_for may
            await asyncio.sleep(10)
        await asyncio.sleep(30)  # the next ping interval

    async def go() -> float:
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0.01)
        started = time.monotonic()
        await _stop_task(task)
        assert task.done()
        return time.monotonic() - started

    assert asyncio.run(go()) < 2.0
