"""Tests for deskie_mm_bot.config: loading, validation, env expansion, error messages."""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from deskie_mm_bot.config import (
    ChatsSettings,
    ConfigError,
    LogSettings,
    Settings,
    StateSettings,
    load_config,
    parse_config,
    parse_duration,
    redact,
)

REPO_ROOT = Path(__file__).resolve().parents[2]  # tests/unit/test_config.py -> the checkout
EXAMPLE = REPO_ROOT / "bot_config.example.yaml"

TOKEN = "mmtoken1234567890abcdefgh"
API_KEY = "deskiekey_0987654321zyxw"
SECRET = "webhook-secret-0123456789_abc"
ENV = {"MM_BOT_TOKEN": TOKEN, "DESKIE_API_KEY": API_KEY, "DESKIE_WEBHOOK_SECRET": SECRET}

MINIMAL: dict[str, Any] = {
    "mattermost": {"url": "https://chat.example.com", "bot_token": TOKEN},
    "deskie": {
        "url": "https://acme.deskie.io",
        "staff_email": "bot@acme.com",
        "api_key": API_KEY,
        "channel": "cch12",
        "default_group": "Support",
    },
    "webhook": {"secret": SECRET},
}


def config(**overrides: dict[str, Any]) -> dict[str, Any]:
    """MINIMAL with per-section overrides merged in (a value of _DROP removes the key)."""
    data = copy.deepcopy(MINIMAL)
    for section, values in overrides.items():
        target = data.setdefault(section, {})
        for key, value in values.items():
            if value is _DROP:
                target.pop(key, None)
            else:
                target[key] = value
    return data


_DROP = object()


def error_of(data: object, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env=env if env is not None else {})
    return info.value


def write(tmp_path: Path, text: str, name: str = "bot_config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the example file -----------------------------------------------------------------------------


def test_example_file_loads_with_env_vars_set() -> None:
    settings = load_config(EXAMPLE, env=ENV)
    assert settings.mattermost.url == "https://chat.example.com"
    assert settings.mattermost.bot_token == TOKEN
    assert settings.deskie.api_key == API_KEY
    assert settings.webhook.secret == SECRET
    assert settings.deskie.channel == "cch12"
    assert settings.chats.idle_timeout == 600.0
    assert settings.chats.poll_interval == 30.0
    assert settings.source_path == str(EXAMPLE)
    assert settings.state.path == str(REPO_ROOT / "deskie-mm-bot.sqlite3")


def test_example_file_mentions_every_key_of_the_contract() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for key in (
        "url:", "bot_token:", "team:", "ca_file:", "insecure:", "staff_email:", "api_key:", "channel:",
        "default_group:", "rate_limit_per_minute:", "listen:", "secret:", "mention_only:", "reply_mode:",
        "idle_timeout:", "poll_interval:", "path:", "level:", "format:",
    ):  # fmt: skip
        assert key in text
    for var in ("${MM_BOT_TOKEN}", "${DESKIE_API_KEY}", "${DESKIE_WEBHOOK_SECRET}"):
        assert var in text


def test_example_file_without_env_names_the_missing_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, env={})
    assert str(info.value) == "mattermost.bot_token: environment variable MM_BOT_TOKEN is not set"


# --- load_config: file-level errors --------------------------------------------------------------


def test_missing_file_is_reported_without_key(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    assert info.value.key is None
    assert str(info.value) == f"config file not found: {path}"


def test_unreadable_file_is_reported_with_reason(tmp_path: Path) -> None:
    # A directory cannot be read as a file, even by root (chmod 000 does not stop root).
    path = tmp_path / "dir.yaml"
    path.mkdir()
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    message = str(info.value)
    assert info.value.key is None
    assert message.startswith(f"cannot read config file {path}: ")
    assert "\n" not in message


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads chmod 000 files")
def test_file_without_read_permission_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "mattermost: {}\n")
    path.chmod(0)
    try:
        with pytest.raises(ConfigError) as info:
            load_config(path, env=ENV)
    finally:
        path.chmod(0o600)
    assert str(info.value).startswith(f"cannot read config file {path}: ")


def test_bad_yaml_reports_the_line_number_on_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "mattermost:\n  url: https://x\n  bot_token: [unclosed\nwebhook: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    message = str(info.value)
    assert message.startswith(f"invalid YAML in {path} line ")
    assert "\n" not in message
    line = int(message.split(" line ")[1].split(":")[0])
    assert line in (3, 4)


