"""One-shot commands that talk to both services: `check --online`, `find`, `send`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from .blocking import off_loop
from .config import Settings, WorkspaceSettings
from .deskie.client import DeskieClient, DeskieError, find_group
from .deskie.ratebudget import Priority, RateBudget
from .mattermost.chat import channel_name, person_name
from .mattermost.rest import MattermostAuthError, MattermostRejected, MattermostRest, MattermostUnavailable
from .model import CaseRef, ConvKey, Customer, named
from .relay.outgoing import record_chat
from .store import Store


class TargetNotFound(LookupError):
    """`send --to` names no member, or no channel with the bot in it (a usage error)."""


class ConfigProblem(Exception):
    """A setting the command cannot work with (state.path, deskie.default_group): exit 2, naming the key."""


def _open_store(settings: Settings) -> Store:
    try:
        return Store(settings.state.path)
    except (sqlite3.Error, OSError) as e:
        raise ConfigProblem(f"state.path: cannot open {settings.state.path}: {e}") from None


def _rest(ws: WorkspaceSettings) -> MattermostRest:
    return MattermostRest(ws.scheme, ws.host, ws.port, ws.bot_token, ca_file=ws.ca_file, insecure=ws.insecure)


def _deskie(settings: Settings) -> DeskieClient:
    d = settings.deskie
    verify: bool | str = False if d.insecure else (d.ca_file or True)
    return DeskieClient(d.url, d.staff_email, d.api_key, budget=RateBudget(d.rate_limit_per_minute),
                        verify=verify, max_read_attempts=2)


async def _workspace_problems(ws: WorkspaceSettings, say: Callable[[str], Any]) -> list[str]:
    """The workspace's token, and the bot's team membership there."""
    where = ws.config_key
    problems: list[str] = []
    rest = _rest(ws)
    try:
        me = await rest.login()
        say(f"{where}: token ok, bot @{me.get('username')}")
        if not me.get("is_bot"):
            say(f"{where}: note: the token belongs to a regular user, not a bot account")
        teams = await rest.teams()
        if not teams:
            problems.append(f"{where}: the bot is in no team; add it to your team (System Console > Bot Accounts)")
        elif ws.team:
            names = [t.get("name") for t in teams]
            if ws.team not in names:
                problems.append(f"{where}.team: the bot is not in team '{ws.team}' "
                                f"(it is in: {', '.join(map(str, names))})")
            else:
                say(f"{where}: bot is in team '{ws.team}'")
        else:
            say(f"{where}: bot is in {len(teams)} team(s)")
    except MattermostAuthError:
        problems.append(f"{where}.bot_token: rejected by Mattermost (401); create a new bot token")
    except (MattermostUnavailable, MattermostRejected) as e:
        problems.append(f"{where}.url: {e}")
    finally:
        await rest.close()
    return problems


def _group_problems(settings: Settings, groups: list[dict[str, Any]], say: Callable[[str], Any]) -> list[str]:
    """deskie.default_group, each workspace's own default_group and every route name a Deskie group."""
    listed = ", ".join(str(g.get("group_title")) for g in groups)
    problems: list[str] = []
    group = find_group(groups, settings.deskie.default_group)
    if group is None:
        problems.append(f"deskie.default_group: no group '{settings.deskie.default_group}' (groups: {listed})")
    else:
        say(f"deskie: default group '{group.get('group_title')}' (id {group.get('group_id')})")
    for ws in settings.workspaces:
        if ws.default_group is not None:
            own = find_group(groups, ws.default_group)
            if own is None:
                problems.append(f"{ws.config_key}.default_group: no group '{ws.default_group}' in Deskie "
                                f"(groups: {listed})")
            else:
                say(f"deskie: chats of {ws.config_key} go to group '{own.get('group_title')}'")
        for channel, wanted in ws.routes:
            routed = find_group(groups, wanted)
            if routed is None:
                problems.append(f"{ws.config_key}.routes.{channel}: no group '{wanted}' in Deskie (groups: {listed})")
            else:
                say(f"deskie: chats started in ~{channel} go to group '{routed.get('group_title')}'")
    return problems


async def online_check(settings: Settings, say: Callable[[str], Any]) -> list[str]:
    problems: list[str] = []
    for ws in settings.workspaces:
        problems.extend(await _workspace_problems(ws, say))

    deskie = _deskie(settings)
    try:
        groups = await off_loop(None, deskie.list_groups)
        say("deskie: API key ok")
        problems.extend(_group_problems(settings, groups, say))
        channels = await off_loop(None, deskie.list_custom_channels)
        problems.extend(custom_channel_problems(settings, channels, say))
    except DeskieError as e:
        problems.append(f"deskie: {e}")
    finally:
        deskie.close()
    return problems


def custom_channel_problems(settings: Settings, channels: list[dict[str, Any]], say: Callable[[str], Any]) -> list[str]:
    """The custom channel as Deskie will use it: there, active, chat-like, calling our webhook URL."""
    code = settings.deskie.channel
    found = [c for c in channels if str(c.get("channel_api_key")) == code]
    if not found:
        codes = sorted(str(c.get("channel_api_key")) for c in channels)
        return [f"deskie.channel: no custom channel '{code}' (found: {', '.join(codes) or 'none'}); "
                f"create one in Deskie's channel settings"]
    channel = found[0]
    problems: list[str] = []
    say(f"deskie: custom channel {code} exists ('{channel.get('title')}')")
    if channel.get("active") is False:
        problems.append(f"deskie.channel: custom channel {code} is switched off in Deskie: agents' answers "
                        f"would not be sent; switch it on in Deskie's channel settings")
    kind = str(channel.get("channel_type") or "")
    if kind and kind != "sync":
        say(f"deskie: warning: custom channel {code} is of type '{kind}', not 'sync' (chat-like): Deskie "
            f"treats its cases like e-mail, with no chat to end after inactivity; choose the chat type "
            f"if this is a chat")
    expected = settings.webhook.webhook_url()
    if expected is not None:
        actual = str(channel.get("webhook_url") or "")
        secret = settings.webhook.secret
        masked = settings.webhook.webhook_url("***")
        if actual.rstrip("/") != expected.rstrip("/"):
            shown = (actual.replace(secret, "***") if secret else actual) or "(nothing)"
            problems.append(f"webhook.public_url: Deskie calls {shown} for custom channel {code}, but the bot "
                            f"is reached at {masked}; set the channel's webhook URL in Deskie to that")
        else:
            say(f"deskie: custom channel {code} calls {masked}")
    return problems


