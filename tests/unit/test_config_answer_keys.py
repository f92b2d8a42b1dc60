"""chats.agent_name and chats.reactions: on by default, strict booleans, named when wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deskie_mm_bot.config import ConfigError, parse_config
from tests.unit.test_config import ENV, EXAMPLE, config


def test_both_are_on_by_default_and_can_be_turned_off() -> None:
    chats = parse_config(config(), env={}).chats
    assert (chats.agent_name, chats.reactions) == (True, True)
    chats = parse_config(config(chats={"agent_name": False, "reactions": False}), env={}).chats
    assert (chats.agent_name, chats.reactions) == (False, False)


@pytest.mark.parametrize("key", ["agent_name", "reactions"])
def test_a_wrong_type_names_the_key(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config(chats={key: "yes"}), env={})
    assert str(info.value) == f"chats.{key}: must be true or false, got 'yes'"


def test_a_typo_is_an_unknown_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config(chats={"agent_names": True}), env={})
    assert "chats.agent_names" in str(info.value)


def test_the_example_config_describes_both(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "  agent_name: true\n" in text and "  reactions: true\n" in text
    settings_text = text.replace("  reactions: true\n", "  reactions: 1\n")
    path = tmp_path / "bot_config.yaml"
    path.write_text(settings_text, encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "deskie_mm_bot", "check", "-c", str(path)], capture_output=True,
                       text=True, timeout=60, env={**os.environ, **ENV})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["config error: chats.reactions: must be true or false, got 1"]
