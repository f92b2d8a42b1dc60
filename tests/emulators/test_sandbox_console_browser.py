"""The console in a real browser: Debian's Chromium, headless, driven by Playwright, plays a customer and an
agent through the page against `deskie-mm-bot sandbox` (the real bot and both emulators, in a subprocess).

Skipped, with the reason, when Playwright or a Chromium is missing or the browser does not start (`.ci/run`
installs Debian's `chromium`). The screenshot is kept in $DESKIE_TEST_ARTIFACTS (or the test's tmp dir).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.sandbox_process import running_sandbox

# Playwright starts it with a fresh temporary profile (--user-data-dir); these keep it quiet and local:
# no background downloads, updates, sync or QUIC, nothing beyond loopback.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    given = os.environ.get("DESKIE_TEST_CHROMIUM")
    if given:
        return given
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def artifacts_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DESKIE_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _bot_posts(base: str, user: str) -> list[dict[str, Any]]:
    snap = requests.get(base + "mm/_emu/snapshot", timeout=5).json()
    users = {u["username"]: u["id"] for u in snap["users"]}
    dm = next(c for c in snap["channels"] if c["type"] == "D" and set(c["members"]) == {users[user], users["helpbot"]})
    posts = requests.get(base + f"mm/_emu/posts/{dm['id']}", timeout=5).json()
    return [p for p in posts if p["user_id"] == users["helpbot"]]


def test_console_round_trip_in_a_browser(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'")
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set DESKIE_TEST_CHROMIUM)")
    t0 = time.monotonic()
    stack = contextlib.ExitStack()  # the sandbox, started once the browser is known to work
    with stack, sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS, timeout=30_000)
        except sync_api.Error as e:
            pytest.skip(f"Chromium at {exe} did not start: {str(e).splitlines()[0]}")
        expect = sync_api.expect
        try:
            sb = stack.enter_context(running_sandbox("--no-browser", "--port", "0", workdir=tmp_path / "sandbox"))
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
            page.goto(sb.url)

            # The customer: Jane writes to the bot in a direct message (markup she types stays text).
            page.select_option("#me", label="Jane Doe (@jane)")
            page.locator("#convs .item", has_text="@helpbot").click()
            page.fill("#mm-text", "My printer is on fire <img src=x onerror=alert(1)>")
            page.press("#mm-text", "Enter")
            expect(page.locator("#posts .post", has_text="My printer is on fire <img")).to_be_visible()

            # The case appears in the Deskie pane, live.
            case = page.locator("#cases .item", has_text="My printer is on fire")
            expect(case).to_be_visible(timeout=15_000)
            case.click()
            expect(page.locator("#messages .msg.customer")).to_contain_text("My printer is on fire <img")
            expect(page.locator("#case-head")).to_contain_text("Jane Doe (@jane)")

            # The agent answers with formatting; the bot brings it into the DM as Markdown.
            page.locator("#dk-text").click()
            page.keyboard.type("Unplug it ")
            page.click(".toolbar [data-cmd=bold]")
            page.keyboard.type("now")
            page.click("#dk-send")
            expect(page.locator("#messages .msg.agent")).to_contain_text("Unplug it now")
            answer = page.locator("#posts .post.bot")
            expect(answer).to_contain_text("Unplug it now", timeout=15_000)
            expect(answer.locator("strong")).to_have_text("now")

            shot = artifacts_dir(tmp_path) / "console-round-trip.png"
            page.screenshot(path=str(shot))
            assert page.locator("#posts img, #messages img").count() == 0
            assert errors == []
        finally:
            browser.close()
        # What the page showed is what the Mattermost emulator holds: one answer, from the real bot.
        [posted] = _bot_posts(sb.url, "jane")
        assert posted["message"].endswith("Unplug it **now**"), json.dumps(posted)
    with capsys.disabled():
        print(f"\n  console screenshot: {shot}  (browser round trip {time.monotonic() - t0:.1f} s)")
