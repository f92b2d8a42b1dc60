"""The `workspaces:` form: several Mattermost workspaces instead of the one `mattermost:` section."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deskie_mm_bot.cli import _warn_insecure
from deskie_mm_bot.config import (
    MattermostSettings,
    Settings,
    WorkspaceSettings,
    is_secret_key,
    load_config,
    parse_config,
)
from deskie_mm_bot.placeholders import find_placeholders
from tests.unit.test_config import API_KEY, ENV, EXAMPLE, SECRET, TOKEN, config, error_of, write

TOKEN_2 = "globextoken0987654321zyxwvu"


def several(*entries: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    """MINIMAL with `workspaces:` (default: acme and globex) in place of `mattermost:`."""
    data = config(**sections)
    del data["mattermost"]
    data["workspaces"] = [copy.deepcopy(e) for e in entries] or [
        {"name": "acme", "url": "https://chat.acme.example", "bot_token": TOKEN},
        {"name": "globex", "url": "mm.globex.example:8065", "bot_token": TOKEN_2, "team": "support"},
    ]
    return data


def entry(name: object = "acme", **values: Any) -> dict[str, Any]:
    return {"name": name, "url": "https://chat.acme.example", "bot_token": TOKEN, **values}


# --- the single form, seen as one workspace ----------------------------------------------------------


def test_the_mattermost_section_is_one_workspace_without_a_name() -> None:
    settings = parse_config(config(mattermost={"team": "support", "routes": {"billing": "Billing"}}), env={})
    assert not settings.several
    assert isinstance(settings.mattermost, MattermostSettings)
    (ws,) = settings.workspaces
    assert isinstance(ws, WorkspaceSettings)
    assert (ws.name, ws.default_group, ws.config_key) == ("", None, "mattermost")
    assert (ws.url, ws.bot_token, ws.team, ws.routes) == (
        "https://chat.example.com", TOKEN, "support", (("billing", "Billing"),))
    assert ws.route_for("billing") == "Billing"
    assert ws.group_for_default("Support") == "Support"
    assert settings.workspace("") is ws


def test_settings_built_from_mattermost_alone_get_their_workspace() -> None:
    base = parse_config(config(), env={})
    assert base.mattermost is not None
    settings = Settings(mattermost=base.mattermost, deskie=base.deskie, webhook=base.webhook)
    assert [ws.url for ws in settings.workspaces] == [base.mattermost.url]
    # dataclasses.replace passes the old workspace along: the new section wins.
    moved = dataclasses.replace(base.mattermost, url="https://other.example.com")
    assert dataclasses.replace(settings, mattermost=moved).workspaces[0].url == "https://other.example.com"
    assert dataclasses.replace(settings, state=base.state).workspaces == settings.workspaces


def test_settings_need_mattermost_or_named_workspaces_but_not_both() -> None:
    base = parse_config(config(), env={})
    acme = WorkspaceSettings(url="https://chat.acme.example", bot_token=TOKEN, name="acme")
    with pytest.raises(ValueError):
        Settings(deskie=base.deskie, webhook=base.webhook)
    with pytest.raises(ValueError):
        Settings(mattermost=base.mattermost, workspaces=(acme,), deskie=base.deskie, webhook=base.webhook)
    with pytest.raises(ValueError):
        Settings(workspaces=(acme, acme), deskie=base.deskie, webhook=base.webhook)
    assert Settings(workspaces=(acme,), deskie=base.deskie, webhook=base.webhook).several


# --- the several form ---------------------------------------------------------------------------------


def test_workspaces_are_read_in_order_with_names_and_mattermost_keys() -> None:
    settings = parse_config(several(), env={})
    assert settings.several
    assert settings.mattermost is None
    assert [ws.name for ws in settings.workspaces] == ["acme", "globex"]
    globex = settings.workspace("globex")
    assert (globex.url, globex.host, globex.port, globex.team) == (
        "https://mm.globex.example:8065", "mm.globex.example", 8065, "support")
    assert globex.config_key == "workspaces[globex]"
    assert globex.ping_interval == 30.0 and globex.routes == () and not globex.insecure
    with pytest.raises(KeyError):
        settings.workspace("initech")


def test_one_entry_is_still_the_several_form() -> None:
    settings = parse_config(several(entry()), env={})
    assert settings.several
    assert settings.workspaces[0].name == "acme"


def test_a_workspace_default_group_overrides_deskies_for_that_workspace() -> None:
    settings = parse_config(several(entry("acme", default_group="Acme"), entry("globex", default_group=7,
                                                                             bot_token=TOKEN_2),
                                    entry("initech", bot_token="initechtoken-1234567890")), env={})
    groups = [ws.group_for_default(settings.deskie.default_group) for ws in settings.workspaces]
    assert groups == ["Acme", "7", "Support"]
    assert settings.workspaces[2].default_group is None


@pytest.mark.parametrize("value", ["", "  ", ["Acme"], True])
def test_a_bad_workspace_default_group_names_its_key(value: object) -> None:
    assert error_of(several(entry(default_group=value))).key == "workspaces[acme].default_group"


def test_routes_and_every_other_key_work_inside_an_entry(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not really a CA\n")
    text = yaml.safe_dump(several(entry(routes={"billing": "Billing", "~vip": 44}, ca_file="ca.pem",
                                         insecure=True, ping_interval="1m")))
    ws = load_config(write(tmp_path, text), env={}).workspaces[0]
    assert ws.routes == (("billing", "Billing"), ("vip", "44"))
    assert ws.ca_file == str(tmp_path / "ca.pem")  # relative to the config file, as for mattermost:
    assert (ws.insecure, ws.ping_interval) == (True, 60.0)


def test_env_references_are_expanded_inside_entries() -> None:
    data = several(entry(name="${WS_NAME:-acme}", bot_token="${ACME_TOKEN}", team="${ACME_TEAM:-}"))
    ws = parse_config(data, env={"ACME_TOKEN": TOKEN}).workspaces[0]
    assert (ws.name, ws.bot_token, ws.team) == ("acme", TOKEN, "")
    err = error_of(several(entry(bot_token="${GLOBEX_TOKEN}")), env={})
    assert str(err) == "workspaces[acme].bot_token: environment variable GLOBEX_TOKEN is not set"


# --- one form or the other ----------------------------------------------------------------------------


def test_mattermost_and_workspaces_together_are_an_error_naming_both() -> None:
    data = several()
    data["mattermost"] = config()["mattermost"]
    err = error_of(data)
    assert err.key == "workspaces"
    assert "mattermost" in err.problem
    assert str(err).startswith("workspaces: cannot be used together with mattermost")


@pytest.mark.parametrize("key", ["name", "default_group"])
def test_the_mattermost_section_refuses_the_workspace_only_keys(key: str) -> None:
    err = error_of(config(mattermost={key: "acme"}))
    assert err.key == f"mattermost.{key}"
    assert "unknown key" in str(err) and "workspaces" in str(err)


def test_a_misspelt_workspaces_key_gets_a_hint() -> None:
    data = several()
    data["workspace"] = data.pop("workspaces")
    assert str(error_of(data)) == "workspace: unknown key, did you mean 'workspaces'?"


# --- the shape of the list ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [[], None])
def test_an_empty_workspaces_list_is_an_error(value: object) -> None:
    data = several()
    data["workspaces"] = value
    err = error_of(data)
    assert err.key == "workspaces"
    assert "at least one workspace" in str(err)


def test_workspaces_as_a_mapping_is_refused_with_the_list_syntax() -> None:
    data = several()
    data["workspaces"] = {"acme": entry()}
    assert str(error_of(data)) == (
        "workspaces: must be a list of workspaces, each starting with '- name: ...', got a mapping")


@pytest.mark.parametrize("bad", ["acme", None, ["acme"]])
def test_an_entry_that_is_not_a_mapping_is_named_by_its_index(bad: object) -> None:
    data = several()
    data["workspaces"].append(bad)
    err = error_of(data)
    assert err.key == "workspaces[2]"
    assert "must be a mapping" in str(err)


# --- names ------------------------------------------------------------------------------------------


def test_a_missing_name_is_named_by_the_entrys_index() -> None:
    data = several()
    del data["workspaces"][1]["name"]
    assert str(error_of(data)) == "workspaces[1].name: is required"


def test_a_misspelt_name_key_is_reported_as_the_typo() -> None:
    data = several()
    data["workspaces"][1]["nmae"] = data["workspaces"][1].pop("name")
    assert str(error_of(data)) == "workspaces[1].nmae: unknown key, did you mean 'name'?"


@pytest.mark.parametrize("name", ["Acme", "-acme", "acme corp", "acme_corp", "acme:1", "ümlaut", 42, ""])
def test_a_name_must_be_lowercase_letters_digits_and_dashes(name: object) -> None:
    err = error_of(several(entry(name)))
    assert err.key == "workspaces[0].name"


@pytest.mark.parametrize("name", ["acme", "a", "2nd-site", "acme-corp-eu"])
def test_good_names(name: str) -> None:
    assert parse_config(several(entry(name)), env={}).workspaces[0].name == name


def test_a_name_used_twice_is_an_error_naming_both_entries() -> None:
    data = several(entry("acme"), entry("globex", bot_token=TOKEN_2), entry("acme", bot_token="third-token-123"))
    err = error_of(data)
    assert err.key == "workspaces[acme].name"
    assert "used twice" in str(err) and "workspaces[0]" in str(err) and "workspaces[2]" in str(err)


# --- errors inside an entry name the workspace ---------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bot_token": None}, "workspaces[globex].bot_token: is required"),
        ({"url": None}, "workspaces[globex].url: is required"),
        ({"team": ["a"]}, "workspaces[globex].team: must be a string, got list"),
        ({"bot_tokn": "x"}, "workspaces[globex].bot_tokn: unknown key, did you mean 'bot_token'?"),
        ({"routes": {"billing": ""}}, "workspaces[globex].routes.billing: must be a Deskie group id or exact "
                                      "title, got ''"),
        ({"ping_interval": "soon"}, "workspaces[globex].ping_interval: must be a duration like 90s, 10m, 1h, "
                                    "1h30m or a number of seconds, got 'soon'"),
    ],
)
def test_an_error_inside_an_entry_names_its_workspace(values: dict[str, Any], message: str) -> None:
    data = several()
    data["workspaces"][1].update(values)
    assert str(error_of(data)) == message


def test_an_unknown_key_in_an_entry_is_reported_before_a_missing_one_of_an_earlier_entry() -> None:
    data = several()
    del data["workspaces"][0]["url"]
    data["workspaces"][1]["tema"] = "x"
    assert str(error_of(data)).startswith("workspaces[globex].tema: unknown key")


@pytest.mark.parametrize("token", ["tok with spaces-123456", 123456789123, "${bad name-9876543}"])
def test_a_workspace_bot_token_is_never_echoed(token: object) -> None:
    err = error_of(several(entry(), entry("globex", bot_token=token)))
    assert err.key == "workspaces[globex].bot_token"
    text = str(err) + repr(err) + repr(err.args)
    for word in re.split(r"[\s${}]+", str(token)):
        if len(word) > 4:
            assert word not in text


def test_secret_keys_are_recognised_in_both_forms() -> None:
    assert is_secret_key("mattermost.bot_token")
    assert is_secret_key("workspaces[acme].bot_token")
    assert is_secret_key("workspaces[3].bot_token")
    assert not is_secret_key("workspaces[acme].url")
    assert not is_secret_key("workspaces[acme].name")


# --- the same bot twice ------------------------------------------------------------------------------


def test_the_same_url_and_bot_token_twice_is_an_error() -> None:
    data = several(entry("acme"), entry("acme-eu", url="chat.acme.example/"))
    err = error_of(data)
    assert err.key == "workspaces[acme-eu]"
    assert "workspaces[acme]" in err.problem and "same url and bot_token" in err.problem
    assert TOKEN not in str(err)


def test_the_same_server_with_two_bots_or_one_token_on_two_servers_is_allowed() -> None:
    two_bots = several(entry("acme"), entry("acme-eu", bot_token=TOKEN_2))
    assert len(parse_config(two_bots, env={}).workspaces) == 2
    two_servers = several(entry("acme"), entry("globex", url="https://mm.globex.example"))
    assert len(parse_config(two_servers, env={}).workspaces) == 2


# --- secrets ----------------------------------------------------------------------------------------


def test_secrets_list_every_workspaces_bot_token_once() -> None:
    settings = parse_config(several(entry("acme"), entry("globex", url="https://mm.globex.example"),
                                    entry("initech", bot_token=TOKEN_2)), env={})
    assert settings.secrets() == [TOKEN, TOKEN_2, API_KEY, SECRET]


def test_repr_and_pickle_of_several_workspaces() -> None:
    settings = parse_config(several(), env={})
    assert TOKEN not in repr(settings) and TOKEN_2 not in repr(settings)
    assert pickle.loads(pickle.dumps(settings)) == settings


# --- call sites ---------------------------------------------------------------------------------------


def test_insecure_is_warned_for_each_workspace_by_its_key(capsys: pytest.CaptureFixture[str]) -> None:
    settings = parse_config(several(entry("acme"), entry("globex", bot_token=TOKEN_2, insecure=True)), env={})
    _warn_insecure(settings)
    assert "warning: workspaces[globex].insecure is true" in capsys.readouterr().err
    _warn_insecure(parse_config(config(mattermost={"insecure": True}), env={}))
    assert "warning: mattermost.insecure is true" in capsys.readouterr().err


def test_placeholders_name_a_workspace_as_the_loader_does() -> None:
    data = several(entry("acme", bot_token="${ACME_TOKEN}", url="chat.acme.com"), {"url": "chat.example.org"})
    found = [line for line in find_placeholders(data, env={}) if line.startswith("workspaces")]
    assert [line.split(": ")[0] for line in found] == ["workspaces[acme].bot_token", "workspaces[1].url"]
    assert "Mattermost workspace URL" in found[1]


# --- the example file -------------------------------------------------------------------------------


def _example_workspaces() -> list[Any]:
    """The commented-out `workspaces:` example of bot_config.example.yaml, uncommented."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    start = lines.index("# workspaces:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    result: list[Any] = yaml.safe_load("\n".join(block))["workspaces"]
    return result


def test_the_example_explains_workspaces_as_the_alternative_and_its_example_loads() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "\nworkspaces:" not in text  # commented out: the example itself is the single form
    for word in ("name", "default_group", "instead of the mattermost: section", "together are an error"):
        assert word in text
    data = yaml.safe_load(text)
    del data["mattermost"]
    data["workspaces"] = _example_workspaces()
    env = {**ENV, "ACME_BOT_TOKEN": TOKEN, "GLOBEX_BOT_TOKEN": TOKEN_2}
    settings = parse_config(data, env=env)
    assert [ws.name for ws in settings.workspaces] == ["acme", "globex"]
    assert settings.workspace("acme").routes == (("billing", "Billing"),)
    assert settings.workspace("globex").group_for_default(settings.deskie.default_group) == "Globex support"
