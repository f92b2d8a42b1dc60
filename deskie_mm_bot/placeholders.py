"""The example config shipped in the package, and what in a config file is still its placeholder.

`init` writes the example; `check` names every key still holding one of its made-up values, so that a
half-edited file is caught offline instead of by a bot that retries `chat.example.com` for a minute.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .config import workspace_entry_key

EXAMPLE_NAME = "bot_config.example.yaml"

# Host names that can never be a real server: reserved for examples and tests (RFC 2606, RFC 6761).
_RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
_RESERVED_TLDS = ("example", "invalid")
_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENTRY_RE = re.compile(r"\[[^\]]*\]")  # workspaces[acme].url has the hint of workspaces.url

# What to put instead, for the keys the example fills with made-up values.
_HINTS = {
    "url": "put your server's URL here",
    "mattermost.url": "put your Mattermost workspace URL here",
    "workspaces.url": "put your Mattermost workspace URL here",
    "deskie.url": "put your Deskie account URL here",
    "deskie.staff_email": "put the email of the staff member the API acts as",
    "deskie.channel": "put your custom channel's API code (Deskie > Settings > Channels)",
}


def example_text() -> str:
    """The commented example config, as shipped inside the package."""
    return resources.files("deskie_mm_bot").joinpath("data", EXAMPLE_NAME).read_text(encoding="utf-8")


def _reserved_host(url: str) -> bool:
    text = url if "://" in url else "https://" + url
    try:
        host = (urlsplit(text).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if host.rsplit(".", 1)[-1] in _RESERVED_TLDS:
        return True
    return any(host == d or host.endswith("." + d) for d in _RESERVED_DOMAINS)


def _leaves(data: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(dotted key, last key name, value) of every scalar; list items as `name[i]`, a workspace by its
    name as the loader names it (`workspaces[acme]`)."""
    if isinstance(data, Mapping):
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, (Mapping, list)):
                yield from _leaves(v, key)
            else:
                yield key, str(k), v
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _leaves(v, workspace_entry_key(i, v) if prefix == "workspaces" else f"{prefix}[{i}]")


def _unset_variable(value: str, env: Mapping[str, str]) -> str | None:
    for body in _ENV_REF.findall(value):
        name, sep, _ = body.partition(":-")
        if not sep and name not in env:
            return name
    return None


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def find_placeholders(data: Any, env: Mapping[str, str]) -> list[str]:
    """One ``"<key>: <problem>"`` line per key that still holds a placeholder, in file order.

    A placeholder is a ``${VAR}`` whose variable is not set, a URL on a host reserved for examples, or
    the example's Deskie account. The example's staff email and channel code count only beside that
    account: ``cch12`` is an ordinary code in a real account, and ``check --online`` proves it there.
    """
    example = yaml.safe_load(example_text())
    sample_deskie = example.get("deskie", {})
    deskie = data.get("deskie") if isinstance(data, Mapping) else None
    deskie = deskie if isinstance(deskie, Mapping) else {}
    sample_account = _same(deskie.get("url"), sample_deskie.get("url"))
    found: list[str] = []
    for key, name, value in _leaves(data):
        if not isinstance(value, str):
            continue
        variable = _unset_variable(value, env)
        hint = _HINTS.get(_ENTRY_RE.sub("", key), _HINTS.get(name, "put your own value here"))
        if variable is not None:
            found.append(f"{key}: environment variable {variable} is not set")
        elif name in ("url", "public_url") and _reserved_host(value):
            found.append(f"{key}: {value!r} is a placeholder (the host is reserved for examples); {hint}")
        elif sample_account and (key == "deskie.url" or (
                key in ("deskie.staff_email", "deskie.channel") and _same(value, sample_deskie.get(name)))):
            found.append(f"{key}: {value!r} is the example's placeholder; {hint}")
    return found


def placeholders_in_file(path: str | Path, env: Mapping[str, str]) -> list[str]:
    """Placeholders of the config file at ``path``; empty when it cannot be read (the loader says why)."""
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    return find_placeholders(data, env) if isinstance(data, Mapping) else []