def test_bad_yaml_indentation_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "mattermost:\n  url: a\n   bot_token: b\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    assert str(info.value).startswith(f"invalid YAML in {path} line 3: ")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "log:\n  level: info\n  level: debug\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    assert str(info.value) == f"invalid YAML in {path} line 3: duplicate key 'level'"


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mattermost: {url: chat.example.com, bot_token: t}\n"
        "deskie: {url: d.deskie.io, staff_email: a@b, api_key: k, channel: cch1, default_group: 1}\n"
        f"webhook: {{secret: {SECRET}}}\n"
        "chats:\n  <<: {mention_only: false, reply_mode: thread}\n  reply_mode: group_chat\n",
    )
    settings = load_config(path, env={})
    assert settings.chats == ChatsSettings(mention_only=False, reply_mode="group_chat")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- mattermost\n- deskie\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    assert info.value.key is None
    assert "top level must be a mapping" in str(info.value)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing here\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    assert "is empty" in str(info.value)


def test_parse_config_rejects_non_mapping() -> None:
    assert "top level must be a mapping" in str(error_of(["x"]))
    assert "empty" in str(error_of(None))


# --- required sections and keys ------------------------------------------------------------------


@pytest.mark.parametrize("section", ["mattermost", "deskie", "webhook"])
def test_missing_required_section(section: str) -> None:
    data = config()
    del data[section]
    assert str(error_of(data)).startswith(f"{section}: section is required")


def test_missing_mattermost_section_names_workspaces_as_the_alternative() -> None:
    data = config()
    del data["mattermost"]
    err = error_of(data)
    assert err.key == "mattermost"
    assert "workspaces" in err.problem


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("mattermost", "url"),
        ("mattermost", "bot_token"),
        ("deskie", "url"),
        ("deskie", "staff_email"),
        ("deskie", "api_key"),
        ("deskie", "channel"),
        ("deskie", "default_group"),
        ("webhook", "secret"),
    ],
)
def test_missing_required_key(section: str, key: str) -> None:
    err = error_of(config(**{section: {key: _DROP}}))
    assert str(err) == f"{section}.{key}: is required"
    assert err.key == f"{section}.{key}"


@pytest.mark.parametrize("blank", ["", "   ", None])
def test_blank_required_value_is_required(blank: str | None) -> None:
    assert str(error_of(config(mattermost={"bot_token": blank}))) == "mattermost.bot_token: is required"


def test_empty_required_section_reports_its_first_key() -> None:
    data = config()
    data["mattermost"] = None
    assert str(error_of(data)) == "mattermost.url: is required"


def test_section_must_be_a_mapping() -> None:
    data = config()
    data["chats"] = ["thread"]
    assert str(error_of(data)) == "chats: must be a mapping of keys, got a list"


# --- unknown keys --------------------------------------------------------------------------------


def test_unknown_nested_key_names_dotted_path_with_hint() -> None:
    err = error_of(config(chats={"reply_mod": "thread"}))
    assert err.key == "chats.reply_mod"
    assert str(err).startswith("chats.reply_mod: unknown key")
    assert "did you mean 'reply_mode'?" in str(err)


def test_unknown_top_level_key() -> None:
    data = config()
    data["chat"] = {}
    err = error_of(data)
    assert str(err) == "chat: unknown key, did you mean 'chats'?"


def test_unknown_key_without_close_match_has_no_hint() -> None:
    assert str(error_of(config(log={"colour": True}))) == "log.colour: unknown key"


def test_unknown_key_is_reported_before_a_missing_one() -> None:
    err = error_of(config(mattermost={"bot_token": _DROP, "bot_tokn": "x"}))
    assert str(err) == "mattermost.bot_tokn: unknown key, did you mean 'bot_token'?"


# --- values --------------------------------------------------------------------------------------


def test_bad_reply_mode_message() -> None:
    err = error_of(config(chats={"reply_mode": "threads"}))
    assert str(err) == "chats.reply_mode: must be group_chat or thread, got 'threads'"


def test_string_for_boolean_is_an_error() -> None:
    err = error_of(config(chats={"mention_only": "yes"}))
    assert str(err) == "chats.mention_only: must be true or false, got 'yes'"


