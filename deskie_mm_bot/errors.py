"""The bot's errors, one tree: what each means to the code that meets it, and the exit code it ends in.

    BotError
    ├── ConfigError(problem, key)   a setting that cannot work — also one the services contradict at
    │                               start (an unknown default group); exit 2, "config error: <key>: …"
    ├── CredentialsRejected         a service refuses the bot's token or key; exit 1, the message names
    │                               the key to fix (MattermostAuthError, DeskieAuthError)
    ├── Unavailable                 a service cannot be reached now: wait and retry; never a reason to
    │                               mark a message failed (MattermostUnavailable, DeskieUnavailable)
    ├── Rejected                    a service refused this one request for good (MattermostRejected,
    │   │                           DeskieRejected)
    │   ├── Gone                    what it was about no longer exists (a case Deskie will not show,
    │   │                           an answer's file Deskie no longer serves: FileGone)
    │   ├── TooLarge                a file over the size the other side takes (FileTooLarge)
    │   └── ChatRefused             the Chat port's "never": PostRefused (the bot left the channel),
    │                               FileNotBrought, ReactionRefused, FileUnavailable (a customer's file)
    ├── Stopping                    the bot is shutting down: the call was not made (BudgetClosed, …)
    └── Fatal(code, message)        anything else that ends the process with a given code

The edges (`mattermost/`, `deskie/`) subclass these; `exit_code_for` is the one place that turns an
error into an exit code. Messages never carry a secret.
"""

from __future__ import annotations

EXIT_OK, EXIT_RUNTIME, EXIT_CONFIG = 0, 1, 2


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class ConfigError(BotError):
    """A problem with the configuration.

    ``key`` is the dotted config key at fault (``"chats.reply_mode"``) or ``None`` for problems with
    the file as a whole.  ``str(error)`` is a single line: ``"<key>: <problem>"`` or ``"<problem>"``.
    """

    def __init__(self, problem: str, key: str | None = None) -> None:
        self.problem = " ".join(str(problem).split())
        self.key = key
        super().__init__(f"{key}: {self.problem}" if key else self.problem)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str | None]]:
        return (type(self), (self.problem, self.key))

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}" if self.key else self.problem


class CredentialsRejected(BotError):
    """The service refuses the bot's credentials: it cannot work on until a person fixes them."""


class Unavailable(BotError):
    """The service cannot be reached now (down, timing out, 5xx): retry later."""


class Rejected(BotError):
    """The service refused this request for good (a 4xx that is not about credentials)."""


class Gone(Rejected):
    """What the request was about no longer exists there (a Deskie case it will not show)."""


class TooLarge(Rejected):
    """A file larger than the receiving service takes."""


class ChatRefused(Rejected):
    """Mattermost will never take or give this (the Chat port's permanent failures)."""


class PostRefused(ChatRefused):
    """Mattermost will never take this post (the bot left the channel, the channel is gone)."""


class FileNotBrought(ChatRefused):
    """An answer's file that will never reach Mattermost (gone, too large, uploads disabled)."""


class ReactionRefused(ChatRefused):
    """The post is gone, the bot left the channel, the emoji is unknown: do not try again."""


class FileUnavailable(ChatRefused):
    """A customer's file Mattermost will never serve (deleted, no access); other errors are transient."""


class Stopping(BotError):
    """The bot is shutting down; the call was not made."""


class Fatal(BotError):
    """Ends the process with ``code``; the message is the one line the admin sees."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def exit_code_for(exc: BaseException) -> int:
    """The process's exit code for an error that ended it."""
    if isinstance(exc, Fatal):
        return exc.code
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, Stopping):
        return EXIT_OK
    return EXIT_RUNTIME


def describe(exc: BaseException) -> str:
    """The one line said when an error ends the process."""
    if isinstance(exc, ConfigError):
        return f"config error: {exc}"
    if isinstance(exc, (Fatal, CredentialsRejected)):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"
