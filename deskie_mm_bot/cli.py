"""The `deskie-mm-bot` command line.

Exit codes: 0 ok; 1 runtime failure; 2 bad configuration or usage (one line naming the key).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import process
from .config import ConfigError, Settings, WorkspaceSettings, load_config, redact
from .errors import EXIT_CONFIG, EXIT_RUNTIME, Fatal

if TYPE_CHECKING:
    from .store import Store


def _die(code: int, message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _load(path: str) -> Settings:
    try:
        return load_config(path)
    except ConfigError as e:
        _die(EXIT_CONFIG, f"config error: {e}")


def _quiet_logging(settings: Settings) -> None:
    """One-shot commands talk to the services too: library warnings in the configured format, redacted."""
    from .logs import setup_logging

    setup_logging("warning", settings.log.format, settings.secrets())


config_option = click.option(
    "-c", "--config", "config_path", default="bot_config.yaml", show_default=True,
    type=click.Path(dir_okay=False), help="The YAML config file.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deskie-mm-bot")
def main() -> None:
    """Relay between a Mattermost workspace and the Deskie helpdesk."""


def _warn_insecure(settings: Settings) -> None:
    services = [(ws.config_key, ws.insecure) for ws in settings.workspaces] + [("deskie", settings.deskie.insecure)]
    for key, insecure in services:
        if insecure:
            click.echo(f"warning: {key}.insecure is true: TLS certificates are NOT verified", err=True)
    if settings.webhook.weak_secret:
        click.echo("warning: webhook.secret is shorter than 16 characters: the webhook URL is easy to guess",
                   err=True)


def _run(settings: Settings) -> NoReturn:
    _warn_insecure(settings)
    try:
        sys.exit(process.run_bot(settings))
    except Fatal as e:
        _die(e.code, str(e))


@main.command()
@config_option
def run(config_path: str) -> None:
    """Run the bot in the foreground until SIGTERM/SIGINT."""
    _run(_load(config_path))


@main.command()
@config_option
@click.option("--detach", is_flag=True, help="Run in the background; the pid file sits next to the state file.")
def start(config_path: str, detach: bool) -> None:
    """Start the bot (same as `run`; `--detach` runs it in the background)."""
    settings = _load(config_path)
    if not detach:
        _run(settings)
    try:
        started = process.start_detached(settings, config_path)
    except Fatal as e:
        _die(e.code, str(e))
    if not started.started:
        click.echo(f"still starting after {process.START_PATIENCE:.0f} s (pid {started.pid}); log: {started.log_path}")
        return
    click.echo(f"started (pid {started.pid}); log: {started.log_path}")


@main.command()
@config_option
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the bot to drain and exit.")
def stop(config_path: str, timeout: float) -> None:
    """Stop the running bot and wait until it has drained and exited."""
    settings = _load(config_path)
    try:
        click.echo(process.stop_and_wait(settings, timeout))
    except Fatal as e:
        _die(e.code, str(e))


HEALTH_TIMEOUT = 2.0  # seconds: status must answer promptly even when the bot is stuck


def _bot_health(settings: Settings) -> dict[str, Any] | None:
    """The running bot's /healthz body (200 or 503 alike), or None when it does not answer."""
    import urllib.error
    import urllib.request

    host = settings.webhook.host
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard: ask loopback
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.webhook.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT) as response:
            body = response.read()
    except urllib.error.HTTPError as e:  # 503: unhealthy, and its body says why
        body = e.read()
    except (OSError, ValueError):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _workspace_states(settings: Settings, store: Store | None, health: dict[str, Any] | None,
                      running: bool) -> dict[str, dict[str, Any]]:
    """Each named workspace: its websocket and problem as the running bot reports them, and its open chats."""
    reported = (health or {}).get("workspaces") or {}
    states: dict[str, dict[str, Any]] = {}
    for ws in settings.workspaces:
        mine = reported.get(ws.name) if isinstance(reported, dict) else None
        if not running:
            websocket = "not running"
        elif isinstance(mine, dict):
            websocket = str(mine.get("websocket"))
        else:
            websocket = "unknown"  # running, but /healthz did not answer (or does not know it)
        problem = mine.get("problem") if isinstance(mine, dict) else None
        states[ws.name] = {
            "websocket": websocket,
            "reconnects": int(mine.get("reconnects") or 0) if isinstance(mine, dict) else 0,
            "problem": redact(str(problem), settings.secrets()) if problem else None,
            "open_chats": store.count_conversations("active", ws.name) if store is not None else 0,
        }
    return states


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: str, as_json: bool) -> None:
    """Running or not, open chats, queued messages, last errors; each workspace when there are several."""
    from .store import Store

    settings = _load(config_path)
    pid = process.read_pid(settings)
    info: dict[str, Any] = {"running": pid is not None, "pid": pid}
    health = _bot_health(settings) if pid is not None else None
    store: Store | None = None
    if Path(settings.state.path).exists():
        try:
            store = Store(settings.state.path)
        except (sqlite3.Error, OSError) as e:
            _die(EXIT_CONFIG, f"config error: state.path: cannot read {settings.state.path}: {e}")
    try:
        if store is not None:
            info.update(
                open_chats=store.count_conversations("active"),
                ended_chats=store.count_conversations("ended"),
                queued_to_deskie=store.count_outbox("pending") + store.count_outbox("inflight"),
                queued_to_mattermost=store.count_replies("pending") + store.count_replies("posting"),
                failed_to_deskie=store.count_outbox("failed"),
                last_errors=[
                    {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e["at"])), "source": e["source"],
                     "message": redact(e["message"], settings.secrets())}
                    for e in store.last_errors(5)
                ],
            )
        else:
            info.update(open_chats=0, ended_chats=0, queued_to_deskie=0, queued_to_mattermost=0,
                        failed_to_deskie=0, last_errors=[])
        if settings.several:
            info["workspaces"] = _workspace_states(settings, store, health, pid is not None)
    finally:
        if store is not None:
            store.close()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"running: {f'yes (pid {pid})' if pid else 'no'}")
    click.echo(f"open chats: {info['open_chats']} (ended, not closed: {info['ended_chats']})")
    for name, ws in info.get("workspaces", {}).items():
        problem = f"; problem: {ws['problem']}" if ws["problem"] else ""
        click.echo(f"workspace {name}: websocket {ws['websocket']}; open chats: {ws['open_chats']}{problem}")
    click.echo(f"queued to Deskie: {info['queued_to_deskie']}; to Mattermost: {info['queued_to_mattermost']}")
    if info["failed_to_deskie"]:
        click.echo(f"refused by Deskie: {info['failed_to_deskie']}")
    for err in info["last_errors"]:
        click.echo(f"error {err['at']} [{err['source']}] {err['message']}")