def test_yaml_yes_is_a_boolean(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("mention_only: true", "mention_only: no")
    settings = load_config(write(tmp_path, text), env=ENV)
    assert settings.chats.mention_only is False


def test_boolean_from_env_reference() -> None:
    data = config(mattermost={"insecure": "${MM_INSECURE:-false}"})
    assert parse_config(data, env={}).mattermost.insecure is False
    assert parse_config(data, env={"MM_INSECURE": "true"}).mattermost.insecure is True


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("level", "verbose", "log.level: must be debug, info, warning or error, got 'verbose'"),
        ("format", "xml", "log.format: must be text or json, got 'xml'"),
    ],
)
def test_bad_log_settings(key: str, value: str, message: str) -> None:
    assert str(error_of(config(log={key: value}))) == message


def test_log_level_is_case_insensitive() -> None:
    assert parse_config(config(log={"level": "DEBUG"}), env={}).log.level == "debug"


@pytest.mark.parametrize("channel", ["12", "cch", "CCH12", "cch12x", "chat"])
def test_bad_deskie_channel(channel: str) -> None:
    err = error_of(config(deskie={"channel": channel}))
    assert err.key == "deskie.channel"
    assert "cch12" in str(err)


def test_staff_email_needs_an_at_sign() -> None:
    assert error_of(config(deskie={"staff_email": "bot.acme.com"})).key == "deskie.staff_email"


def test_default_group_accepts_a_numeric_id_and_a_title() -> None:
    assert parse_config(config(deskie={"default_group": 44}), env={}).deskie.default_group == "44"
    titled = parse_config(config(deskie={"default_group": "First line"}), env={})
    assert titled.deskie.default_group == "First line"


@pytest.mark.parametrize(("value", "expected"), [(None, None), (20, 20), ("${RPM}", 30)])
def test_rate_limit_per_minute(value: object, expected: int | None) -> None:
    settings = parse_config(config(deskie={"rate_limit_per_minute": value}), env={"RPM": "30"})
    assert settings.deskie.rate_limit_per_minute == expected


@pytest.mark.parametrize("value", [0, -5, 2.5, "20", True])
def test_bad_rate_limit_per_minute(value: object) -> None:
    err = error_of(config(deskie={"rate_limit_per_minute": value}))
    assert err.key == "deskie.rate_limit_per_minute"
    assert "positive whole number" in str(err)


def test_wrong_type_for_string_key() -> None:
    assert str(error_of(config(mattermost={"team": ["a"]}))) == "mattermost.team: must be a string, got list"


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("90s", 90.0), ("10m", 600.0), ("1h", 3600.0), ("1h30m", 5400.0), (45, 45.0), (2.5, 2.5),
     ("45", 45.0), (" 10m ", 600.0), ("1.5m", 90.0)],
)  # fmt: skip
def test_durations_parse(value: object, seconds: float) -> None:
    assert parse_duration(value, "chats.idle_timeout") == seconds


@pytest.mark.parametrize("value", ["10 minutes", "-5s", 0, "0s", -1, "", "abc", True, None, [1], "nan"])
def test_bad_durations_name_the_key(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(value, "chats.poll_interval")
    assert info.value.key == "chats.poll_interval"
    assert str(info.value).startswith("chats.poll_interval: ")


def test_non_positive_duration_message() -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration("-5s", "chats.idle_timeout")
    assert str(info.value) == "chats.idle_timeout: must be greater than 0, got '-5s'"
    with pytest.raises(ConfigError) as info:
        parse_duration(0, "chats.idle_timeout")
    assert str(info.value) == "chats.idle_timeout: must be greater than 0, got 0"


def test_bad_duration_in_config_names_the_key() -> None:
    err = error_of(config(chats={"idle_timeout": "10 minutes"}))
    assert str(err).startswith("chats.idle_timeout: must be a duration like 90s, 10m, 1h")
    assert "'10 minutes'" in str(err)


def test_durations_in_config() -> None:
    settings = parse_config(config(chats={"idle_timeout": "1h", "poll_interval": 45}), env={})
    assert settings.chats.idle_timeout == 3600.0
    assert settings.chats.poll_interval == 45.0


# --- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "url", "scheme", "host", "port"),
    [
        ("chat.example.com", "https://chat.example.com", "https", "chat.example.com", 443),
        ("chat.example.com:8065", "https://chat.example.com:8065", "https", "chat.example.com", 8065),
        ("https://chat.example.com/", "https://chat.example.com", "https", "chat.example.com", 443),
        ("http://127.0.0.1:8065", "http://127.0.0.1:8065", "http", "127.0.0.1", 8065),
        ("http://localhost", "http://localhost", "http", "localhost", 80),
        ("HTTPS://Chat.Example.com", "https://chat.example.com", "https", "chat.example.com", 443),
        ("http://[::1]:8065/", "http://[::1]:8065", "http", "::1", 8065),
    ],
)
def test_mattermost_url_is_normalised(raw: str, url: str, scheme: str, host: str, port: int) -> None:
    mm = parse_config(config(mattermost={"url": raw}), env={}).mattermost
    assert (mm.url, mm.scheme, mm.host, mm.port) == (url, scheme, host, port)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("ftp://x", "must be an http:// or https:// URL, got 'ftp://x'"),
        ("http://", "must include a host name, got 'http://'"),
        ("https://chat.example.com/mattermost", "without a path"),
        ("https://chat.example.com:99999", "invalid port"),
        ("https://chat.example.com/?a=1", "query"),
        ("https://chat example.com", "spaces"),
    ],
)
def test_bad_mattermost_url(raw: str, problem: str) -> None:
    err = error_of(config(mattermost={"url": raw}))
    assert err.key == "mattermost.url"
    assert str(err).startswith("mattermost.url: ")
    assert problem in str(err)


