"""Agents' names for their answers: `staff_id` -> `staff_full_name`, looked up once and cached.

A lookup is directory work (lowest priority in the rate budget) and never holds an answer back: the
caller waits a moment at most, and an answer whose agent cannot be named goes out without a name,
while the lookup finishes for the next answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from ..blocking import off_loop
from .client import DeskieClient, DeskieError, DeskieRejected
from .ratebudget import Priority

log = logging.getLogger(__name__)

FRESH_FOR = 3600.0  # names rarely change; every lookup costs rate budget
UNKNOWN_FOR = 600.0  # an unknown or failing id is asked again only after this
PATIENCE = 2.0  # seconds an answer may wait for its agent's name


class StaffNames:
    def __init__(
        self, deskie: DeskieClient, pool: Executor, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.deskie = deskie
        self.pool = pool
        self.clock = clock
        self._names: dict[int, tuple[str, float]] = {}  # staff_id -> (name or "", good until)
        self._lookups: dict[int, asyncio.Task[str]] = {}

    def cached(self, staff_id: int) -> str | None:
        hit = self._names.get(staff_id)
        return hit[0] if hit is not None and hit[1] > self.clock() else None

    async def name_of(self, staff_id: int | None, patience: float = PATIENCE) -> str:
        """The agent's full name, or "" when it cannot be had within `patience` seconds."""
        if not staff_id:
            return ""
        known = self.cached(staff_id)
        if known is not None:
            return known
        task = self._lookups.get(staff_id)
        if task is None:
            task = asyncio.ensure_future(self._lookup(staff_id))
            self._lookups[staff_id] = task
            task.add_done_callback(lambda _t, sid=staff_id: self._lookups.pop(sid, None))
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout=patience)
        except asyncio.TimeoutError:
            log.info("agent %s: no name within %.0f s; answer posted without it", staff_id, patience)
            return ""
        except Exception:  # the lookup's own failure is logged there; the answer does not wait for it
            return ""

    async def name_of_answer(self, staff_id: int | None, case_id: int, message_id: int | None) -> str:
        """The name for an answer; a webhook that left out `staff_id` is completed from the case's
        messages (one read, within the same patience)."""
        if staff_id or not message_id:
            return await self.name_of(staff_id)
        started = self.clock()
        try:
            page = await asyncio.wait_for(
                off_loop(self.pool, self.deskie.list_messages, case_id, order="desc", limit=100,
                         priority=Priority.DIRECTORY),
                timeout=PATIENCE,
            )
        except (asyncio.TimeoutError, DeskieError) as e:
            log.info("answer %s: its agent is not known (%s); posted without a name", message_id, e or "timeout")
            return ""
        author = next((int(m.get("staff_id") or 0) for m in page.items
                       if int(m.get("message_id") or 0) == message_id), 0)
        return await self.name_of(author, max(0.1, PATIENCE - (self.clock() - started)))

    async def _lookup(self, staff_id: int) -> str:
        try:
            staff = await off_loop(self.pool, self._get, staff_id)
        except DeskieRejected as e:
            log.info("agent %s not found in Deskie's staff (%s)", staff_id, e.code)
            self._names[staff_id] = ("", self.clock() + UNKNOWN_FOR)
            return ""
        except DeskieError as e:
            log.info("agent %s: name lookup failed (%s)", staff_id, e)
            self._names[staff_id] = ("", self.clock() + UNKNOWN_FOR / 10)
            return ""
        name = " ".join(str(staff.get("staff_full_name") or "").split())
        self._names[staff_id] = (name, self.clock() + (FRESH_FOR if name else UNKNOWN_FOR))
        return name

    def _get(self, staff_id: int) -> dict[str, Any]:
        data = self.deskie.request("GET", f"/api/staff/{staff_id}.json", priority=Priority.DIRECTORY)
        staff = data.get("staff")
        return staff if isinstance(staff, dict) else {}
