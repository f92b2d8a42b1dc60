"""Typed, validated settings read from the bot's YAML config file.

``model`` holds the frozen settings dataclasses, ``loader`` reads and validates the file, ``values`` parses
single values (durations, listen addresses, URLs).  Errors are raised as :class:`ConfigError`, whose
``str()`` is one line of the form ``"<dotted.key>: <problem>"`` and never contains a secret value.
"""

from __future__ import annotations

from ..logs import redact
from .loader import SECRET_KEYS, is_secret_key, load_config, parse_config, workspace_entry_key
from .model import (
    DEFAULT_STATE_PATH,
    LOG_FORMATS,
    LOG_LEVELS,
    REPLY_MODES,
    WEBHOOK_SECRET_MIN_LENGTH,
    ChatsSettings,
    DeskieSettings,
    LogSettings,
    MattermostSettings,
    Settings,
    StateSettings,
    WebhookSettings,
    WorkspaceSettings,
)
from .values import DEFAULT_LISTEN, ConfigError, parse_duration

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_STATE_PATH",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REPLY_MODES",
    "SECRET_KEYS",
    "WEBHOOK_SECRET_MIN_LENGTH",
    "ChatsSettings",
    "ConfigError",
    "DeskieSettings",
    "LogSettings",
    "MattermostSettings",
    "Settings",
    "StateSettings",
    "WebhookSettings",
    "WorkspaceSettings",
    "is_secret_key",
    "load_config",
    "parse_config",
    "parse_duration",
    "redact",
    "workspace_entry_key",
]