@main.command()
@config_option
@click.option("--online", is_flag=True, help="Also prove both credentials and permissions.")
def check(config_path: str, online: bool) -> None:
    """Validate the config (offline); `--online` also checks Mattermost and Deskie."""
    from .placeholders import placeholders_in_file

    placeholders = placeholders_in_file(config_path, os.environ)
    unset = [p for p in placeholders if ": environment variable " in p]
    if unset or (placeholders and online):
        # Every one at once (a fresh `init` file has several); online, a made-up host can only fail.
        for p in placeholders:
            click.echo(f"config error: {p}", err=True)
        sys.exit(EXIT_CONFIG)
    settings = _load(config_path)
    for p in placeholders:
        # Offline, a made-up value is not invalid YAML: pointed at, but the file passes.
        click.echo(f"warning: {p}", err=True)
    _warn_insecure(settings)
    if not online:
        click.echo(f"config ok: {config_path}")
        return
    from .checks import online_check

    _quiet_logging(settings)
    problems = asyncio.run(online_check(settings, click.echo))
    if problems:
        for p in problems:
            click.echo(f"problem: {redact(p, settings.secrets())}", err=True)
        sys.exit(EXIT_RUNTIME)
    click.echo("online check ok")


workspace_option = click.option(
    "--workspace", "workspace_name", default=None, metavar="NAME",
    help="The workspace (workspaces[].name) to use; required when the config serves several.",
)


