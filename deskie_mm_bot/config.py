"""Typed, validated settings read from the bot's YAML config file.

The file format is the contract in ``docs/design.md`` ("Config file (YAML)").  Everything here is
stdlib dataclasses plus PyYAML; nothing touches the network.

Errors are raised as :class:`ConfigError`, whose ``str()`` is one line of the form
``"<dotted.key>: <problem>"`` and never contains a secret value (bot token, API key, webhook secret).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import SplitResult, urlsplit

import yaml

from .errors import ConfigError  # noqa: F401  (re-exported: part of this module's interface)

__all__ = [
    "ChatsSettings",
    "ConfigError",
    "DeskieSettings",
    "LogSettings",
    "MattermostSettings",
    "Settings",
    "StateSettings",
    "WebhookSettings",
    "load_config",
    "parse_config",
    "parse_duration",
    "redact",
]

REPLY_MODES = ("group_chat", "thread")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
DEFAULT_LISTEN = "127.0.0.1:8085"
DEFAULT_STATE_PATH = "deskie-mm-bot.sqlite3"
WEBHOOK_SECRET_MIN_LENGTH = 16

# Keys whose values are secrets: never echoed in an error message.
SECRET_KEYS = frozenset({"mattermost.bot_token", "deskie.api_key", "webhook.secret"})


# --------------------------------------------------------------------------------------------------
# Errors and redaction


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each non-empty secret in ``text`` with ``***``."""
    # Longest first, so that a secret containing another one is replaced as a whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# --------------------------------------------------------------------------------------------------
# Settings


