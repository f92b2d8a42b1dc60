"""Log output: secrets replaced wherever they appear, JSON lines when asked."""

from __future__ import annotations

import json
import logging

import pytest

from deskie_mm_bot.logs import setup_logging

SECRETS = ["tok-123456", "key-abcdef", "hook-secret-0000"]


@pytest.fixture(autouse=True)
def _restore_root() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_secrets_are_replaced_in_messages_args_and_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "text", SECRETS)
    log = logging.getLogger("deskie_mm_bot.test")
    log.info("token %s in an argument", "tok-123456")
    try:
        raise RuntimeError("failed with key-abcdef")
    except RuntimeError:
        log.exception("url was /deskie/webhook/hook-secret-0000")
    err = capsys.readouterr().err
    assert "in an argument" in err and "RuntimeError" in err
    for s in SECRETS:
        assert s not in err
    assert err.count("***") >= 3


def test_json_format_is_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("debug", "json", SECRETS)
    logging.getLogger("deskie_mm_bot.test").warning("hello %s", "key-abcdef")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "deskie_mm_bot.test"
    assert entry["message"] == "hello ***"


def test_a_url_encoded_secret_is_replaced_too(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "text", ["we~ird/secret+1"])
    logging.getLogger("deskie_mm_bot.test").warning("GET /deskie/webhook/we~ird%2Fsecret%2B1 HTTP/1.1")
    err = capsys.readouterr().err
    assert "secret" not in err and "***" in err
