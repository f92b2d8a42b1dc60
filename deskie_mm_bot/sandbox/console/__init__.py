"""The sandbox console: one static page where a person plays the customers and the agents."""

from .server import ConsoleServer

__all__ = ["ConsoleServer"]
