"""Account objects and their API (JSON) representations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Fmt = Callable[[float], str]


@dataclass
class Staff:
    staff_id: int
    email: str
    full_name: str
    api_key: str | None
    created: float
    updated: float
    signature: str = ""
    active: bool = True

    def to_api(self, fmt: Fmt) -> dict[str, Any]:
        return {
            "staff_id": self.staff_id,
            "staff_email": self.email,
            "staff_full_name": self.full_name,
            "staff_signature": self.signature,
            "thumbnail": "",
            "active": self.active,
            "status": "online",
            "status_id": 1,
            "created_at": fmt(self.created),
            "updated_at": fmt(self.updated),
        }


@dataclass
class Group:
    group_id: int
    title: str
    created: float
    updated: float
    active: bool = True

    def to_api(self, fmt: Fmt) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "group_title": self.title,
            "group_from_name": self.title,
            "group_signature": "",
            "active": self.active,
            "created_at": fmt(self.created),
            "updated_at": fmt(self.updated),
        }


@dataclass
class CustomChannel:
    channel_id: int
    api_key: str
    title: str
    channel_type: str
    webhook_url: str | None
    active: bool = True

    def to_api(self) -> dict[str, Any]:
        return {
            "channel_id": self.channel_id,
            "channel_api_key": self.api_key,
            "title": self.title,
            "channel_type": self.channel_type,
            "icon": "fa-question-circle",
            "webhook_url": self.webhook_url or "",
            "active": self.active,
        }


@dataclass
class User:
    user_id: int
    full_name: str
    created: float
    updated: float
    email: str = ""
    phone: str = ""
    custom_id: str = ""
    custom_channel: str = ""
    last_contact: float | None = None

    @property
    def kind(self) -> str:
        if self.custom_id:
            return "custom"
        if self.email:
            return "email"
        if self.phone:
            return "phone"
        return "web"

    def to_api(self, fmt: Fmt) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "user_full_name": self.full_name,
            "company_name": "",
            "company_position": "",
            "thumbnail": "",
            "confirmed": False,
            "active": True,
            "deleted": False,
            "created_at": fmt(self.created),
            "updated_at": fmt(self.updated),
            "last_contact_at": fmt(self.last_contact) if self.last_contact else "-",
            "type": self.kind,
            "user_email": self.email,
            "user_phone": self.phone,
            "user_custom_id": self.custom_id,
            "user_custom_channel": self.custom_channel,
            "language_id": 1,
            "custom_fields": {},
            "linked_users": [],
        }


@dataclass
class Attachment:
    file_id: int
    file_name: str
    file_size: int
    mime_type: str
    url: str
    data: bytes | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_name": self.file_name,
            "file_size": self.file_size,
            "mime_type": self.mime_type,
            "url": self.url,
        }


@dataclass
class Message:
    message_id: int
    case_id: int
    user_id: int
    staff_id: int
    content: str
    content_html: str
    html_given: bool
    note: bool
    created: float
    attachments: list[Attachment] = field(default_factory=list)
    sent_via_rule: bool = False

    def to_api(self, fmt: Fmt) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "user_id": self.user_id,
            "staff_id": self.staff_id,
            "content": self.content,
            "content_html": self.content_html,
            "attachments": [a.to_api() for a in self.attachments],
            "note": self.note,
            "sent_via_rule": self.sent_via_rule,
            "created_at": fmt(self.created),
            "sent_at": fmt(self.created),
        }


@dataclass
class Case:
    case_id: int
    case_number: str
    subject: str
    user_id: int
    staff_id: int
    group_id: int
    status: str
    priority: str
    channel: str
    created: float
    updated: float
    recipient: str = ""
    closed: float | None = None
    last_response: float | None = None
    language_id: int = 1
    custom_fields: dict[str, Any] = field(default_factory=dict)
    labels: list[Any] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    # A case of a chat-type (`sync`) custom channel is an *active chat* until Deskie ends it
    # (inactivity timeout, an agent's "end chat", a rule, closing); any new message reactivates it.
    chat_active: bool = False
    chat_activity: float = 0.0

    def to_api(self, fmt: Fmt) -> dict[str, Any]:
        closing_speed: Any = "-"
        if self.closed is not None:
            closing_speed = max(0, int((self.closed - self.created) // 60))
        return {
            "case_id": self.case_id,
            "case_number": self.case_number,
            "subject": self.subject,
            "user_id": self.user_id,
            "staff_id": self.staff_id,
            "group_id": self.group_id,
            "status": self.status,
            "priority": self.priority,
            "channel": self.channel,
            "recipient": self.recipient,
            "recipient_cc": "",
            "recipient_bcc": "",
            "cc_emails": "",
            "bcc_emails": "",
            "deleted": False,
            "spam": False,
            "created_at": fmt(self.created),
            "updated_at": fmt(self.updated),
            "closed_at": fmt(self.closed) if self.closed is not None else "-",
            "closing_speed": closing_speed,
            "last_response_at": fmt(self.last_response) if self.last_response is not None else "-",
            "language_id": self.language_id,
            "custom_fields": dict(self.custom_fields),
            "labels": list(self.labels),
            "locked_labels": [],
            "rating": "",
            "rating_comment": "",
            "rated_staff_id": 0,
        }