def _member_line(user: dict[str, Any], ws: WorkspaceSettings, several: bool) -> str:
    line = f"{person_name(user).replace(' (', ' ').rstrip(')')} (member)"
    # With several workspaces an agent starting the chat from Deskie needs the id with its workspace.
    return f"{line} {Customer.person(user['id'], ws.name)}" if several else line


def _channel_line(channel: dict[str, Any], ws: WorkspaceSettings, several: bool) -> str:
    line = f"{channel_name(channel).replace(' (', ' ').rstrip(')')} (channel)"
    return f"{line} {Customer.channel(channel['id'], ws.name)}" if several else line


async def find_targets(settings: Settings, ws: WorkspaceSettings, query: str) -> list[str]:
    """Members and channels (with the bot in them) of the workspace `ws` that match `query`."""
    rest = _rest(ws)
    try:
        await rest.login()
        term = query.lstrip("@~")
        lines = [_member_line(u, ws, settings.several)
                 for u in await rest.search_users(term) if not u.get("is_bot") and u.get("delete_at", 0) == 0]
        for team in await rest.teams():
            if ws.team and team.get("name") != ws.team:
                continue
            for ch in await rest.search_team_channels(team["id"], term):
                if await rest.is_member(ch["id"], rest.me["id"]):
                    lines.append(_channel_line(ch, ws, settings.several))
        return lines
    finally:
        await rest.close()


async def _resolve_target(
    rest: MattermostRest, ws: WorkspaceSettings, to: str
) -> tuple[dict[str, Any], Customer, str]:
    """The channel to post in, the customer it is in Deskie and the full name agents see."""
    name = to[1:]
    if to.startswith("@"):
        users = [u for u in await rest.search_users(name) if u.get("username") == name]
        if not users:
            raise TargetNotFound(f"no member @{name} in {ws.config_key}")
        channel = await rest.direct_channel(users[0]["id"])
        return channel, Customer.person(users[0]["id"], ws.name), named(person_name(users[0]), ws.name)
    for team in await rest.teams():
        if ws.team and team.get("name") != ws.team:
            continue
        for ch in await rest.search_team_channels(team["id"], name):
            if ch.get("name") == name and await rest.is_member(ch["id"], rest.me["id"]):
                return ch, Customer.channel(ch["id"], ws.name), named(channel_name(ch), ws.name)
    raise TargetNotFound(f"no channel ~{name} with the bot in it in {ws.config_key}")


async def send_outgoing(settings: Settings, ws: WorkspaceSettings, to: str, subject: str | None, text: str) -> str:
    """Open a case for the member or channel of workspace `ws`, post the text there, and record the chat."""
    # The store first: a case opened and posted that the store cannot record would be a chat nobody follows.
    store = _open_store(settings)
    rest = _rest(ws)
    deskie = _deskie(settings)
    try:
        await rest.login()
        channel, who, full_name = await _resolve_target(rest, ws, to)
        groups = await off_loop(None, deskie.list_groups)
        # As a chat started there would: a routed channel's group, else the workspace's default group.
        route = ws.route_for(str(channel.get("name") or "")) if channel.get("type") in ("O", "P") else None
        wanted = route if route is not None else ws.group_for_default(settings.deskie.default_group)
        group = find_group(groups, wanted)
        if group is None:
            key = (f"{ws.config_key}.routes.{channel.get('name')}" if route is not None
                   else f"{ws.config_key}.default_group" if ws.default_group is not None else "deskie.default_group")
            raise ConfigProblem(f"{key}: Deskie has no group '{wanted}'")
        first_line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "Message")
        case = await off_loop(None, lambda: deskie.create_case(
            channel=settings.deskie.channel, user_custom_id=str(who), user_full_name=full_name,
            group_id=int(group["group_id"]), subject=subject or first_line[:100],
            content=f"[outgoing chat started from Mattermost] {text}",
        ))
        await off_loop(None, deskie.set_case_status, int(case["case_id"]), "waiting", Priority.CUSTOMER)
        post = await rest.create_post(channel["id"], text, props={"deskie_case_id": str(case["case_id"])})
        # In thread mode the chat lives in the thread of this first post.
        thread = settings.chats.reply_mode == "thread"
        key = ConvKey.thread(post["id"], ws.name) if thread else ConvKey.channel(channel["id"], ws.name)
        ref = CaseRef(int(case["case_id"]), str(case.get("case_number") or ""), int(case.get("user_id") or 0) or None)
        record_chat(store, key=key, channel_id=channel["id"], reply_root_id=post["id"] if thread else "",
                    customer=who, full_name=full_name, case=ref)
        where = f" in {ws.name}" if ws.name else ""
        return f"started case {case.get('case_number') or case['case_id']} with {to}{where}"
    finally:
        store.close()
        deskie.close()
        await rest.close()
