"""Decoding the websocket's events: what is no post at all, and what counts as a mention by name."""

from __future__ import annotations

import pytest

from deskie_mm_bot.mattermost.events import mentions_username, post_from_event

BOT_ID = "botuserid0000000000000000a"
BOT_NAME = "helpbot"


def test_event_without_post_decodes_to_none() -> None:
    assert post_from_event({"event": "typing", "data": {"parent_id": ""}}, bot_id=BOT_ID, bot_username=BOT_NAME) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("@helpbot hi", True),
        ("hi @helpbot", True),
        ("hi @helpbot.", True),
        ("(@helpbot)", True),
        ("@HELPBOT", True),
        ("@helpbotx", False),
        ("@helpbot-two", False),
        ("me@helpbot", False),
        ("helpbot", False),
    ],
)
def test_mentions_username_boundaries(text: str, expected: bool) -> None:
    assert mentions_username(text, BOT_NAME) is expected
