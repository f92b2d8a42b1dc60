"""`mattermost.routes`: chats started in a routed channel go to that channel's Deskie group; DMs and
other channels go to the default group; an unknown group is a config error at start and in check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, World
from tests.support.harness import BotProcess, cases_of, cli, wait_for


def _route(path: Path, routes: dict[str, str]) -> None:
    cfg = yaml.safe_load(path.read_text())
    cfg["mattermost"]["routes"] = routes
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_a_chat_started_in_a_routed_channel_goes_to_its_group(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    mm, dk = world.mm, world.dk
    billing = mm.add_channel(world.team["id"], "billing", "Billing", "O")
    for user in (world.bot, world.bob):
        mm.add_channel_member(billing["id"], user["id"])
    billing_group = dk.add_group("Billing")
    bot = make_bot()
    _route(bot.config_path, {"billing": "Billing"})
    bot.start()
    mm.post_as(world.bob["id"], billing["id"], "@helpbot my invoice is wrong")
    mm.post_as(world.jane["id"], world.jane_dm["id"], "hello from a DM")
    mm.post_as(world.bob["id"], world.support["id"], "@helpbot and a support question")
    wait_for(lambda: len(cases_of(world)) == 3, 20, "three cases")
    groups = {dk.user(c["user_id"])["user_full_name"]: c["group_id"] for c in cases_of(world)}
    assert groups["Billing (~billing)"] == billing_group["group_id"]
    assert groups["Jane Doe (@jane)"] == world.group["group_id"]
    assert groups["Support (~support)"] == world.group["group_id"]
    assert bot.stop() == 0


def test_a_route_to_an_unknown_group_stops_the_start_and_check_names_the_key(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot()
    _route(bot.config_path, {"billing": "Nope"})
    bot.start(wait=False)
    assert bot.wait_exit(30) == 2
    assert "config error: mattermost.routes.billing: Deskie has no group 'Nope'" in bot.log()
    r = cli("check", "--online", "-c", str(bot.config_path))
    assert r.returncode == 1 and "mattermost.routes.billing: no group 'Nope'" in r.stderr
    assert cases_of(world) == [] and CHANNEL_CODE


def test_a_chat_an_agent_starts_with_send_in_a_routed_channel_goes_to_its_group(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    mm, dk = world.mm, world.dk
    billing = mm.add_channel(world.team["id"], "billing", "Billing", "O")
    mm.add_channel_member(billing["id"], world.bot["id"])
    billing_group = dk.add_group("Billing")
    bot = make_bot()  # not started: `send` works on its own
    _route(bot.config_path, {"billing": "Billing"})
    r = cli("send", "--to", "~billing", "Your invoice is corrected", "-c", str(bot.config_path))
    assert r.returncode == 0, r.stderr
    r = cli("send", "--to", "@jane", "Your laptop is ready", "-c", str(bot.config_path))
    assert r.returncode == 0, r.stderr
    groups = {dk.user(c["user_id"])["user_full_name"]: c["group_id"] for c in cases_of(world)}
    assert groups["Billing (~billing)"] == billing_group["group_id"]
    assert groups["Jane Doe (@jane)"] == world.group["group_id"]
