"""The bot's settings: one frozen dataclass per section of the YAML config file.

The file format is the contract in ``docs/design.md`` ("Config file (YAML)").  The field names are the
config keys: the loader derives the known keys from them, and a field marked ``metadata=SECRET`` is never
echoed in an error message.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from urllib.parse import SplitResult, urlsplit

from .values import DEFAULT_LISTEN, parse_listen

REPLY_MODES = ("group_chat", "thread")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
DEFAULT_STATE_PATH = "deskie-mm-bot.sqlite3"
WEBHOOK_SECRET_MIN_LENGTH = 16

SECRET = {"secret": True}  # field metadata of a value never shown (bot token, API key, webhook secret)


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
    bot_token: str = field(repr=False, metadata=SECRET)
    team: str = ""
    ca_file: str | None = None
    insecure: bool = False
    ping_interval: float = 30.0
    # Channel name (URL name, without ~) -> Deskie group (id or exact title) for chats started there.
    routes: tuple[tuple[str, str], ...] = ()

    def route_for(self, channel_name: str) -> str | None:
        """The group a chat started in this channel goes to; None: the default group."""
        return dict(self.routes).get(channel_name)


@dataclass(frozen=True)
class DeskieSettings(_ServiceUrl):
    """``deskie:`` section.  ``url`` is normalised like Mattermost's (trailing slash stripped)."""

    url: str
    staff_email: str
    api_key: str = field(repr=False, metadata=SECRET)
    channel: str
    default_group: str
    rate_limit_per_minute: int | None = None
    ca_file: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class WebhookSettings:
    """``webhook:`` section.  ``host``/``port`` are derived from ``listen`` (``host:port``, ``[v6]:port``)."""

    listen: str = DEFAULT_LISTEN
    secret: str = field(default="", repr=False, metadata=SECRET)
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
        return parse_listen(self.listen, "webhook.listen")[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen, "webhook.listen")[1]

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
class WorkspaceSettings(MattermostSettings):
    """One Mattermost workspace the bot serves: an entry of ``workspaces:``, or the ``mattermost:`` section.

    The single ``mattermost:`` form becomes one of these with ``name`` ``""`` and no ``default_group``, so
    the rest of the bot handles one workspace and several the same way.
    """

    name: str = ""  # "" only for the single `mattermost:` form
    # Overrides deskie.default_group for this workspace's DMs and unrouted channels; None: deskie's.
    default_group: str | None = None

    @property
    def config_key(self) -> str:
        """Where this workspace sits in the file: the prefix of its keys in error messages."""
        return f"workspaces[{self.name}]" if self.name else "mattermost"

    def group_for_default(self, deskie_default: str) -> str:
        """The group for chats no route sends elsewhere: this workspace's own, else deskie.default_group."""
        return self.default_group or deskie_default

    @classmethod
    def of(cls, section: MattermostSettings, *, name: str = "", default_group: str | None = None) -> WorkspaceSettings:
        """The workspace with ``section``'s values (the ``mattermost:`` keys) and the given name."""
        values = {f.name: getattr(section, f.name) for f in fields(MattermostSettings)}
        return cls(**values, name=name, default_group=default_group)


@dataclass(frozen=True)
class Settings:
    """The whole file: each field holding a section's dataclass is a section of the same name.

    ``mattermost`` (one workspace) and ``workspaces`` (several) are the two forms of the same thing; the
    file holds one of them.  ``workspaces`` is never empty: built with ``mattermost`` only, it holds that
    section as the one workspace named ``""``.
    """

    mattermost: MattermostSettings | None = field(default=None, kw_only=True)
    workspaces: tuple[WorkspaceSettings, ...] = field(default=(), kw_only=True)
    deskie: DeskieSettings
    webhook: WebhookSettings
    chats: ChatsSettings = field(default_factory=ChatsSettings)
    state: StateSettings = field(default_factory=StateSettings)
    log: LogSettings = field(default_factory=LogSettings)
    source_path: str | None = None

    def __post_init__(self) -> None:
        if self.mattermost is not None:
            # A stale single workspace is re-derived: dataclasses.replace(settings, mattermost=...) passes
            # the old one along with the new section.
            if any(ws.name for ws in self.workspaces):
                raise ValueError("Settings takes mattermost or named workspaces, not both")
            object.__setattr__(self, "workspaces", (WorkspaceSettings.of(self.mattermost),))
            return
        if not self.workspaces:
            raise ValueError("Settings needs mattermost or workspaces")
        object.__setattr__(self, "workspaces", tuple(self.workspaces))
        names = [ws.name for ws in self.workspaces]
        if not all(names) or len(set(names)) != len(names):
            raise ValueError(f"workspaces need distinct non-empty names, got {names!r}")

    @property
    def several(self) -> bool:
        """The ``workspaces:`` form (even with one entry): Deskie user ids and names carry the workspace."""
        return self.mattermost is None

    def named_groups(self) -> list[tuple[str, str]]:
        """(group, config key) of every Deskie group named besides deskie.default_group: each
        workspace's default group and routes (checked at start and by `check --online`)."""
        named: list[tuple[str, str]] = []
        for ws in self.workspaces:
            if ws.default_group is not None:
                named.append((ws.default_group, f"{ws.config_key}.default_group"))
            named.extend((wanted, f"{ws.config_key}.routes.{channel}") for channel, wanted in ws.routes)
        return named

    def workspace(self, name: str) -> WorkspaceSettings:
        """The workspace of that name (``""`` for the single form); KeyError if there is none."""
        for ws in self.workspaces:
            if ws.name == name:
                return ws
        raise KeyError(name)

    def secrets(self) -> list[str]:
        """Every bot token, the API key and the webhook secret (the non-empty ones, once each), for log
        redaction."""
        values = [ws.bot_token for ws in self.workspaces] + [self.deskie.api_key, self.webhook.secret]
        return list(dict.fromkeys(v for v in values if v))