def test_url_with_credentials_does_not_echo_them() -> None:
    err = error_of(config(mattermost={"url": "https://admin:hunter2pass@chat.example.com"}))
    assert err.key == "mattermost.url"
    assert "hunter2pass" not in str(err)


def test_deskie_url_bare_host_and_trailing_slash() -> None:
    deskie = parse_config(config(deskie={"url": "acme.deskie.io/"}), env={}).deskie
    assert deskie.url == "https://acme.deskie.io"
    assert (deskie.scheme, deskie.host, deskie.port) == ("https", "acme.deskie.io", 443)


def test_bad_deskie_url() -> None:
    assert str(error_of(config(deskie={"url": "ftp://acme"}))).startswith("deskie.url: must be an http")


# --- environment expansion -----------------------------------------------------------------------


def test_unset_env_var_is_named() -> None:
    err = error_of(config(mattermost={"bot_token": "${MM_BOT_TOKEN}"}), env={})
    assert str(err) == "mattermost.bot_token: environment variable MM_BOT_TOKEN is not set"
    assert err.key == "mattermost.bot_token"


def test_env_var_default_syntax() -> None:
    data = config(
        mattermost={"team": "${MM_TEAM:-support}", "url": "https://${MM_HOST:-chat.example.com}:8065"},
        log={"level": "${LOG_LEVEL:-warning}"},
    )
    unset = parse_config(data, env={})
    assert unset.mattermost.team == "support"
    assert unset.mattermost.url == "https://chat.example.com:8065"
    assert unset.log.level == "warning"
    empty = parse_config(data, env={"MM_TEAM": ""})
    assert empty.mattermost.team == "support"
    given = parse_config(data, env={"MM_TEAM": "ops", "MM_HOST": "mm.local", "LOG_LEVEL": "debug"})
    assert (given.mattermost.team, given.mattermost.url, given.log.level) == (
        "ops",
        "https://mm.local:8065",
        "debug",
    )


def test_env_var_with_empty_default() -> None:
    assert parse_config(config(mattermost={"team": "${MM_TEAM:-}"}), env={}).mattermost.team == ""


def test_env_var_set_but_empty_for_required_key() -> None:
    err = error_of(config(deskie={"api_key": "${DESKIE_API_KEY}"}), env={"DESKIE_API_KEY": "  "})
    assert str(err) == "deskie.api_key: is required"


def test_env_expansion_in_durations_and_paths() -> None:
    data = config(chats={"poll_interval": "${POLL:-1m}"}, state={"path": "${STATE_DIR}/bot.sqlite3"})
    settings = parse_config(data, env={"STATE_DIR": "/var/lib/bot"})
    assert settings.chats.poll_interval == 60.0
    assert settings.state.path == "/var/lib/bot/bot.sqlite3"


@pytest.mark.parametrize("value", ["${1BAD}", "${}", "${MM_TEAM"])
def test_malformed_env_reference(value: str) -> None:
    err = error_of(config(mattermost={"team": value}))
    assert err.key == "mattermost.team"
    assert "environment reference" in str(err)


def test_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MM_BOT_TOKEN", TOKEN)
    settings = parse_config(config(mattermost={"bot_token": "${MM_BOT_TOKEN}"}))
    assert settings.mattermost.bot_token == TOKEN


# --- secrets -------------------------------------------------------------------------------------


