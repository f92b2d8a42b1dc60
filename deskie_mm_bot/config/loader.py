"""Reading the bot's YAML config file into :class:`~.model.Settings`.

Strict YAML (duplicate keys refused), ``${VAR}`` expansion, and one reader per section that knows which
keys were used; the known keys come from the settings dataclasses' fields.  Everything here is stdlib plus
PyYAML; nothing touches the network.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, NoReturn, get_args, get_origin, get_type_hints

import yaml

from .model import (
    DEFAULT_STATE_PATH,
    LOG_FORMATS,
    LOG_LEVELS,
    REPLY_MODES,
    ChatsSettings,
    DeskieSettings,
    LogSettings,
    MattermostSettings,
    Settings,
    StateSettings,
    WebhookSettings,
    WorkspaceSettings,
)
from .values import DEFAULT_LISTEN, ConfigError, normalise_url, parse_duration, parse_listen, show, type_name

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
            shown = raw_key if isinstance(raw_key, str) else show(raw_key)
            hint = ""
            if isinstance(raw_key, str):
                close = difflib.get_close_matches(raw_key, known, n=1, cutoff=0.6)
                if close:
                    hint = f", did you mean {close[0]!r}?"
            raise ConfigError(f"unknown key{hint}", self.key(str(shown)))

    def secret(self, name: str) -> bool:
        return is_secret_key(self.key(name))

    def describe(self, name: str, value: object) -> str:
        """How an offending value is shown: secrets only by their type."""
        return type_name(value) if self.secret(name) else show(value)

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
        self.fail(name, f"must be {options}, got {show(value)}")

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
        raise ConfigError(f"must be a mapping of keys, got {type_name(value)}", name)
    return _Section(name, value, top.env)


def _section_fields() -> dict[str, tuple[type[Any], bool]]:
    """Each field of Settings that holds a section's dataclass (``X | None`` too), or a tuple of them (a
    list in the file), in the file's order: field name -> (dataclass, whether a list)."""
    hints = get_type_hints(Settings)
    found: dict[str, tuple[type[Any], bool]] = {}
    for f in fields(Settings):
        hint = hints[f.name]
        args = [a for a in (get_args(hint) or (hint,)) if a is not type(None) and a is not Ellipsis]
        if len(args) == 1 and isinstance(args[0], type) and is_dataclass(args[0]):
            found[f.name] = (args[0], get_origin(hint) is tuple)
    return found


def _keys_of(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


# The known keys, written once: the sections' field names.  A list section's entries are mappings too.
_TOP_KEYS = tuple(_section_fields())
_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    name: _keys_of(cls) for name, (cls, is_list) in _section_fields().items() if not is_list
}
_ENTRY_KEYS: dict[str, tuple[str, ...]] = {
    name: _keys_of(cls) for name, (cls, is_list) in _section_fields().items() if is_list
}
_REQUIRED_SECTIONS = tuple(
    f.name for f in fields(Settings)
    if f.name in _SECTION_KEYS and f.default is MISSING and f.default_factory is MISSING
)
# The two forms of the Mattermost side: exactly one of them is in the file.
_SINGLE, _SEVERAL = "mattermost", "workspaces"
# Keys whose values are secrets: never echoed in an error message.  An entry of a list is named by its
# key's pattern, without the [name] or [index]: "workspaces.bot_token".
SECRET_KEYS = frozenset(
    f"{name}.{f.name}"
    for name, (cls, _) in _section_fields().items()
    for f in fields(cls)
    if f.metadata.get("secret")
)
_ENTRY_INDEX_RE = re.compile(r"\[[^\]]*\]")


def is_secret_key(key: str) -> bool:
    """Whether the value at ``key`` (``"mattermost.bot_token"``, ``"workspaces[acme].bot_token"``) is a
    secret, never to be shown."""
    return _ENTRY_INDEX_RE.sub("", key) in SECRET_KEYS


_CHANNEL_RE = re.compile(r"^cch\d+$")
_WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_.~-]+$")


def _parse_mattermost(s: _Section, base_dir: str | None) -> MattermostSettings:
    url = normalise_url(s.required_string("url"), s.key("url"), allow_path=False)
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
        routes=_parse_routes(s),
    )


_CHANNEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _parse_routes(s: _Section) -> tuple[tuple[str, str], ...]:
    value, _ = s.raw("routes")
    if value is _MISSING or value is None:
        return ()
    if not isinstance(value, Mapping):
        s.fail("routes", f"must be a mapping of channel name to Deskie group, got {type_name(value)}")
    routes: list[tuple[str, str]] = []
    for channel, group in value.items():
        name = str(channel).lstrip("~") if isinstance(channel, str) else ""
        if not _CHANNEL_NAME_RE.match(name):
            s.fail(f"routes.{channel}", "must be a channel's URL name (lowercase letters, digits, - and _)")
        if isinstance(group, bool) or not isinstance(group, (str, int)) or not str(group).strip():
            s.fail(f"routes.{name}", f"must be a Deskie group id or exact title, got {show(group)}")
        routes.append((name, str(group).strip()))
    return tuple(routes)


# A workspace's name is part of Deskie user ids (<name>:u:<user id>): plain, lowercase, stable.
_WORKSPACE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def workspace_entry_key(index: int, entry: object) -> str:
    """How an entry of ``workspaces:`` is named in messages: by its name when that is valid, else by
    its index (``workspaces[acme]``, ``workspaces[2]``)."""
    name = entry.get("name") if isinstance(entry, Mapping) else None
    if isinstance(name, str) and _WORKSPACE_NAME_RE.match(name.strip()):
        return f"{_SEVERAL}[{name.strip()}]"
    return f"{_SEVERAL}[{index}]"


