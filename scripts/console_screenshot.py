#!/usr/bin/env python3
"""The README's console screenshot: start `deskie-mm-bot sandbox`, play a short conversation through the
console page in headless Chromium (Playwright; Debian's `chromium`, never `playwright install`), and save
the page.

    python scripts/console_screenshot.py [--out docs/console.png] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parent.parent
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def tiny_png(path: Path) -> None:
    """A small orange picture, to attach (a customer's photo of the printer)."""
    w, h = 120, 80
    rows = b"".join(b"\x00" + bytes((240, 120 + y, 40)) * w for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "console.png"))
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="console-shot-"))
    photo = work / "printer.png"
    tiny_png(photo)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("DISPLAY", None)
    proc = subprocess.Popen([sys.executable, "-m", "deskie_mm_bot", "sandbox", "--no-browser", "--port", "0",
                             "--workdir", str(work / "sandbox")], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=str(REPO))
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[1]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1440, "height": 860}, device_scale_factor=1)
            page.goto(url)
            expect(page.locator("#health")).to_contain_text("healthy", timeout=20_000)

            page.select_option("#me", label="Bob Stone (@bob)")
            page.locator("#convs .item", has_text="~support").click()
            page.fill("#mm-text", "@helpbot the projector in room 4 is dead")
            page.press("#mm-text", "Enter")
            expect(page.locator("#cases .item", has_text="projector")).to_be_visible(timeout=15_000)

            page.select_option("#me", label="Jane Doe (@jane)")
            page.locator("#convs .item", has_text="@helpbot").click()
            page.fill("#mm-text", "Hi! My printer is on fire. Literally.")
            page.press("#mm-text", "Enter")
            case = page.locator("#cases .item", has_text="printer is on fire")
            expect(case).to_be_visible(timeout=15_000)
            case.click()

            page.locator("#dk-text").click()
            page.keyboard.type("Please step away from the printer and:")
            page.keyboard.press("Enter")
            page.click(".toolbar [data-cmd=insertUnorderedList]")
            page.keyboard.type("unplug it")
            page.keyboard.press("Enter")
            page.keyboard.type("call ")
            page.click(".toolbar [data-cmd=bold]")
            page.keyboard.type("facilities")
            page.click("#dk-send")
            expect(page.locator("#posts .post.bot")).to_contain_text("facilities", timeout=15_000)

            page.fill("#mm-text", "Thanks, unplugged it. Fire is out. Here is what is left of it:")
            page.set_input_files("#mm-files", str(photo))
            page.press("#mm-text", "Enter")
            expect(page.locator("#messages .msg.customer", has_text="Fire is out")).to_be_visible(timeout=15_000)

            page.locator("#dk-text").click()
            page.keyboard.type("Facilities ticket F-88 opened for the printer.")
            page.check("#dk-note")
            page.click("#dk-send")
            expect(page.locator("#messages .msg.note")).to_be_visible()
            page.wait_for_timeout(3500)  # one refresh of the strip (queues back at 0)
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            browser.close()
        print(f"saved {out}")
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