def test_short_webhook_secret_is_accepted_but_flagged_weak() -> None:
    settings = parse_config(config(webhook={"secret": "short-secret"}))
    assert settings.webhook.secret == "short-secret"
    assert settings.webhook.weak_secret
    assert not parse_config(config(webhook={"secret": "a-much-longer-secret-value"})).webhook.weak_secret


def test_webhook_secret_with_unsafe_characters_is_not_echoed() -> None:
    secret = "this/is?not#url&safe!!"
    err = error_of(config(webhook={"secret": secret}))
    assert err.key == "webhook.secret"
    assert "URL-safe" in str(err)
    assert secret not in str(err)
    assert "this" not in str(err)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("mattermost", "bot_token", "tok with spaces-123456"),
        ("deskie", "api_key", "key with spaces-123456"),
        ("mattermost", "bot_token", 123456789123),
        ("deskie", "api_key", ["key-in-a-list-123456"]),
        ("webhook", "secret", 12345678901234567890),
    ],
)
def test_secret_values_never_appear_in_errors(section: str, key: str, value: object) -> None:
    err = error_of(config(**{section: {key: value}}))
    assert err.key == f"{section}.{key}"
    text = str(err) + repr(err) + repr(err.args)
    assert str(value) not in text
    for word in str(value).split():
        if len(word) > 4:
            assert word not in text


def test_settings_repr_hides_secrets() -> None:
    settings = load_config(EXAMPLE, env=ENV)
    text = repr(settings)
    for secret in (TOKEN, API_KEY, SECRET):
        assert secret not in text


def test_secrets_lists_the_non_empty_secrets() -> None:
    settings = parse_config(config(), env={})
    assert settings.secrets() == [TOKEN, API_KEY, SECRET]


def test_redact_replaces_every_occurrence() -> None:
    text = f"token={TOKEN} key={API_KEY} again {TOKEN}"
    assert redact(text, [TOKEN, API_KEY, ""]) == "token=*** key=*** again ***"
    assert redact("nothing here", []) == "nothing here"


def test_redact_prefers_the_longer_of_overlapping_secrets() -> None:
    assert redact("abcdef", ["abc", "abcdef"]) == "***"


# --- defaults ------------------------------------------------------------------------------------


def test_defaults_applied_for_optional_sections_and_keys() -> None:
    settings = parse_config(config(), env={})
    assert isinstance(settings, Settings)
    assert settings.chats == ChatsSettings(
        mention_only=True, reply_mode="group_chat", idle_timeout=600.0, poll_interval=30.0
    )
    assert settings.state == StateSettings(path="deskie-mm-bot.sqlite3")
    assert settings.log == LogSettings(level="info", format="text")
    assert settings.webhook.listen == "127.0.0.1:8085"
    assert (settings.webhook.host, settings.webhook.port) == ("127.0.0.1", 8085)
    assert settings.mattermost.team == ""
    assert settings.mattermost.ca_file is None
    assert settings.mattermost.insecure is False
    assert settings.deskie.insecure is False
    assert settings.deskie.rate_limit_per_minute is None
    assert settings.source_path is None


def test_empty_optional_sections_use_defaults() -> None:
    data = config()
    data.update({"chats": None, "state": None, "log": {}})
    settings = parse_config(data, env={})
    assert settings.chats == ChatsSettings()
    assert settings.log == LogSettings()


def test_settings_are_frozen() -> None:
    settings = parse_config(config(), env={})
    with pytest.raises(AttributeError):
        settings.chats.reply_mode = "thread"  # type: ignore[misc]


# --- paths ---------------------------------------------------------------------------------------


def test_relative_state_path_is_resolved_against_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "path: deskie-mm-bot.sqlite3", "path: data/state.sqlite3"
    )
    settings = load_config(write(conf_dir, text), env=ENV)
    assert settings.state.path == str(conf_dir / "data" / "state.sqlite3")


