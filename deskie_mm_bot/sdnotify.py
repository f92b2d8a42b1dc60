"""systemd's readiness protocol (sd_notify), for a `Type=notify` unit.

The protocol is one datagram on the unix socket named by $NOTIFY_SOCKET. It is written here rather
than taken from a library: `systemd-python` needs libsystemd's headers to build, and the pure-Python
`sdnotify` package has not been released since 2017; neither is worth a dependency for a sendto().
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def sd_notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (``"READY=1"``, ``"STOPPING=1"``, ...) to the service manager, if there is one.

    Returns whether it was sent. Without $NOTIFY_SOCKET (not under systemd, or not `Type=notify`)
    nothing happens; a socket that cannot be reached is logged, never raised: readiness is a courtesy
    to the service manager, not a reason to stop relaying.
    """
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if address.startswith("@"):  # an abstract-namespace socket
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # unset, or a vsock address (systemd in a VM), which this does not speak
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(address)
            s.sendall(state.encode())
    except OSError as e:
        log.warning("cannot tell systemd %s: %s", state.split("\n", 1)[0], e)
        return False
    return True


async def announce(started: asyncio.Event, stopping: asyncio.Event) -> None:
    """READY=1 once the bot has started (logged in, serving), STOPPING=1 as soon as it begins to stop.

    A bot that fails at start never says READY=1, so systemd reports the start as failed."""
    waits = [asyncio.ensure_future(started.wait()), asyncio.ensure_future(stopping.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if started.is_set() and not stopping.is_set():
            sd_notify("READY=1\nSTATUS=running")
        await stopping.wait()
        sd_notify("STOPPING=1\nSTATUS=stopping: finishing in-flight work")
    finally:
        for w in waits:
            w.cancel()
