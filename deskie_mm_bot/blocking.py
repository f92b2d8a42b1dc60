"""Blocking calls (the Deskie client is `requests`) run on a bounded thread pool, never on the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


async def off_loop(pool: Executor | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(pool, partial(fn, *args, **kwargs))