def test_default_state_path_sits_next_to_the_config(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("  path: deskie-mm-bot.sqlite3\n", "")
    settings = load_config(write(tmp_path, text), env=ENV)
    assert settings.state.path == str(tmp_path / "deskie-mm-bot.sqlite3")


def test_absolute_state_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "bot.sqlite3"
    text = EXAMPLE.read_text(encoding="utf-8").replace("path: deskie-mm-bot.sqlite3", f"path: {target}")
    settings = load_config(write(tmp_path, text), env=ENV)
    assert settings.state.path == str(target)


def test_parse_config_leaves_relative_state_path_alone() -> None:
    settings = parse_config(config(state={"path": "x/state.db"}), env={})
    assert settings.state.path == "x/state.db"


def test_ca_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    err = error_of(config(deskie={"ca_file": str(missing)}))
    assert err.key == "deskie.ca_file"
    assert str(missing) in str(err)


def test_ca_file_relative_to_config_dir(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "  ca_file: null\n\n  # Skip TLS certificate verification. Default false. Only",
        "  ca_file: ca.pem\n\n  # Skip TLS certificate verification. Default false. Only",
    )
    settings = load_config(write(tmp_path, text), env=ENV)
    assert settings.mattermost.ca_file == str(tmp_path / "ca.pem")


def test_ca_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    err = error_of(config(mattermost={"ca_file": str(tmp_path)}))
    assert err.key == "mattermost.ca_file"


# --- insecure flag -------------------------------------------------------------------------------


def test_insecure_flag_parsed_for_both_services() -> None:
    settings = parse_config(config(mattermost={"insecure": True}, deskie={"insecure": True}), env={})
    assert settings.mattermost.insecure is True
    assert settings.deskie.insecure is True


def test_insecure_must_be_boolean() -> None:
    err = error_of(config(deskie={"insecure": "true"}))
    assert str(err) == "deskie.insecure: must be true or false, got 'true'"


def test_insecure_is_not_allowed_elsewhere() -> None:
    assert str(error_of(config(webhook={"insecure": True}))).startswith("webhook.insecure: unknown key")


# --- webhook.listen ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:8085", "127.0.0.1", 8085),
        ("0.0.0.0:80", "0.0.0.0", 80),
        ("localhost:0", "localhost", 0),
        ("[::1]:8085", "::1", 8085),
        ("[::]:65535", "::", 65535),
    ],
)
def test_listen_parsing(listen: str, host: str, port: int) -> None:
    webhook = parse_config(config(webhook={"listen": listen}), env={}).webhook
    assert webhook.listen == listen
    assert (webhook.host, webhook.port) == (host, port)


@pytest.mark.parametrize(
    "listen", ["8085", 8085, "127.0.0.1", "127.0.0.1:", ":8085", "127.0.0.1:65536", "host:http", "::1:8085",
               "[::1]8085", "[]:80", "127.0.0.1:-1"],
)  # fmt: skip
def test_bad_listen(listen: object) -> None:
    err = error_of(config(webhook={"listen": listen}))
    assert err.key == "webhook.listen"


def test_listen_port_out_of_range_message() -> None:
    err = error_of(config(webhook={"listen": "127.0.0.1:70000"}))
    assert str(err) == "webhook.listen: port must be between 0 and 65535, got 70000"


# --- ConfigError ---------------------------------------------------------------------------------


def test_config_error_is_one_line_and_picklable() -> None:
    err = ConfigError("first line\nsecond line", key="a.b")
    assert str(err) == "a.b: first line second line"
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.key) == (str(err), "a.b")
    assert str(ConfigError("whole file")) == "whole file"
    assert ConfigError("whole file").key is None


def test_webhook_public_url_is_optional_normalised_and_never_holds_the_path() -> None:
    assert parse_config(config()).webhook.public_url is None
    settings = parse_config(config(webhook={"secret": "a-much-longer-secret-value", "public_url": "bot.example.com/"}))
    assert settings.webhook.public_url == "https://bot.example.com"
    assert settings.webhook.webhook_url("***") == "https://bot.example.com/deskie/webhook/***"
    err = error_of(config(webhook={"secret": "s3cret-s3cret-s3cret", "public_url": "https://x.test/deskie/webhook"}))
    assert err.key == "webhook.public_url"
    assert error_of(config(webhook={"secret": "s3cret-s3cret-s3cret", "public_url": "ftp://x"})).key == "webhook.public_url"


def test_mattermost_routes_map_channel_names_to_groups_and_name_the_bad_key() -> None:
    assert parse_config(config()).mattermost.routes == ()
    assert parse_config(config(mattermost={"routes": {}})).mattermost.routes == ()
    settings = parse_config(config(mattermost={"routes": {"billing": "Billing", "~vip": 44}}))
    assert settings.mattermost.route_for("billing") == "Billing" and settings.mattermost.route_for("vip") == "44"
    assert settings.mattermost.route_for("support") is None
    assert error_of(config(mattermost={"routes": ["billing"]})).key == "mattermost.routes"
    assert error_of(config(mattermost={"routes": {"Bad Name": "x"}})).key == "mattermost.routes.Bad Name"
    assert error_of(config(mattermost={"routes": {"billing": ""}})).key == "mattermost.routes.billing"
