"""The emulated account: all business rules, guarded by one re-entrant lock.

Public-API operations raise :class:`ApiError` (HTTP status + Deskie error code); the HTTP layer
turns it into ``{"error": code}``. Control operations (used from Python) raise ``KeyError`` /
``ValueError`` instead.
"""

from __future__ import annotations

import html as html_lib
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote

from .forms import UploadedFile
from .models import Attachment, Case, CustomChannel, Group, Message, Staff, User
from .search import text_matches
from .timeutil import format_time, parse_filter_time
from .variants import DeskieVariants

Query = dict[str, list[str]]
WebhookSink = Callable[[dict[str, Any]], None]

STATUSES = ("open", "waiting", "closed")
PRIORITIES = ("low", "normal", "high", "critical")
# The documented sort values (§5.4): by update, creation, last reply, priority, status.
SORTS = tuple(
    f"{field}_{direction}"
    for field in ("updated_at", "created_at", "response", "priority", "status")
    for direction in ("asc", "desc")
)
CHAT_TIMEOUT = 600.0  # Deskie's default inactivity timeout for chats (KB 144), an account setting


class ApiError(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code


def keyed_list(root: str, items: Iterable[dict[str, Any]], total: int) -> dict[str, Any]:
    """The Deskie list shape: ``{"0": {root: {...}}, "1": ..., "total_count": N}``."""
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        out[str(i)] = {root: item}
    out["total_count"] = total
    return out


def q_last(q: Query, name: str) -> str | None:
    vals = q.get(name)
    return vals[-1] if vals else None


def q_all(q: Query, name: str) -> list[str]:
    """An array parameter in any of the forms in use: `a=x,y`, `a[]=x`, PHP's `a[0]=x&a[1]=y`."""
    indexed = sorted(
        (k for k in q if k.startswith(name + "[") and k.endswith("]") and k[len(name) + 1 : -1].isdigit()),
        key=lambda k: int(k[len(name) + 1 : -1]),
    )
    vals = [*q.get(name, []), *q.get(name + "[]", [])]
    for k in indexed:
        vals.extend(q[k])
    out: list[str] = []
    for v in vals:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def parse_int(value: Any, *, code: str = "wrong_params") -> int:
    if isinstance(value, bool):
        raise ApiError(400, code)
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise ApiError(400, code) from None


def paging(q: Query, *, max_page: int = 500, max_limit: int = 100) -> tuple[int, int]:
    page_s, limit_s = q_last(q, "page"), q_last(q, "limit")
    page = parse_int(page_s) if page_s not in (None, "") else 1
    limit = parse_int(limit_s) if limit_s not in (None, "") else max_limit
    if page == 0:
        page = 1  # live code starts its loops at page=0 and works (§2); read as the first page
    if not 1 <= page <= max_page or not 1 <= limit <= max_limit:
        raise ApiError(400, "wrong_params")
    return page, limit


_SORT_KEYS: dict[str, Callable[[Case], Any]] = {
    "updated_at": lambda c: c.updated,
    "created_at": lambda c: c.created,
    "response": lambda c: c.last_response or 0.0,
    "priority": lambda c: PRIORITIES.index(c.priority),
    "status": lambda c: STATUSES.index(c.status),
}


def html_to_text(html: str) -> str:
    text = re.sub(r"(?i)<br\s*/?>", "\n", html)
    text = re.sub(r"(?i)</p\s*>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    return html_lib.unescape(text).strip()


def text_to_html(text: str) -> str:
    return html_lib.escape(text).replace("\n", "<br>")


class AccountState:
    def __init__(self, utc_offset_minutes: int = 180) -> None:
        self.lock = threading.RLock()
        self.utc_offset_minutes = utc_offset_minutes
        self.clock_offset = 0.0
        self.base_url = "http://127.0.0.1"
        self.webhook_sink: WebhookSink | None = None
        self.variants = DeskieVariants()
        self.chat_timeout = CHAT_TIMEOUT
        self.staff: dict[int, Staff] = {}
        self.groups: dict[int, Group] = {}
        self.channels: dict[str, CustomChannel] = {}
        self.users: dict[int, User] = {}
        # (channel, user_custom_id) -> user id: an account with 10,000 chat users still finds one at once.
        self._user_by_custom_id: dict[tuple[str, str], int] = {}
        self.cases: dict[int, Case] = {}
        self.files: dict[int, Attachment] = {}
        self._next = {
            "staff": 20,
            "group": 40,
            "user": 100,
            "case": 2000,
            "message": 200000,
            "file": 300,
            "channel": 1,
        }

    # ----------------------------------------------------------------- basics
    def now(self) -> float:
        return time.time() + self.clock_offset

    def fmt(self, ts: float) -> str:
        return format_time(ts, self.utc_offset_minutes)

    def _new_id(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value

    @staticmethod
    def case_number_for(case_id: int) -> str:
        return f"{(case_id * 7) % 900 + 100}-{(case_id * 7919) % 900000 + 100000}"

    def matches(self, pattern: str, value: str | None) -> bool:
        return text_matches(pattern, value, self.variants.search_anchors)

    def paging(self, q: Query) -> tuple[int, int]:
        page, limit = paging(q)
        return (1, limit) if self.variants.paging == "ignore_page" else (page, limit)

    # -------------------------------------------------------------- directory
    def add_staff(self, email: str, full_name: str, api_key: str | None = None) -> dict[str, Any]:
        with self.lock:
            if any(s.email.lower() == email.lower() for s in self.staff.values()):
                raise ValueError(f"staff {email!r} already exists")
            now = self.now()
            st = Staff(self._new_id("staff"), email, full_name, api_key, now, now)
            self.staff[st.staff_id] = st
            return st.to_api(self.fmt)

    def add_group(self, title: str) -> dict[str, Any]:
        with self.lock:
            now = self.now()
            g = Group(self._new_id("group"), title, now, now)
            self.groups[g.group_id] = g
            return g.to_api(self.fmt)

    def add_channel(
        self, api_key: str, title: str, webhook_url: str | None, channel_type: str
    ) -> dict[str, Any]:
        with self.lock:
            if api_key in self.channels:
                raise ValueError(f"custom channel {api_key!r} already exists")
            m = re.fullmatch(r"cch(\d+)", api_key)
            if m and all(c.channel_id != int(m.group(1)) for c in self.channels.values()):
                cid = int(m.group(1))
            else:
                cid = max([c.channel_id for c in self.channels.values()] + [0]) + 1
            ch = CustomChannel(cid, api_key, title, channel_type, webhook_url)
            self.channels[api_key] = ch
            return ch.to_api()

    def set_webhook_url(self, channel_api_key: str, url: str | None) -> None:
        with self.lock:
            if channel_api_key not in self.channels:
                raise KeyError(channel_api_key)
            self.channels[channel_api_key].webhook_url = url

    def authenticate(self, email: str, key: str) -> Staff | None:
        with self.lock:
            for st in self.staff.values():
                if st.api_key is not None and st.email.lower() == email.lower() and st.api_key == key:
                    return st
            return None

    def auth_failure_status(self, email: str) -> int:
        """Live code reads 401 as a wrong API key and 403 as a wrong staff login (§1, §3)."""
        with self.lock:
            known = any(st.email.lower() == email.lower() for st in self.staff.values())
            return 401 if known else 403

    def default_staff(self) -> Staff:
        with self.lock:
            if not self.staff:
                self.add_staff("agent@sandbox.local", "Sandbox Agent")
            return self.staff[min(self.staff)]

    # ------------------------------------------------------------------ users
    def _find_or_create_user(self, fields: dict[str, Any], channel: str) -> User:
        custom_id = str(fields.get("user_custom_id") or "").strip()
        email = str(fields.get("user_email") or "").strip()
        phone = str(fields.get("user_phone") or "").strip()
        name = str(fields.get("user_full_name") or "").strip()
        if fields.get("user_id") not in (None, "", 0, "0"):
            uid = parse_int(fields["user_id"])
            if uid not in self.users:
                raise ApiError(400, "user_not_found")
            return self.users[uid]
        now = self.now()
        if custom_id:
            if not channel.startswith("cch"):
                raise ApiError(400, "wrong_params")
            known = self._user_by_custom_id.get((channel, custom_id))
            if known is not None:
                return self.users[known]
            u = User(
                self._new_id("user"), name or custom_id, now, now, custom_id=custom_id, custom_channel=channel
            )
        elif email:
            if "@" not in email:
                raise ApiError(400, "incorrect_user_email")
            for u in self.users.values():
                if u.email.lower() == email.lower():
                    return u
            u = User(self._new_id("user"), name or email, now, now, email=email)
        elif phone:
            for u in self.users.values():
                if u.phone == phone:
                    return u
            u = User(self._new_id("user"), name or phone, now, now, phone=phone)
        else:
            raise ApiError(400, "wrong_params")
        self.users[u.user_id] = u
        if u.custom_id:
            self._user_by_custom_id[(u.custom_channel, u.custom_id)] = u.user_id
        return u

    def list_users(self, q: Query) -> dict[str, Any]:
        page, limit = self.paging(q)
        with self.lock:
            users = sorted(self.users.values(), key=lambda u: u.user_id)
            if (v := q_last(q, "user_custom_id")) is not None:
                users = [u for u in users if self.matches(v, u.custom_id)]
            if (v := q_last(q, "user_custom_channel")) is not None:
                want = v if v.startswith("cch") else f"cch{v}"
                users = [u for u in users if u.custom_channel == want]
            if (v := q_last(q, "user_email")) is not None:
                users = [u for u in users if self.matches(v, u.email)]
            if (v := q_last(q, "user_phone")) is not None:
                users = [u for u in users if self.matches(v, u.phone)]
            chunk = users[(page - 1) * limit : page * limit]
            return keyed_list("user", [u.to_api(self.fmt) for u in chunk], len(users))

    def get_user_api(self, ref: str) -> dict[str, Any]:
        with self.lock:
            uid = parse_int(ref, code="user_not_found")
            if uid not in self.users:
                raise ApiError(404, "user_not_found")
            return {"user": self.users[uid].to_api(self.fmt)}

    # ------------------------------------------------------------------ cases
    def find_case(self, ref: str | int) -> Case:
        with self.lock:
            s = str(ref).strip()
            if s.isdigit() and int(s) in self.cases:
                return self.cases[int(s)]
            for c in self.cases.values():
                if c.case_number == s:
                    return c
            raise ApiError(404, "case_not_found")

    def _make_attachments(self, raw: Any) -> list[Attachment]:
        items: list[Any]
        if raw is None or raw == "":
            return []
        if isinstance(raw, dict):
            items = [raw[k] for k in sorted(raw, key=lambda k: (len(str(k)), str(k)))]
        elif isinstance(raw, list):
            items = raw
        else:
            items = [raw]
        out: list[Attachment] = []
        for item in items:
            fid = self._new_id("file")
            if isinstance(item, UploadedFile):
                att = Attachment(fid, item.file_name, len(item.data), item.mime_type, "", item.data)
            elif isinstance(item, str):
                name = item.rstrip("/").rsplit("/", 1)[-1] or "file"
                att = Attachment(fid, name, 0, "application/octet-stream", item)
            elif isinstance(item, dict):
                data = item.get("data")
                if isinstance(data, str):
                    data = data.encode()
                from_url = unquote(str(item.get("url") or "").rstrip("/").rsplit("/", 1)[-1])
                name = str(item.get("file_name") or from_url or "file")
                size = len(data) if isinstance(data, bytes) else int(item.get("file_size") or 0)
                att = Attachment(
                    fid,
                    name,
                    size,
                    str(item.get("mime_type") or "application/octet-stream"),
                    str(item.get("url") or ""),
                    data if isinstance(data, bytes) else None,
                )
            else:
                raise ApiError(400, "wrong_params")
            if not att.url:
                att.url = f"{self.base_url}/files/{fid}/{quote(att.file_name)}"
            self.files[fid] = att
            out.append(att)
        return out

    def _add_message(
        self,
        case: Case,
        *,
        user_id: int,
        staff_id: int,
        content: Any,
        html: Any,
        attachments: Any,
        note: bool,
    ) -> Message:
        content_s = "" if content is None else str(content)
        html_s = "" if html is None else str(html)
        atts = self._make_attachments(attachments)
        if not content_s.strip() and not html_s.strip() and not atts:
            raise ApiError(400, "wrong_params")
        now = self.now()
        msg = Message(
            message_id=self._new_id("message"),
            case_id=case.case_id,
            user_id=user_id,
            staff_id=staff_id,
            content=content_s if content_s else html_to_text(html_s),
            content_html=html_s if html_s else text_to_html(content_s),
            html_given=bool(html_s),
            note=note,
            created=now,
            attachments=atts,
        )
        case.messages.append(msg)
        case.updated = now
        if not note and self._is_chat(case):
            case.chat_active = True  # a new message from either side reactivates an ended chat
            case.chat_activity = now
        if user_id and user_id in self.users:
            self.users[user_id].last_contact = now
            self.users[user_id].updated = now
        return msg

    def _set_status(self, case: Case, status: str) -> None:
        if status not in STATUSES:
            raise ApiError(400, "wrong_params")
        now = self.now()
        if status != case.status:
            case.status = status
            case.closed = now if status == "closed" else None
        case.updated = now
        if status == "closed":
            case.chat_active = False  # closing a case ends its chat

    # ---------------------------------------------------------------- chats
    def _is_chat(self, case: Case) -> bool:
        ch = self.channels.get(case.channel)
        return ch is not None and ch.channel_type == "sync"

    def _end_chat(self, case: Case, at: float) -> None:
        case.chat_active = False
        if self.variants.chat_end_bumps_updated:
            case.updated = max(case.updated, at)

    def expire_chats(self) -> None:
        """Deskie's own inactivity timeout, applied when anyone looks."""
        now = self.now()
        for case in self.cases.values():
            if case.chat_active and case.chat_activity + self.chat_timeout <= now:
                self._end_chat(case, case.chat_activity + self.chat_timeout)

    def end_chat(self, case_id: int | str) -> dict[str, Any]:
        """An agent's "end chat": the chat moves to the all-cases list; its status is unchanged."""
        with self.lock:
            case = self.control_case(case_id)
            if case.chat_active:
                self._end_chat(case, self.now())
            return case.to_api(self.fmt)

    def chat_active(self, case_id: int | str) -> bool:
        with self.lock:
            self.expire_chats()
            return self.control_case(case_id).chat_active

    def _resolve_group(self, value: Any) -> int:
        gid = parse_int(value, code="group_not_found")
        if gid not in self.groups:
            raise ApiError(400, "group_not_found")
        return gid

    def _resolve_staff(self, value: Any) -> int:
        sid = parse_int(value, code="staff_not_found")
        if sid not in self.staff:
            raise ApiError(400, "staff_not_found")
        return sid

    def _fire_webhook(self, case: Case, msg: Message) -> None:
        ch = self.channels.get(case.channel)
        if ch is None or not ch.webhook_url or self.webhook_sink is None:
            return
        user = self.users.get(case.user_id)
        obj: dict[str, Any] = {
            "message_id": msg.message_id,
            "case_id": case.case_id,
            "case_number": case.case_number,
            "custom_user_id": user.custom_id if user else "",
            "user_id": case.user_id,
            "staff_id": msg.staff_id,
            "content": msg.content,
            "note": 1 if msg.note else 0,
            "sent_via_rule": 1 if msg.sent_via_rule else 0,
            "attachments": [
                {"url": a.url}
                if self.variants.webhook_attachments == "url_only"
                else {"url": a.url, "file_name": a.file_name, "mime_type": a.mime_type}
                for a in msg.attachments
            ],
        }
        if msg.html_given:
            obj["content_html"] = msg.content_html
        self.webhook_sink(
            {
                "url": ch.webhook_url,
                "case_id": case.case_id,
                "message_id": msg.message_id,
                "object": obj,
                "html": msg.content_html,
            }
        )

    def create_case(self, fields: dict[str, Any], *, outgoing_staff_id: int | None = None) -> Case:
        with self.lock:
            channel = str(fields.get("channel") or "").strip()
            if channel.startswith("cch") and channel not in self.channels:
                raise ApiError(400, "channel_not_found")
            if not channel:
                channel = "email" if fields.get("user_email") else "web"
            group_id = (
                self._resolve_group(fields["group_id"])
                if fields.get("group_id") not in (None, "", 0, "0")
                else (min(self.groups) if self.groups else 0)
            )
            staff_id = (
                self._resolve_staff(fields["staff_id"])
                if fields.get("staff_id") not in (None, "", 0, "0")
                else 0
            )
            priority = str(fields.get("priority") or "normal")
            if priority not in PRIORITIES:
                raise ApiError(400, "wrong_params")
            status = str(fields.get("status") or "open")
            if status not in ("open", "waiting"):
                raise ApiError(400, "wrong_params")
            content, html = fields.get("content"), fields.get("content_html")
            attachments: list[Any] = []
            for key in ("attachments", "attachment_urls"):
                raw = fields.get(key)
                if isinstance(raw, dict):
                    attachments.extend(raw[k] for k in sorted(raw, key=lambda k: (len(str(k)), str(k))))
                elif isinstance(raw, list):
                    attachments.extend(raw)
                elif raw:
                    attachments.append(raw)
            if not str(content or "").strip() and not str(html or "").strip() and not attachments:
                raise ApiError(400, "wrong_params")
            user = self._find_or_create_user(fields, channel)
            subject = str(fields.get("subject") or "").strip()
            if not subject:
                subject = (str(content or "") or html_to_text(str(html or ""))).strip().split("\n")[0][
                    :100
                ] or "(no subject)"
            now = self.now()
            cid = self._new_id("case")
            case = Case(
                cid,
                self.case_number_for(cid),
                subject,
                user.user_id,
                staff_id,
                group_id,
                status,
                priority,
                channel,
                now,
                now,
                recipient=user.email or user.custom_id or user.phone,
            )
            if isinstance(fields.get("custom_fields"), dict):
                case.custom_fields = dict(fields["custom_fields"])
            if isinstance(fields.get("labels"), list):
                case.labels = list(fields["labels"])
            self.cases[cid] = case
            if outgoing_staff_id is not None:
                case.staff_id = case.staff_id or outgoing_staff_id
                msg = self._add_message(
                    case,
                    user_id=0,
                    staff_id=outgoing_staff_id,
                    content=content,
                    html=html,
                    attachments=attachments,
                    note=False,
                )
                case.status = "waiting"
                case.last_response = msg.created
                self._fire_webhook(case, msg)
            else:
                self._add_message(
                    case,
                    user_id=user.user_id,
                    staff_id=0,
                    content=content,
                    html=html,
                    attachments=attachments,
                    note=False,
                )
            case.created = case.messages[0].created
            return case

    def create_case_api(self, body: dict[str, Any]) -> dict[str, Any]:
        fields = body.get("case")
        if not isinstance(fields, dict):
            raise ApiError(400, "wrong_params")
        with self.lock:
            answer = self.create_case(fields).to_api(self.fmt)
            if not self.variants.create_answer_user_id:
                answer.pop("user_id", None)
            return {"case": answer}

    def update_case_api(self, ref: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fields = body.get("case")
        if not isinstance(fields, dict) or not fields:
            raise ApiError(400, "wrong_params")
        with self.lock:
            case = self.find_case(ref)
            # validate everything before changing anything
            status = fields.get("status")
            if status is not None and status not in STATUSES:
                raise ApiError(400, "wrong_params")
            group_id = self._resolve_group(fields["group_id"]) if "group_id" in fields else None
            staff_id = (
                self._resolve_staff(fields["staff_id"])
                if fields.get("staff_id") not in (None, "", 0, "0")
                else (0 if "staff_id" in fields else None)
            )
            priority = fields.get("priority")
            if priority is not None and priority not in PRIORITIES:
                raise ApiError(400, "wrong_params")
            if status is not None:
                self._set_status(case, str(status))
            if group_id is not None:
                case.group_id = group_id
            if staff_id is not None:
                case.staff_id = staff_id
            if priority is not None:
                case.priority = str(priority)
            if fields.get("subject"):
                case.subject = str(fields["subject"])
            if isinstance(fields.get("custom_fields"), dict):
                case.custom_fields.update(fields["custom_fields"])
            case.updated = self.now()
            return case.case_id, {"case": case.to_api(self.fmt)}

    def list_cases(self, q: Query) -> dict[str, Any]:
        page, limit = self.paging(q)
        sort = q_last(q, "sort") or "created_at_desc"
        if sort not in SORTS:
            raise ApiError(400, "wrong_params")
        bounds: dict[str, int] = {}
        for name in ("from_time", "to_time", "from_updated_time", "to_updated_time"):
            v = q_last(q, name)
            if v not in (None, ""):
                try:
                    bounds[name] = parse_filter_time(
                        str(v), self.utc_offset_minutes, upper=name.startswith("to_")
                    )
                except ValueError:
                    raise ApiError(400, "wrong_params") from None
        with self.lock:
            self.expire_chats()
            cases = list(self.cases.values())
            if str(q_last(q, "show_active_chats") or "").lower() not in ("true", "1"):
                # Active chats are left out of case lists unless asked for (§0 item 2).
                cases = [c for c in cases if not c.chat_active]
            if chans := q_all(q, "channel"):
                cases = [c for c in cases if c.channel in chans]
            if statuses := q_all(q, "status"):
                if any(s not in STATUSES for s in statuses):
                    raise ApiError(400, "wrong_params")
                cases = [c for c in cases if c.status in statuses]
            for name, attr in (("user_id", "user_id"), ("group_id", "group_id"), ("staff_id", "staff_id")):
                if vals := q_all(q, name):
                    ids = {parse_int(v) for v in vals}
                    cases = [c for c in cases if getattr(c, attr) in ids]
            if prios := q_all(q, "priority"):
                cases = [c for c in cases if c.priority in prios]
            for name, attr in (
                ("user_custom_id", "custom_id"),
                ("user_email", "email"),
                ("user_phone", "phone"),
            ):
                if (v := q_last(q, name)) not in (None, ""):
                    cases = [
                        c
                        for c in cases
                        if c.user_id in self.users
                        and self.matches(str(v), getattr(self.users[c.user_id], attr))
                    ]
            if (v := q_last(q, "subject")) not in (None, ""):
                cases = [c for c in cases if self.matches(str(v), c.subject)]
            if "from_time" in bounds:
                cases = [c for c in cases if int(c.created) >= bounds["from_time"]]
            if "to_time" in bounds:
                cases = [c for c in cases if int(c.created) <= bounds["to_time"]]
            if "from_updated_time" in bounds:
                cases = [c for c in cases if int(c.updated) >= bounds["from_updated_time"]]
            if "to_updated_time" in bounds:
                cases = [c for c in cases if int(c.updated) <= bounds["to_updated_time"]]
            field_name, direction = sort.rsplit("_", 1)
            key = _SORT_KEYS[field_name]
            cases.sort(key=lambda c: (key(c), c.case_id), reverse=direction == "desc")
            chunk = cases[(page - 1) * limit : page * limit]
            return keyed_list("case", [c.to_api(self.fmt) for c in chunk], len(cases))

    def get_case_api(self, ref: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.expire_chats()
            case = self.find_case(ref)
            return case.case_id, {"case": case.to_api(self.fmt)}

    # --------------------------------------------------------------- messages
    def list_messages(self, ref: str, q: Query) -> tuple[int, dict[str, Any]]:
        order = q_last(q, "order") or "asc"
        if order not in ("asc", "desc"):
            raise ApiError(400, "wrong_params")
        explicit = q_last(q, "page") not in (None, "") or q_last(q, "limit") not in (None, "")
        page, limit = self.paging(q)
        with self.lock:
            case = self.find_case(ref)
            msgs = list(case.messages)
            if not explicit:
                msgs = msgs[-100:]
                if order == "desc":
                    msgs.reverse()
            else:
                if order == "desc":
                    msgs.reverse()
                msgs = msgs[(page - 1) * limit : page * limit]
            items = [m.to_api(self.fmt) for m in msgs]
            if self.variants.message_content == "html_only":
                for item in items:
                    item["content"] = ""
            return case.case_id, keyed_list("message", items, len(case.messages))

    def add_message_api(self, ref: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fields = body.get("message")
        if not isinstance(fields, dict):
            raise ApiError(400, "wrong_params")
        with self.lock:
            case = self.find_case(ref)
            has_user = fields.get("user_id") not in (None, "", 0, "0")
            has_staff = fields.get("staff_id") not in (None, "", 0, "0")
            if has_user == has_staff:
                raise ApiError(400, "wrong_params")
            atts = fields.get("attachments") or fields.get("attachment_urls")
            if has_user:
                uid = parse_int(fields["user_id"], code="incorrect_user")
                if uid not in self.users:
                    raise ApiError(400, "user_not_found")
                if uid != case.user_id:
                    raise ApiError(400, "incorrect_user")
                if case.status == "closed":
                    if self.variants.closed_case_messages != "reopen":
                        raise ApiError(400, "case_closed")
                    case.closed = None
                msg = self._add_message(
                    case,
                    user_id=uid,
                    staff_id=0,
                    content=fields.get("content"),
                    html=fields.get("content_html"),
                    attachments=atts,
                    note=False,
                )
                case.status = "open"
            else:
                sid = self._resolve_staff(fields["staff_id"])
                msg = self._agent_message(
                    case, sid, fields.get("content"), fields.get("content_html"), atts, False
                )
            return case.case_id, {"message": msg.to_api(self.fmt)}

    def _agent_message(
        self, case: Case, staff_id: int, content: Any, html: Any, atts: Any, note: bool, via_rule: bool = False
    ) -> Message:
        msg = self._add_message(
            case, user_id=0, staff_id=staff_id, content=content, html=html, attachments=atts, note=note
        )
        msg.sent_via_rule = via_rule
        if not note:
            if case.status == "closed":
                case.closed = None
            case.status = "waiting"
            case.last_response = msg.created
            if not case.staff_id:
                case.staff_id = staff_id
        self._fire_webhook(case, msg)
        return msg

    def add_note_api(self, ref: str, body: dict[str, Any], staff: Staff) -> tuple[int, dict[str, Any]]:
        fields = body.get("note")
        if not isinstance(fields, dict):
            raise ApiError(400, "wrong_params")
        with self.lock:
            case = self.find_case(ref)
            sid = (
                self._resolve_staff(fields["staff_id"])
                if fields.get("staff_id") not in (None, "", 0, "0")
                else staff.staff_id
            )
            msg = self._agent_message(
                case,
                sid,
                fields.get("content"),
                fields.get("content_html"),
                fields.get("attachments") or fields.get("attachment_urls"),
                True,
            )
            return case.case_id, {"message": msg.to_api(self.fmt)}

    # ------------------------------------------------------ control operations
    def control_case(self, case_id: int | str) -> Case:
        try:
            return self.find_case(case_id)
        except ApiError:
            raise KeyError(case_id) from None

    def agent_reply(
        self,
        case_id: int | str,
        content: str | None,
        html: str | None,
        note: bool,
        staff_id: int | None,
        attachments: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        with self.lock:
            case = self.control_case(case_id)
            sid = staff_id if staff_id is not None else (case.staff_id or self.default_staff().staff_id)
            if sid != 0 and sid not in self.staff:  # 0: a rule's message, sent by no agent
                raise KeyError(f"staff {sid}")
            try:
                msg = self._agent_message(case, sid, content, html, attachments, note, via_rule=sid == 0)
            except ApiError as exc:
                raise ValueError(exc.code) from None
            return msg.to_api(self.fmt)

    def create_outgoing_case(
        self,
        channel: str,
        user_custom_id: str,
        user_full_name: str,
        content: str,
        staff_id: int | None,
        subject: str | None,
    ) -> dict[str, Any]:
        with self.lock:
            sid = staff_id if staff_id is not None else self.default_staff().staff_id
            if sid not in self.staff:
                raise KeyError(f"staff {sid}")
            fields = {
                "channel": channel,
                "user_custom_id": user_custom_id,
                "user_full_name": user_full_name,
                "content": content,
                "subject": subject or "",
            }
            try:
                case = self.create_case(fields, outgoing_staff_id=sid)
            except ApiError as exc:
                raise ValueError(exc.code) from None
            return case.to_api(self.fmt)

    def set_status(self, case_id: int | str, status: str) -> dict[str, Any]:
        with self.lock:
            case = self.control_case(case_id)
            if status not in STATUSES:
                raise ValueError(status)
            self._set_status(case, status)
            return case.to_api(self.fmt)

    def cases_list(self, channel: str | None) -> list[dict[str, Any]]:
        with self.lock:
            self.expire_chats()
            return [
                c.to_api(self.fmt)
                for _, c in sorted(self.cases.items())
                if channel is None or c.channel == channel
            ]

    def messages_list(self, case_id: int | str) -> list[dict[str, Any]]:
        with self.lock:
            return [m.to_api(self.fmt) for m in self.control_case(case_id).messages]

    def user_dict(self, user_id: int) -> dict[str, Any]:
        with self.lock:
            return self.users[user_id].to_api(self.fmt)
