"""The process's tasks and its one exit code: a loop that dies, or an error the bot cannot work past,
ends the process with a non-zero code rather than leaving it idle; a scheduled run that fails is
recorded and the schedule goes on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from . import errors
from .errors import EXIT_OK, EXIT_RUNTIME

log = logging.getLogger(__name__)

# What ends the process when a loop or a job meets it: the exit code and the line come from the error.
ENDS_THE_PROCESS = (errors.Fatal, errors.CredentialsRejected, errors.ConfigError)


class Supervisor:
    def __init__(self, stopping: asyncio.Event, record_error: Callable[[str, str], None]) -> None:
        self.stopping = stopping
        self.record_error = record_error  # for `status`: a scheduled run that failed
        self.exit_code = EXIT_OK
        self.exit_message = ""
        self.tasks: list[asyncio.Task[Any]] = []
        self._may_end: set[str] = set()

    def fail(self, code: int, message: str) -> None:
        """Stop the process with `code` (the first failure's code and line are the ones kept)."""
        if self.exit_code == EXIT_OK:
            self.exit_code, self.exit_message = code, message
            log.error("%s", message)
        self.stopping.set()

    def ended_by(self, exc: BaseException) -> None:
        self.fail(errors.exit_code_for(exc), errors.describe(exc))

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any], *, may_end: bool = False) -> None:
        """Run a loop for the life of the process; `may_end`: a task that is done when it returns."""
        task = asyncio.create_task(coro, name=name)
        if may_end:
            self._may_end.add(name)
        task.add_done_callback(self._task_done)
        self.tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        name = task.get_name()
        if exc is None:
            if not self.stopping.is_set() and name not in self._may_end:
                self.fail(EXIT_RUNTIME, f"internal error: the {name} loop ended unexpectedly")
            return
        if isinstance(exc, errors.Stopping) and self.stopping.is_set():
            return
        if isinstance(exc, ENDS_THE_PROCESS):
            self.ended_by(exc)
        else:
            log.error("the %s loop died", name, exc_info=exc)
            self.fail(EXIT_RUNTIME, f"internal error: the {name} loop died: {type(exc).__name__}: {exc}")

    def job(self, fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        """A scheduled run: skipped while stopping; one failing run must not stop the schedule."""

        async def job() -> None:
            if self.stopping.is_set():
                return
            try:
                await fn()
            except errors.Stopping:
                return
            except ENDS_THE_PROCESS as e:
                self.ended_by(e)
            except Exception as e:
                log.warning("%s failed: %s: %s", getattr(fn, "__name__", "job"), type(e).__name__, e)
                self.record_error("scheduler", f"{type(e).__name__}: {e}")

        return job

    async def finish(self, deadline: float, now: Callable[[], float]) -> bool:
        """Let the loops finish the pass they are in until `deadline`; True when all did."""
        pending = [t for t in self.tasks if not t.done()]
        if not pending:
            return True
        _, still = await asyncio.wait(pending, timeout=max(0.0, deadline - now()))
        for t in still:
            t.cancel()
        await asyncio.gather(*still, return_exceptions=True)
        return not still
