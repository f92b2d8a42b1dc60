"""``/_emu/...`` JSON control endpoints (no auth): thin wrappers over the Python control API."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .server import DeskieEmulator


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def _decoded(attachments: Any) -> Any:
    """Attachments as given, with any ``data_base64`` (how a browser sends a file) turned into bytes."""
    if not isinstance(attachments, list):
        return attachments
    out = []
    for item in attachments:
        if isinstance(item, dict) and "data_base64" in item:
            item = dict(item)
            try:
                item["data"] = base64.b64decode(str(item.pop("data_base64")), validate=True)
            except binascii.Error:
                raise ValueError("data_base64 is not base64") from None
        out.append(item)
    return out


def register(app: web.Application, emu: DeskieEmulator) -> None:
    async def guarded(request: web.Request, fn: Any) -> web.Response:
        try:
            return web.json_response(await fn(request))
        except KeyError as exc:
            return web.json_response({"error": f"not_found: {exc}"}, status=404)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def agent_reply(request: web.Request) -> Any:
        b = await _body(request)
        return {
            "message": emu.agent_reply(
                b["case_id"],
                content=b.get("content"),
                html=b.get("html"),
                note=bool(b.get("note", False)),
                staff_id=b.get("staff_id"),
                attachments=_decoded(b.get("attachments")),
            )
        }

    async def close_case(request: web.Request) -> Any:
        b = await _body(request)
        return {"case": emu.close_case(b["case_id"])}

    async def end_chat(request: web.Request) -> Any:
        b = await _body(request)
        return {"case": emu.end_chat(b["case_id"])}

    async def set_status(request: web.Request) -> Any:
        b = await _body(request)
        return {"case": emu.set_status(b["case_id"], b["status"])}

    async def cases(request: web.Request) -> Any:
        return {"cases": emu.cases(request.query.get("channel"))}

    async def messages(request: web.Request) -> Any:
        return {"messages": emu.messages(request.match_info["case_id"])}

    async def outgoing(request: web.Request) -> Any:
        b = await _body(request)
        return {
            "case": emu.create_outgoing_case(
                b["channel"],
                b["user_custom_id"],
                b.get("user_full_name", ""),
                b["content"],
                staff_id=b.get("staff_id"),
                subject=b.get("subject"),
            )
        }

    async def faults(request: web.Request) -> Any:
        b = await _body(request)
        kind = str(b.get("kind", ""))
        if kind == "clear":
            emu.clear_faults()
        elif "n" in b:
            n = int(b["n"])
            if kind in ("fail", "5xx"):
                emu.fail_next(n, status=int(b.get("status", 500)))
            elif kind == "hang":
                emu.hang_next(n, seconds=float(b.get("seconds", 30.0)))
            elif kind in ("throttle", "429", "403rate"):
                emu.throttle_next(n, retry_after=int(b.get("retry_after", 5)))
            else:
                raise ValueError(f"unknown fault kind {kind!r}")
        elif "seconds" in b:
            emu.outage(float(b["seconds"]), {"fail": "5xx", "throttle": "429"}.get(kind, kind))
        else:
            raise ValueError("give n or seconds")
        return {"ok": True}

    async def counters(request: web.Request) -> Any:
        return emu.counters()

    async def webhook(request: web.Request) -> Any:
        b = await _body(request)
        if "url" in b:
            emu.set_webhook_url(b["channel"], b["url"])
        if "enabled" in b:
            emu.set_webhook_enabled(bool(b["enabled"]))
        if "format" in b:
            emu.webhook_format = str(b["format"])
        return {"ok": True, "deliveries": emu.webhook_deliveries}

    def route(fn: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return await guarded(request, fn)

        return handler

    app.router.add_post("/_emu/agent_reply", route(agent_reply))
    app.router.add_post("/_emu/close_case", route(close_case))
    app.router.add_post("/_emu/set_status", route(set_status))
    app.router.add_post("/_emu/end_chat", route(end_chat))
    app.router.add_get("/_emu/cases", route(cases))
    app.router.add_get("/_emu/cases/{case_id}/messages", route(messages))
    app.router.add_post("/_emu/outgoing_case", route(outgoing))
    app.router.add_post("/_emu/faults", route(faults))
    app.router.add_get("/_emu/counters", route(counters))
    app.router.add_post("/_emu/webhook", route(webhook))

    # What the sandbox console needs: the whole account at once, a change feed, end chat, the plan.
    async def snapshot(request: web.Request) -> Any:
        state = emu.state
        with state.lock:
            version = emu.changes.version
            cases = []
            for _, case in sorted(state.cases.items()):
                user = state.users.get(case.user_id)
                cases.append({
                    **case.to_api(state.fmt),
                    "chat_active": emu.chat_active(case.case_id),
                    "user": user.to_api(state.fmt) if user else None,
                    "messages": [m.to_api(state.fmt) for m in case.messages],
                })
            staff = [st.to_api(state.fmt) for st in state.staff.values()]
            groups = [g.to_api(state.fmt) for g in state.groups.values()]
            channels = [c.to_api() for c in state.channels.values()]
        return {"version": version, "cases": cases, "staff": staff, "groups": groups, "channels": channels,
                "counters": emu.counters()}

    async def changes(request: web.Request) -> Any:
        since = int(request.query.get("since", 0))
        timeout = float(request.query.get("timeout", 25))
        return {"version": await emu.changes.wait(since, timeout)}

    async def rate_limit(request: web.Request) -> Any:
        rpm = int((await _body(request))["rate_limit_per_minute"])
        if rpm < 1:
            raise ValueError("rate_limit_per_minute must be at least 1")
        emu.set_rate_limit(rpm)
        return {"rate_limit_per_minute": rpm}

    app.router.add_get("/_emu/snapshot", route(snapshot))
    app.router.add_get("/_emu/changes", route(changes))
    app.router.add_post("/_emu/rate_limit", route(rate_limit))
