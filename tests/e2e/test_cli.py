"""The command line as an admin uses it: check, start --detach, status, stop, find, send."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from deskie_mm_bot.sandbox_runner import CHANNEL_CODE, WEBHOOK_SECRET, World
from tests.support.harness import BotProcess, bot_posts, cases_of, cli, wait_for


def test_check_accepts_a_good_config_and_names_the_bad_key(world: World, tmp_path: Path) -> None:
    path = world.write_config(tmp_path)
    r = cli("check", "-c", str(path))
    assert r.returncode == 0, r.stderr
    path.write_text(path.read_text().replace("reply_mode: group_chat", "reply_mode: threads"))
    r = cli("check", "-c", str(path))
    assert r.returncode == 2
    assert r.stderr.strip() == "config error: chats.reply_mode: must be group_chat or thread, got 'threads'"
    assert "Traceback" not in r.stderr


def test_missing_config_exits_2_with_one_line(tmp_path: Path) -> None:
    r = cli("run", "-c", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "not found" in r.stderr


def test_check_online_proves_both_credentials(world: World, tmp_path: Path) -> None:
    path = world.write_config(tmp_path)
    r = cli("check", "--online", "-c", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "custom channel cch12 exists" in r.stdout
    bad = path.read_text().replace("channel: cch12", "channel: cch99").replace("default_group: Support",
                                                                               "default_group: Sales")
    path.write_text(bad)
    r = cli("check", "--online", "-c", str(path))
    assert r.returncode == 1
    assert "deskie.channel" in r.stderr and "deskie.default_group" in r.stderr
    world.mm.revoke_token(world.bot_token)
    r = cli("check", "--online", "-c", str(path))
    assert "mattermost.bot_token" in r.stderr
    assert world.bot_token not in r.stdout + r.stderr


def test_check_online_checks_the_custom_channel_as_deskie_will_use_it(world: World, tmp_path: Path) -> None:
    path = world.write_config(tmp_path)
    public = world.webhook_url.split("/deskie/webhook/")[0]
    path.write_text(path.read_text().replace("webhook:\n", f"webhook:\n  public_url: {public}\n"))
    r = cli("check", "--online", "-c", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"calls {public}/deskie/webhook/***" in r.stdout and WEBHOOK_SECRET not in r.stdout
    world.dk.set_webhook_url(CHANNEL_CODE, f"https://old.example.com/deskie/webhook/{WEBHOOK_SECRET}")
    r = cli("check", "--online", "-c", str(path))
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if "webhook.public_url" in line]
    assert len(lines) == 1
    assert "https://old.example.com/deskie/webhook/***" in lines[0]
    assert f"{public}/deskie/webhook/***" in lines[0]
    assert WEBHOOK_SECRET not in r.stdout + r.stderr
    world.dk.set_webhook_url(CHANNEL_CODE, world.webhook_url)
    world.dk.set_channel_active(CHANNEL_CODE, False)
    r = cli("check", "--online", "-c", str(path))
    assert r.returncode == 1 and "switched off" in r.stderr
    world.dk.set_channel_active(CHANNEL_CODE, True)
    world.dk.state.channels[CHANNEL_CODE].channel_type = "async"
    r = cli("check", "--online", "-c", str(path))
    assert r.returncode == 0 and "not 'sync'" in r.stdout


def test_start_detach_status_and_stop(world: World, tmp_path: Path) -> None:
    path = world.write_config(tmp_path, poll_interval="1s")
    r = cli("start", "--detach", "-c", str(path))
    assert r.returncode == 0, r.stderr
    try:
        bot = BotProcess(path, world)
        bot.wait_healthy()
        world.mm.post_as(world.jane["id"], world.jane_dm["id"], "hello from a detached bot")
        wait_for(lambda: cases_of(world), what="a case")
        status = json.loads(cli("status", "--json", "-c", str(path)).stdout)
        assert status["running"] is True and status["open_chats"] == 1
        text = cli("status", "-c", str(path)).stdout
        assert "running: yes" in text
        for secret in (world.bot_token, "sandbox-api-key", WEBHOOK_SECRET):
            assert secret not in text
    finally:
        r = cli("stop", "-c", str(path))
    assert r.returncode == 0, r.stderr
    assert json.loads(cli("status", "--json", "-c", str(path)).stdout)["running"] is False
    assert cli("stop", "-c", str(path)).returncode != 0  # none running


def test_find_lists_members_and_channels(world: World, tmp_path: Path) -> None:
    path = world.write_config(tmp_path)
    r = cli("find", "jan", "-c", str(path))
    assert r.returncode == 0, r.stderr
    assert "Jane Doe @jane (member)" in r.stdout.splitlines()
    r = cli("find", "supp", "-c", str(path))
    assert "Support ~support (channel)" in r.stdout.splitlines()


def test_send_starts_an_outgoing_chat_that_continues_both_ways(
    world: World, make_bot: Callable[..., BotProcess]
) -> None:
    bot = make_bot().start()
    r = cli("send", "--to", "@bob", "--subject", "Your order", "Hi Bob, your order has shipped.",
            "-c", str(bot.config_path))
    assert r.returncode == 0, r.stderr
    (case,) = cases_of(world)
    assert case["subject"] == "Your order" and case["channel"] == CHANNEL_CODE
    assert world.dk.user(case["user_id"])["user_custom_id"] == f"u:{world.bob['id']}"
    dm = world.mm.direct_channel(world.bot["id"], world.bob["id"])
    assert [p["message"] for p in bot_posts(world, dm["id"])] == ["Hi Bob, your order has shipped."]
    world.mm.post_as(world.bob["id"], dm["id"], "Great, thanks!")
    wait_for(lambda: any(m["content"] == "Great, thanks!" for m in world.dk.messages(case["case_id"])),
             what="Bob's answer on the same case")
    assert len(cases_of(world)) == 1
    assert cli("send", "--to", "@nobody", "x", "-c", str(bot.config_path)).returncode == 2


def test_outgoing_case_started_in_deskie_opens_the_dm(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    case = world.dk.create_outgoing_case(CHANNEL_CODE, f"u:{world.bob['id']}", "Bob Stone (@bob)",
                                         "Hello Bob, a question about your ticket")
    dm = world.mm.direct_channel(world.bot["id"], world.bob["id"])
    wait_for(lambda: bot_posts(world, dm["id"]), what="the agent's first message in Bob's DM")
    world.mm.post_as(world.bob["id"], dm["id"], "Sure, ask away")
    wait_for(lambda: any(m["content"] == "Sure, ask away" for m in world.dk.messages(case["case_id"])),
             what="Bob's answer on the outgoing case")
    assert len(cases_of(world)) == 1


def test_outgoing_chat_in_thread_mode_lives_in_its_thread(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot(reply_mode="thread").start()
    case = world.dk.create_outgoing_case(CHANNEL_CODE, f"u:{world.bob['id']}", "Bob Stone (@bob)",
                                         "Hello Bob, about your ticket")
    dm = world.mm.direct_channel(world.bot["id"], world.bob["id"])
    (first,) = wait_for(lambda: bot_posts(world, dm["id"]), what="the agent's first message")
    assert first["root_id"] == ""
    world.mm.post_as(world.bob["id"], dm["id"], "Yes?", root_id=first["id"])
    wait_for(lambda: any(m["content"].endswith("Yes?") for m in world.dk.messages(case["case_id"])),
             what="Bob's thread reply on the outgoing case")
    world.dk.agent_reply(case["case_id"], content="Second answer")
    wait_for(lambda: len(bot_posts(world, dm["id"])) == 2, what="the second answer")
    assert bot_posts(world, dm["id"])[1]["root_id"] == first["id"]
    assert len(cases_of(world)) == 1


def test_a_stale_pid_file_does_not_count_as_running(world: World, tmp_path: Path) -> None:
    path = world.write_config(tmp_path)
    (tmp_path / "state.sqlite3.pid").write_text(str(os.getppid()))  # some other live process
    status = json.loads(cli("status", "--json", "-c", str(path)).stdout)
    assert status["running"] is False
    assert cli("stop", "-c", str(path)).returncode == 1
