"""Single config values: durations, ``host:port`` listen addresses and service URLs.

Errors are raised as :class:`~deskie_mm_bot.errors.ConfigError`, whose ``str()`` is one line of the form
``"<dotted.key>: <problem>"`` and never contains a secret value (bot token, API key, webhook secret).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..errors import ConfigError  # the one definition, in the bot's error tree

DEFAULT_LISTEN = "127.0.0.1:8085"


def show(value: object) -> str:
    """A short description of a (non-secret) value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return type(value).__name__


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


_DURATION_RE = re.compile(
    r"""^(?:(?P<d>\d+(?:\.\d+)?)d\s*)?
         (?:(?P<h>\d+(?:\.\d+)?)h\s*)?
         (?:(?P<m>\d+(?:\.\d+)?)m\s*)?
         (?:(?P<s>\d+(?:\.\d+)?)s)?$""",
    re.VERBOSE | re.IGNORECASE,
)
_DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION_HINT = "must be a duration like 90s, 10m, 1h, 1h30m or a number of seconds"


def parse_duration(value: object, key: str) -> float:
    """Parse a duration into seconds.

    Accepts ``"90s"``, ``"10m"``, ``"1h"``, ``"1h30m"``, ``"2d"``, a plain int/float of seconds or a
    numeric string.  The result must be a finite number greater than 0; anything else raises
    :class:`ConfigError` naming ``key``.
    """
    seconds: float
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{_DURATION_HINT}, got {show(value)}", key)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION_RE.match(text)
            if not text or match is None or not any(match.groupdict().values()):
                if text.startswith("-") and _DURATION_RE.match(text[1:].strip()):
                    raise ConfigError(f"must be greater than 0, got {value!r}", key) from None
                raise ConfigError(f"{_DURATION_HINT}, got {value!r}", key) from None
            seconds = sum(
                float(amount) * _DURATION_UNITS[unit]
                for unit, amount in match.groupdict().items()
                if amount is not None
            )
    else:
        raise ConfigError(f"{_DURATION_HINT}, got {type(value).__name__}", key)
    if math.isnan(seconds) or math.isinf(seconds):
        raise ConfigError(f"{_DURATION_HINT}, got {show(value)}", key)
    if seconds <= 0:
        raise ConfigError(f"must be greater than 0, got {show(value)}", key)
    return seconds


def parse_listen(value: str, key: str) -> tuple[str, int]:
    """Split ``host:port`` / ``[ipv6]:port`` into ``(host, port)``."""
    text = value.strip()
    expected = f"must be host:port (e.g. {DEFAULT_LISTEN} or [::1]:8085), got {value!r}"
    if text.startswith("["):
        end = text.find("]")
        if end == -1 or not text[end + 1 :].startswith(":"):
            raise ConfigError(expected, key)
        host, port_text = text[1:end], text[end + 2 :]
        if not host:
            raise ConfigError(expected, key)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ConfigError(expected, key)
        if ":" in host:
            raise ConfigError(f"an IPv6 address must be in brackets, e.g. [::1]:8085, got {value!r}", key)
    if not port_text.isascii() or not port_text.isdigit():
        raise ConfigError(expected, key)
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"port must be between 0 and 65535, got {port}", key)
    return host, port


_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def normalise_url(raw: str, key: str, *, allow_path: bool) -> str:
    """Normalise an http(s) base URL: bare host means https://, trailing slash stripped."""
    text = raw.strip()
    if any(c.isspace() for c in text):
        raise ConfigError(f"must not contain spaces, got {raw!r}", key)
    if not _SCHEME_RE.match(text):
        text = "https://" + text
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ConfigError(f"is not a valid URL, got {raw!r}", key) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"must be an http:// or https:// URL, got {raw!r}", key)
    if "@" in parts.netloc:
        # Do not echo it: the user-info part may hold a password.
        raise ConfigError("must not contain a user name or password", key)
    if not parts.hostname:
        raise ConfigError(f"must include a host name, got {raw!r}", key)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"has an invalid port, got {raw!r}", key) from None
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ConfigError(f"must not have a query or fragment, got {raw!r}", key)
    path = parts.path.rstrip("/")
    if path and not allow_path:
        raise ConfigError(
            f"must be the server's base URL without a path (servers under a sub-path are not supported), "
            f"got {raw!r}",
            key,
        )
    return f"{scheme}://{parts.netloc.lower()}{path}"
