"""The Deskie helpdesk resolves the default group once, by id or exact title, and names the key when it cannot."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest

from deskie_mm_bot import errors
from deskie_mm_bot.deskie.client import DeskieClient
from deskie_mm_bot.deskie.helpdesk import DeskieHelpdesk


class Groups:
    def __init__(self) -> None:
        self.reads = 0

    def list_groups(self) -> list[dict[str, Any]]:
        self.reads += 1
        return [{"group_id": 4, "group_title": "Support"}, {"group_id": 9, "group_title": "Sales"}]


@pytest.mark.parametrize("wanted, group_id", [("Sales", 9), ("4", 4)])
def test_the_default_group_is_found_by_title_or_id_and_read_once(wanted: str, group_id: int) -> None:
    client = Groups()
    with ThreadPoolExecutor(1) as pool:
        helpdesk = DeskieHelpdesk(cast(DeskieClient, client), "cch1", pool, default_group=wanted)

        async def twice() -> list[int]:
            return [await helpdesk.default_group_id(), await helpdesk.default_group_id()]

        assert asyncio.run(twice()) == [group_id, group_id]
    assert client.reads == 1


def test_an_unknown_default_group_is_a_config_error_naming_the_key() -> None:
    with ThreadPoolExecutor(1) as pool:
        helpdesk = DeskieHelpdesk(cast(DeskieClient, Groups()), "cch1", pool, default_group="Nobody")
        with pytest.raises(errors.ConfigError) as caught:
            asyncio.run(helpdesk.default_group_id())
    assert caught.value.key == "deskie.default_group"
    assert errors.describe(caught.value) == (
        "config error: deskie.default_group: Deskie has no group 'Nobody' (by id or exact title)"
    )
    assert errors.exit_code_for(caught.value) == errors.EXIT_CONFIG
