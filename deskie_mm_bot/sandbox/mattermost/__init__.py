"""A Mattermost server emulator (REST ``/api/v4``, websocket, fault injection) for tests and the sandbox.

It is an independent implementation of the protocol and imports nothing from the rest of the project.
"""

from .server import MattermostEmulator

__all__ = ["MattermostEmulator"]