def _workspace_name(s: _Section) -> str:
    name = s.required_string("name")
    if not _WORKSPACE_NAME_RE.match(name):
        s.fail("name", f"must be lowercase letters, digits and '-', starting with a letter or digit, got {show(name)}")
    return name


def _workspace_sections(top: _Section) -> list[tuple[str, _Section]]:
    """Each entry of ``workspaces:`` as (name, its reader keyed ``workspaces[<name>]``), names checked."""
    value = top.data.get(_SEVERAL)
    if value is None or (isinstance(value, list) and not value):
        raise ConfigError(f"must list at least one workspace (or use {_SINGLE}: for a single one)", _SEVERAL)
    if not isinstance(value, list):
        raise ConfigError(
            f"must be a list of workspaces, each starting with '- name: ...', got {type_name(value)}", _SEVERAL
        )
    known = _ENTRY_KEYS[_SEVERAL]
    found: list[tuple[str, _Section]] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(value):
        where = f"{_SEVERAL}[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"must be a mapping: the keys of {_SINGLE} plus a name, got {type_name(entry)}", where)
        by_index = _Section(where, entry, top.env)
        try:
            name = _workspace_name(by_index)
        except ConfigError:
            by_index.check_unknown(known)  # a typo ("nmae:") explains a missing name
            raise
        key = f"{_SEVERAL}[{name}]"
        if name in seen:
            raise ConfigError(
                f"{name!r} is used twice ({seen[name]} and {where}): each workspace needs its own name", f"{key}.name"
            )
        seen[name] = where
        found.append((name, _Section(key, entry, top.env)))
    return found


def _parse_workspace(s: _Section, name: str, base_dir: str | None) -> WorkspaceSettings:
    section = _parse_mattermost(s, base_dir)
    default_group = s.string("default_group", allow_int=True)
    if default_group == "":
        s.fail("default_group", "must not be empty (leave it out or use null for deskie.default_group)")
    return WorkspaceSettings.of(section, name=name, default_group=default_group)


def _check_distinct_bots(workspaces: Iterable[WorkspaceSettings]) -> None:
    first: dict[tuple[str, str], WorkspaceSettings] = {}
    for ws in workspaces:
        earlier = first.setdefault((ws.url, ws.bot_token), ws)
        if earlier is not ws:
            raise ConfigError(
                f"has the same url and bot_token as {earlier.config_key}: that is one bot, served twice; "
                f"remove one entry or give it its own bot account",
                ws.config_key,
            )


def _check_one_form(top: _Section) -> None:
    """``mattermost:`` or ``workspaces:``, not both, not neither; and no workspace-only key in the first."""
    if _SINGLE in top.data and _SEVERAL in top.data:
        raise ConfigError(
            f"cannot be used together with {_SINGLE}; use {_SINGLE} for one workspace or {_SEVERAL} for several",
            _SEVERAL,
        )
    if _SINGLE not in top.data and _SEVERAL not in top.data:
        raise ConfigError(f"section is required (or {_SEVERAL}: a list of several workspaces)", _SINGLE)
    single = top.data.get(_SINGLE)
    if isinstance(single, Mapping):
        for name in _ENTRY_KEYS[_SEVERAL]:
            if name in single and name not in _SECTION_KEYS[_SINGLE]:
                top.fail(f"{_SINGLE}.{name}", f"unknown key: {name} belongs to an entry of {_SEVERAL}: (the form for "
                                              f"several workspaces)")


def _parse_deskie(s: _Section, base_dir: str | None) -> DeskieSettings:
    url = normalise_url(s.required_string("url"), s.key("url"), allow_path=True)
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
    parse_listen(listen, s.key("listen"))
    secret = s.required_string("secret")
    if not _WEBHOOK_SECRET_RE.match(secret):
        s.fail("secret", "must contain only URL-safe characters: letters, digits, '-', '_', '.', '~'")
    public = s.string("public_url")
    public_url = normalise_url(public, s.key("public_url"), allow_path=True) if public else None
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
            f"got {type_name(data)}"
        )
    top = _Section("", data, env)
    top.check_unknown(_TOP_KEYS)
    _check_one_form(top)
    for name in _REQUIRED_SECTIONS:
        if name not in data:
            raise ConfigError("section is required", name)
    several = _SEVERAL in data
    sections = {
        name: _sub_section(top, name, required=name in _REQUIRED_SECTIONS)
        for name in _SECTION_KEYS
        if not (several and name == _SINGLE)
    }
    entries = _workspace_sections(top) if several else []
    # Typos first: an unknown key usually explains a "required" error that would follow.
    for name, section in sections.items():
        section.check_unknown(_SECTION_KEYS[name])
    for _, entry in entries:
        entry.check_unknown(_ENTRY_KEYS[_SEVERAL])

    workspaces = tuple(_parse_workspace(entry, name, base_dir) for name, entry in entries)
    _check_distinct_bots(workspaces)
    return Settings(
        mattermost=None if several else _parse_mattermost(sections[_SINGLE], base_dir),
        workspaces=workspaces,
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
            f"(mattermost, deskie, webhook, ...), got {type_name(data)}"
        )
    return _parse(data, env, base_dir=os.path.dirname(full), source_path=full)
