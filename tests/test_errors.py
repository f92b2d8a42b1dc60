"""The one error tree: each edge's errors are of the kind they mean, and one place picks the exit code."""

from __future__ import annotations

import pickle

import pytest

from deskie_mm_bot import errors
from deskie_mm_bot.config import ConfigError
from deskie_mm_bot.deskie.client import DeskieAuthError, DeskieRejected, DeskieUnavailable, Stopping
from deskie_mm_bot.deskie.ratebudget import BudgetClosed
from deskie_mm_bot.errors import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_RUNTIME,
    CredentialsRejected,
    Fatal,
    Rejected,
    Unavailable,
    describe,
    exit_code_for,
)
from deskie_mm_bot.mattermost.rest import MattermostAuthError, MattermostRejected, MattermostUnavailable


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (DeskieAuthError("Deskie rejected the API key (HTTP 401): check deskie.api_key"), CredentialsRejected),
        (MattermostAuthError("mattermost.bot_token: rejected (401)"), CredentialsRejected),
        (DeskieUnavailable("Deskie answered HTTP 503", maybe_applied=True), Unavailable),
        (MattermostUnavailable("timeout"), Unavailable),
        (DeskieRejected(404, "case_not_found", "/api/cases/1.json"), Rejected),
        (MattermostRejected(403, "api.context.permissions.app_error", "not a member"), Rejected),
        (Stopping("stopping"), errors.Stopping),
        (BudgetClosed(), errors.Stopping),
    ],
)
def test_edge_errors_are_of_the_kind_they_mean(error: Exception, kind: type[Exception]) -> None:
    assert isinstance(error, kind) and isinstance(error, errors.BotError)


def test_the_exit_code_comes_from_the_error() -> None:
    assert exit_code_for(ConfigError("must be group_chat or thread", "chats.reply_mode")) == EXIT_CONFIG
    assert exit_code_for(Fatal(EXIT_CONFIG, "config error: deskie.default_group: no group 'Sales'")) == EXIT_CONFIG
    assert exit_code_for(DeskieAuthError("check deskie.staff_email")) == EXIT_RUNTIME
    assert exit_code_for(MattermostUnavailable("down")) == EXIT_RUNTIME
    assert exit_code_for(KeyError("bug")) == EXIT_RUNTIME
    assert exit_code_for(BudgetClosed()) == EXIT_OK


def test_one_line_for_each_and_config_errors_survive_pickling() -> None:
    err = ConfigError("must be a duration", "chats.idle_timeout")
    assert describe(err) == "config error: chats.idle_timeout: must be a duration"
    assert describe(DeskieAuthError("check deskie.api_key")) == "check deskie.api_key"
    assert describe(ValueError("x")) == "internal error: ValueError: x"
    again = pickle.loads(pickle.dumps(err))
    assert (again.key, again.problem, type(again)) == (err.key, err.problem, ConfigError)
    assert isinstance(err, errors.ConfigError)
