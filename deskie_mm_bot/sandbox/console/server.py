"""``ConsoleServer``: serves the console page and forwards its calls to the emulators and the bot.

The page is static (HTML, CSS, plain JavaScript in ``static/``). Everything it shows comes from the
emulators' own control APIs (``/_emu/...``) and the bot's public ``/healthz`` and ``/metrics``; this
server only forwards those paths so the page has one origin, and serves the page's settings
(``/console/config.json``), which whoever starts it supplies. It knows nothing of the bot.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import Future
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

# Which paths of each upstream the page may reach: the control APIs and the bot's public endpoints only.
ALLOWED = {"mm": ("_emu/",), "dk": ("_emu/",), "bot": ("healthz", "metrics")}
STATIC = {"index.html": "text/html", "console.js": "text/javascript", "console.css": "text/css"}
FORWARD_HEADERS = ("Content-Type", "Content-Disposition")
# Long enough for a long-poll of /_emu/changes (at most 30 s) to come back on its own.
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=40)


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


class ConsoleServer:
    def __init__(self, upstreams: dict[str, str], config: dict[str, Any], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        unknown = set(upstreams) - set(ALLOWED)
        if unknown:
            raise ValueError(f"unknown upstreams {sorted(unknown)}")
        self.upstreams = {k: v.rstrip("/") for k, v in upstreams.items()}
        self.config = config
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ConsoleServer:
        """Serve in a background thread; raises OSError when the port is taken."""
        if self._thread is not None:
            return self
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="sandbox-console", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=15)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            raise
        return self

    def _run(self, ready: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # a taken port: reported to start()
            ready.set_exception(exc)
            loop.close()
            return
        ready.set_result(None)
        loop.run_forever()
        loop.close()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._asset)
        app.router.add_get("/console/config.json", self._config)
        app.router.add_route("*", "/{upstream:mm|dk|bot}/{tail:.*}", self._forward)
        self._session = aiohttp.ClientSession(timeout=UPSTREAM_TIMEOUT)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await self._session.close()
            await self._runner.cleanup()
            raise
        self.port = int(self._runner.addresses[0][1])

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._loop = None
            self._thread = None

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ handlers
    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=_static("index.html"), content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=_static(name), content_type=STATIC[name], charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def _config(self, request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(self.config), content_type="application/json")

    async def _forward(self, request: web.Request) -> web.Response:
        upstream, tail = request.match_info["upstream"], request.match_info["tail"]
        base = self.upstreams.get(upstream)
        if base is None or not any(tail == p or (p.endswith("/") and tail.startswith(p))
                                   for p in ALLOWED[upstream]):
            return web.json_response({"error": f"the console does not forward /{upstream}/{tail}"}, status=404)
        assert self._session is not None
        body = await request.read()
        headers = {"Content-Type": request.headers["Content-Type"]} if "Content-Type" in request.headers else {}
        try:
            async with self._session.request(request.method, f"{base}/{tail}", params=request.query,
                                             data=body or None, headers=headers) as up:
                data = await up.read()
                out = {h: up.headers[h] for h in FORWARD_HEADERS if h in up.headers}
                return web.Response(body=data, status=up.status, headers=out)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return web.json_response({"error": f"{upstream} is not answering: {type(exc).__name__}"}, status=502)