def _split_http_url(url: str) -> SplitResult:
    return urlsplit(url)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class _ServiceUrl:
    """scheme / host / port of a normalised ``url`` field (shared by both services' sections)."""

    url: str

    @property
    def scheme(self) -> str:
        return _split_http_url(self.url).scheme

    @property
    def host(self) -> str:
        """Host name or IP address (an IPv6 address without brackets)."""
        return _split_http_url(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = _split_http_url(self.url)
        return parts.port or _default_port(parts.scheme)


@dataclass(frozen=True)
class MattermostSettings(_ServiceUrl):
    """``mattermost:`` section.  ``url`` is normalised: ``scheme://host[:port]``, no trailing slash."""

    url: str
    bot_token: str = field(repr=False)
    team: str = ""
    ca_file: str | None = None
    insecure: bool = False
    ping_interval: float = 30.0


@dataclass(frozen=True)
class DeskieSettings(_ServiceUrl):
    """``deskie:`` section.  ``url`` is normalised like Mattermost's (trailing slash stripped)."""

    url: str
    staff_email: str
    api_key: str = field(repr=False)
    channel: str
    default_group: str
    rate_limit_per_minute: int | None = None
    ca_file: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class WebhookSettings:
    """``webhook:`` section.  ``host``/``port`` are derived from ``listen`` (``host:port``, ``[v6]:port``)."""

    listen: str = DEFAULT_LISTEN
    secret: str = field(default="", repr=False)
    # The URL Deskie calls, without /deskie/webhook/<secret> (check --online compares it).
    public_url: str | None = None

    def webhook_url(self, secret_shown: str | None = None) -> str | None:
        """The webhook URL Deskie should call (the secret masked when ``secret_shown`` is given)."""
        if self.public_url is None:
            return None
        secret = self.secret if secret_shown is None else secret_shown
        return f"{self.public_url}/deskie/webhook/{secret}"

    @property
    def host(self) -> str:
        """The address to bind, without brackets for IPv6 (``"::1"``)."""
        return _parse_listen(self.listen, "webhook.listen")[0]

    @property
    def port(self) -> int:
        return _parse_listen(self.listen, "webhook.listen")[1]

    @property
    def weak_secret(self) -> bool:
        """Shorter than a guessable-path secret should be; the bot warns at every start."""
        return len(self.secret) < WEBHOOK_SECRET_MIN_LENGTH


@dataclass(frozen=True)
class ChatsSettings:
    mention_only: bool = True
    reply_mode: str = "group_chat"
    idle_timeout: float = 600.0
    poll_interval: float = 30.0
    agent_name: bool = True
    reactions: bool = True


@dataclass(frozen=True)
class StateSettings:
    path: str = DEFAULT_STATE_PATH


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    format: str = "text"


@dataclass(frozen=True)
class Settings:
    mattermost: MattermostSettings
    deskie: DeskieSettings
    webhook: WebhookSettings
    chats: ChatsSettings = field(default_factory=ChatsSettings)
    state: StateSettings = field(default_factory=StateSettings)
    log: LogSettings = field(default_factory=LogSettings)
    source_path: str | None = None

    def secrets(self) -> list[str]:
        """The bot token, the API key and the webhook secret (the non-empty ones), for log redaction."""
        values = [self.mattermost.bot_token, self.deskie.api_key, self.webhook.secret]
        return [v for v in values if v]


# --------------------------------------------------------------------------------------------------
# Small parsers (public: parse_duration)

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
        raise ConfigError(f"{_DURATION_HINT}, got {_show(value)}", key)
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
        raise ConfigError(f"{_DURATION_HINT}, got {_show(value)}", key)
    if seconds <= 0:
        raise ConfigError(f"must be greater than 0, got {_show(value)}", key)
    return seconds


def _parse_listen(value: str, key: str) -> tuple[str, int]:
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


def _normalise_url(raw: str, key: str, *, allow_path: bool) -> str:
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


# --------------------------------------------------------------------------------------------------
# Environment expansion

_ENV_RE = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _expand_env(value: str, key: str, env: Mapping[str, str], *, secret: bool = False) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` (default when unset or empty)."""

    def replace(match: re.Match[str]) -> str:
        body = match.group(1)
        name, sep, default = body.partition(":-")
        if not _ENV_NAME_RE.match(name):
            shown = "" if secret else f" ${{{body}}}"
            raise ConfigError(f"invalid environment reference{shown}: use ${{VAR}} or ${{VAR:-default}}", key)
        current = env.get(name)
        if sep:
            return current if current else default
        if current is None:
            raise ConfigError(f"environment variable {name} is not set", key)
        return current

    expanded = _ENV_RE.sub(replace, value)
    if "${" in _ENV_RE.sub("", value):
        raise ConfigError("has an unterminated ${...} environment reference", key)
    return expanded


# --------------------------------------------------------------------------------------------------
# Section parsing


def _show(value: object) -> str:
    """A short description of a (non-secret) value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return type(value).__name__


def _type_name(value: object) -> str:
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


_MISSING: Any = object()


class _Section:
    """Reads one mapping of the config, tracking which keys were used."""

    def __init__(self, name: str, data: Mapping[Any, Any], env: Mapping[str, str]) -> None:
        self.name = name
        self.data = data
        self.env = env

    def key(self, name: str) -> str:
        return f"{self.name}.{name}" if self.name else name

    def fail(self, name: str, problem: str) -> NoReturn:
        raise ConfigError(problem, self.key(name))

    def check_unknown(self, known: Iterable[str]) -> None:
        known = list(known)
        for raw_key in self.data:
            if isinstance(raw_key, str) and raw_key in known:
                continue
            shown = raw_key if isinstance(raw_key, str) else _show(raw_key)
            hint = ""
            if isinstance(raw_key, str):
                close = difflib.get_close_matches(raw_key, known, n=1, cutoff=0.6)
                if close:
                    hint = f", did you mean {close[0]!r}?"
            raise ConfigError(f"unknown key{hint}", self.key(str(shown)))

    def secret(self, name: str) -> bool:
        return self.key(name) in SECRET_KEYS

    def describe(self, name: str, value: object) -> str:
        """How an offending value is shown: secrets only by their type."""
        return _type_name(value) if self.secret(name) else _show(value)

    def raw(self, name: str) -> tuple[Any, bool]:
        """The value with env references expanded, and whether it came from an env reference."""
        value = self.data.get(name, _MISSING)
        if isinstance(value, str) and "${" in value:
            return _expand_env(value, self.key(name), self.env, secret=self.secret(name)), True
        return value, False

    # -- typed getters -------------------------------------------------------------------------

    def string(
        self, name: str, *, required: bool = False, default: str | None = None, allow_int: bool = False
    ) -> str | None:
        value, _ = self.raw(name)
        if value is _MISSING or value is None:
            if required:
                self.fail(name, "is required")
            return default
        if allow_int and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.fail(name, f"must be a string, got {self.describe(name, value)}")
        value = value.strip()
        if not value and required:
            self.fail(name, "is required")
        return value

    def required_string(self, name: str, *, allow_int: bool = False) -> str:
        value = self.string(name, required=True, allow_int=allow_int)
        assert value is not None
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value, from_env = self.raw(name)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        self.fail(name, f"must be true or false, got {self.describe(name, value)}")

    def positive_int_or_null(self, name: str) -> int | None:
        value, from_env = self.raw(name)
        if value is _MISSING or value is None:
            return None
        if from_env and isinstance(value, str):
            text = value.strip()
            if text.lower() in ("", "null", "none", "~"):
                return None
            if text.isascii() and text.isdigit():
                value = int(text)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"must be a positive whole number or null, got {self.describe(name, value)}")
        if value <= 0:
            self.fail(name, f"must be a positive whole number or null, got {value}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value, _ = self.raw(name)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        options = ", ".join(choices[:-1]) + " or " + choices[-1]
        self.fail(name, f"must be {options}, got {_show(value)}")

    def duration(self, name: str, default: float) -> float:
        value, _ = self.raw(name)
        if value is _MISSING or value is None:
            return default
        return parse_duration(value, self.key(name))

    def path(self, name: str, base_dir: str | None, *, default: str | None) -> str | None:
        value = self.string(name, default=default)
        if value is None:
            return None
        if not value:
            self.fail(name, "must not be empty (leave it out or use null)")
        value = os.path.expanduser(value)
        if base_dir is not None and not os.path.isabs(value):
            value = os.path.normpath(os.path.join(base_dir, value))
        return value

    def existing_file(self, name: str, base_dir: str | None) -> str | None:
        value = self.path(name, base_dir, default=None)
        if value is None:
            return None
        if not os.path.exists(value):
            self.fail(name, f"file not found: {value}")
        if not os.path.isfile(value):
            self.fail(name, f"not a regular file: {value}")
        if not os.access(value, os.R_OK):
            self.fail(name, f"file is not readable: {value}")
        return value


def _sub_section(top: _Section, name: str, *, required: bool) -> _Section:
    value = top.data.get(name, _MISSING)
    if value is _MISSING:
        if required:
            raise ConfigError("section is required", name)
        value = {}
    if value is None:  # "chats:" with nothing under it
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping of keys, got {_type_name(value)}", name)
    return _Section(name, value, top.env)


_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "mattermost": ("url", "bot_token", "team", "ca_file", "insecure", "ping_interval"),
    "deskie": (
        "url",
        "staff_email",
        "api_key",
        "channel",
        "default_group",
        "rate_limit_per_minute",
        "ca_file",
        "insecure",
    ),
    "webhook": ("listen", "secret", "public_url"),
    "chats": ("mention_only", "reply_mode", "idle_timeout", "poll_interval", "agent_name", "reactions"),
    "state": ("path",),
    "log": ("level", "format"),
}
_REQUIRED_SECTIONS = ("mattermost", "deskie", "webhook")

_CHANNEL_RE = re.compile(r"^cch\d+$")
_WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_.~-]+$")


def _parse_mattermost(s: _Section, base_dir: str | None) -> MattermostSettings:
    url = _normalise_url(s.required_string("url"), s.key("url"), allow_path=False)
    token = s.required_string("bot_token")
    if any(c.isspace() for c in token):
        s.fail("bot_token", "must not contain spaces")
    team = s.string("team", default="")
    assert team is not None
    return MattermostSettings(
        url=url,
        bot_token=token,
        team=team,
        ca_file=s.existing_file("ca_file", base_dir),
        insecure=s.boolean("insecure", False),
        ping_interval=s.duration("ping_interval", 30.0),
    )


def _parse_deskie(s: _Section, base_dir: str | None) -> DeskieSettings:
    url = _normalise_url(s.required_string("url"), s.key("url"), allow_path=True)
    email = s.required_string("staff_email")
    if "@" not in email or any(c.isspace() for c in email):
        s.fail("staff_email", f"must be the API user's email address, got {email!r}")
    api_key = s.required_string("api_key")
    if any(c.isspace() for c in api_key):
        s.fail("api_key", "must not contain spaces")
    channel = s.required_string("channel")
    if not _CHANNEL_RE.match(channel):
        s.fail("channel", f"must be the custom channel's API code like 'cch12', got {channel!r}")
    return DeskieSettings(
        url=url,
        staff_email=email,
        api_key=api_key,
        channel=channel,
        default_group=s.required_string("default_group", allow_int=True),
        rate_limit_per_minute=s.positive_int_or_null("rate_limit_per_minute"),
        ca_file=s.existing_file("ca_file", base_dir),
        insecure=s.boolean("insecure", False),
    )


def _parse_webhook(s: _Section) -> WebhookSettings:
    listen = s.string("listen", default=DEFAULT_LISTEN, allow_int=True)
    assert listen is not None
    _parse_listen(listen, s.key("listen"))
    secret = s.required_string("secret")
    if not _WEBHOOK_SECRET_RE.match(secret):
        s.fail("secret", "must contain only URL-safe characters: letters, digits, '-', '_', '.', '~'")
    public = s.string("public_url")
    public_url = _normalise_url(public, s.key("public_url"), allow_path=True) if public else None
    if public_url and public_url.endswith("/deskie/webhook"):
        s.fail("public_url", "is the base URL only, without /deskie/webhook/<secret>")
    return WebhookSettings(listen=listen, secret=secret, public_url=public_url)


def _parse_chats(s: _Section) -> ChatsSettings:
    d = ChatsSettings()
    return ChatsSettings(
        mention_only=s.boolean("mention_only", d.mention_only),
        reply_mode=s.choice("reply_mode", REPLY_MODES, d.reply_mode),
        idle_timeout=s.duration("idle_timeout", d.idle_timeout),
        poll_interval=s.duration("poll_interval", d.poll_interval),
        agent_name=s.boolean("agent_name", d.agent_name),
        reactions=s.boolean("reactions", d.reactions),
    )


def _parse_state(s: _Section, base_dir: str | None) -> StateSettings:
    path = s.path("path", base_dir, default=DEFAULT_STATE_PATH)
    assert path is not None
    return StateSettings(path=path)


def _parse_log(s: _Section) -> LogSettings:
    d = LogSettings()
    return LogSettings(
        level=s.choice("level", LOG_LEVELS, d.level),
        format=s.choice("format", LOG_FORMATS, d.format),
    )


def _parse(
    data: object, env: Mapping[str, str] | None, base_dir: str | None, source_path: str | None
) -> Settings:
    if env is None:
        env = os.environ
    if data is None:
        raise ConfigError("the config is empty: expected the sections mattermost, deskie and webhook")
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"the top level must be a mapping of sections (mattermost, deskie, webhook, ...), "
            f"got {_type_name(data)}"
        )
    top = _Section("", data, env)
    top.check_unknown(_SECTION_KEYS)
    for name in _REQUIRED_SECTIONS:
        if name not in data:
            raise ConfigError("section is required", name)
    sections = {name: _sub_section(top, name, required=name in _REQUIRED_SECTIONS) for name in _SECTION_KEYS}
    # Typos first: an unknown key usually explains a "required" error that would follow.
    for name, section in sections.items():
        section.check_unknown(_SECTION_KEYS[name])

    return Settings(
        mattermost=_parse_mattermost(sections["mattermost"], base_dir),
        deskie=_parse_deskie(sections["deskie"], base_dir),
        webhook=_parse_webhook(sections["webhook"]),
        chats=_parse_chats(sections["chats"]),
        state=_parse_state(sections["state"], base_dir),
        log=_parse_log(sections["log"]),
        source_path=source_path,
    )


def parse_config(data: object, env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from an already-parsed YAML document.

    ``env`` (default ``os.environ``) supplies ``${VAR}`` references.  Relative paths (``state.path``,
    ``ca_file``) are left relative to the current directory; ``ca_file`` must exist.
    """
    return _parse(data, env, base_dir=None, source_path=None)


# --------------------------------------------------------------------------------------------------
# Loading the file


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in a mapping (a silently overridden key hides typos)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *anchor" may be overridden on purpose
            continue
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        try:
            duplicate = key in seen
        except TypeError:
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def _yaml_error(path: str, error: yaml.YAMLError) -> ConfigError:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or getattr(error, "context", None) or "cannot parse"
    where = f" line {mark.line + 1}" if mark is not None else ""
    return ConfigError(f"invalid YAML in {path}{where}: {problem}")


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read, parse and validate the YAML config file at ``path``.

    Relative ``state.path`` and ``ca_file`` values are resolved against the file's directory.
    """
    shown = os.fspath(path)
    full = os.path.abspath(os.path.expanduser(shown))
    if not os.path.lexists(full):
        raise ConfigError(f"config file not found: {shown}")
    try:
        with open(full, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {shown}: not UTF-8 text") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, FileNotFoundError):  # e.g. a dangling symlink
            raise ConfigError(f"config file not found: {shown}") from None
        raise ConfigError(f"cannot read config file {shown}: {reason}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _yaml_error(shown, exc) from None
    if data is None:
        raise ConfigError(
            f"config file {shown} is empty: expected the sections mattermost, deskie and webhook"
        )
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config file {shown}: the top level must be a mapping of sections "
            f"(mattermost, deskie, webhook, ...), got {_type_name(data)}"
        )
    return _parse(data, env, base_dir=os.path.dirname(full), source_path=full)
