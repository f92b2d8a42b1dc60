"""In-process emulator of the Deskie (Omnidesk) helpdesk HTTP API, for tests and the sandbox demo.

Independent of the rest of ``deskie_mm_bot``: stdlib + aiohttp + requests only.
"""

from .server import DeskieEmulator

__all__ = ["DeskieEmulator"]
