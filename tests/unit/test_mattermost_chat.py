"""The Chat port's Mattermost side sorts what it cannot do into "later" and "never"."""

from __future__ import annotations

import asyncio

import pytest

from deskie_mm_bot import errors
from deskie_mm_bot.mattermost.chat import MattermostChat, channel_name, person_name
from deskie_mm_bot.mattermost.rest import MattermostRest


def test_a_workspace_not_logged_in_yet_posts_later_without_asking_the_server() -> None:
    # Port 9 on loopback: nothing listens, and nothing may be asked (the bot's id is not known yet, so
    # a post in flight at a crash could not be found again).
    rest = MattermostRest("http", "127.0.0.1", 9, "token")
    chat = MattermostChat(rest)

    async def go() -> None:
        try:
            with pytest.raises(errors.Unavailable):
                await chat.create_post("ch", "hi", root_id="", props={}, pending_post_id="p")
            with pytest.raises(errors.Unavailable):
                await chat.recent_bot_posts("ch", 0)
        finally:
            await rest.close()

    asyncio.run(go())


def test_people_and_channels_are_named_as_agents_see_them() -> None:
    assert person_name({"id": "u1", "username": "jane", "first_name": "Jane", "last_name": "Doe"}) == "Jane Doe (@jane)"
    assert person_name({"id": "u2", "username": "bob"}) == "@bob"
    assert channel_name({"id": "c1", "type": "O", "name": "support", "display_name": "Support"}) == "Support (~support)"
    assert channel_name({"id": "g1", "type": "G", "name": "0f3a", "display_name": "bob, jane"}) == (
        "bob, jane (group message)")