def _chosen_workspace(settings: Settings, name: str | None) -> WorkspaceSettings:
    """The workspace `--workspace NAME` picks: required among several, refused with `mattermost:`."""
    if not settings.several:
        if name:
            _die(EXIT_CONFIG, f"usage error: --workspace: this config has one workspace (mattermost:), "
                              f"not one named '{name}'; leave --workspace out")
        return settings.workspaces[0]
    names = ", ".join(ws.name for ws in settings.workspaces)
    if not name:
        if len(settings.workspaces) == 1:
            return settings.workspaces[0]
        _die(EXIT_CONFIG, f"usage error: --workspace: required with several workspaces; one of: {names}")
    try:
        return settings.workspace(name)
    except KeyError:
        _die(EXIT_CONFIG, f"usage error: --workspace: no workspace '{name}'; one of: {names}")


@main.command()
@config_option
@workspace_option
@click.argument("query")
def find(config_path: str, workspace_name: str | None, query: str) -> None:
    """Search Mattermost members and channels for outgoing chats."""
    from .checks import find_targets

    settings = _load(config_path)
    ws = _chosen_workspace(settings, workspace_name)
    _quiet_logging(settings)
    try:
        for line in asyncio.run(find_targets(settings, ws, query)):
            click.echo(line)
    except Exception as e:
        _die(EXIT_RUNTIME, redact(f"find failed: {e}", settings.secrets()))


@main.command()
@config_option
@workspace_option
@click.option("--to", "to", required=True, help="@username or ~channel")
@click.option("--subject", default=None, help="Case subject (default: the first line of TEXT).")
@click.argument("text")
def send(config_path: str, workspace_name: str | None, to: str, subject: str | None, text: str) -> None:
    """Start an outgoing chat with a member or a channel."""
    from .checks import ConfigProblem, TargetNotFound, send_outgoing

    settings = _load(config_path)
    ws = _chosen_workspace(settings, workspace_name)
    if not (to.startswith("@") or to.startswith("~")) or len(to) < 2:
        _die(EXIT_CONFIG, "usage error: --to: must be @username or ~channel")
    _quiet_logging(settings)
    try:
        click.echo(asyncio.run(send_outgoing(settings, ws, to, subject, text)))
    except ConfigProblem as e:
        _die(EXIT_CONFIG, f"config error: {e}")
    except TargetNotFound as e:  # not any LookupError: a KeyError is a failure, not the user's mistake
        _die(EXIT_CONFIG, f"usage error: --to: {e}")
    except Exception as e:
        _die(EXIT_RUNTIME, redact(f"send failed: {e}", settings.secrets()))


@main.command()
@config_option
def init(config_path: str) -> None:
    """Write the commented example config to -c FILE; never overwrites."""
    from .placeholders import example_text

    path = Path(config_path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as out:  # "x": an existing file (or symlink) is kept
            try:
                out.write(example_text())
            except OSError:
                path.unlink()  # a half-written example would block the next `init`
                raise
    except FileExistsError:
        _die(EXIT_CONFIG, f"usage error: {config_path} already exists; not overwritten")
    except OSError as e:
        _die(EXIT_CONFIG, f"usage error: cannot write {config_path}: {e.strerror or e}")
    click.echo(f"wrote {config_path}: fill in your values (secrets stay in the environment), "
               f"then run: deskie-mm-bot check -c {config_path}")


@main.command()
@click.option("--demo", is_flag=True, help="Play a scripted conversation, print the transcript, and exit.")
@click.option("--reply-mode", type=click.Choice(["group_chat", "thread"]), default="group_chat", show_default=True)
@click.option("--mention-only/--all-posts", default=True, show_default=True,
              help="In channels, relay only posts that @mention the bot.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where the sandbox keeps its config and state (default: a temporary folder).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port of the console page on 127.0.0.1 (default 8765, or a free one if that is taken).")
@click.option("--no-browser", is_flag=True, help="Do not open the console in a browser.")
def sandbox(demo: bool, reply_mode: str, mention_only: bool, workdir: str | None, port: int | None,
            no_browser: bool) -> None:
    """Start local Mattermost and Deskie emulators, the bot wired to them, and a console page in the
    browser where you play the customers and the agents."""
    from .sandbox_runner import run_sandbox

    sys.exit(run_sandbox(demo=demo, reply_mode=reply_mode, mention_only=mention_only, workdir=workdir,
                         port=port, open_browser=not no_browser))


if __name__ == "__main__":
    main()
