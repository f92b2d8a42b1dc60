"""Small helpers shared by the emulator modules: ids, clocks, AppError."""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

ID_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"


def new_id() -> str:
    """A 26-character id in Mattermost's base32 alphabet (like ``model.NewId``)."""
    # One read of the system's randomness per id; 256 is a multiple of 32, so each letter is equally likely.
    return "".join(ID_ALPHABET[b % 32] for b in secrets.token_bytes(26))


_last_ms = 0
_clock_lock = threading.Lock()


def now_ms() -> int:
    """Unix milliseconds, strictly increasing within the process (keeps create_at ordering stable)."""
    global _last_ms
    with _clock_lock:
        ms = int(time.time() * 1000)
        if ms <= _last_ms:
            ms = _last_ms + 1
        _last_ms = ms
        return ms


class AppError(ValueError):
    """A Mattermost ``model.AppError``; also a ValueError so the Python control API can raise it."""

    def __init__(self, status_code: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_id = error_id
        self.message = message

    def to_dict(self, request_id: str) -> dict[str, Any]:
        return {
            "id": self.error_id,
            "message": self.message,
            "detailed_error": "",
            "request_id": request_id,
            "status_code": self.status_code,
        }


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def not_found(what: str = "resource") -> AppError:
    return AppError(404, f"app.{what}.get.app_error", f"Unable to find the existing {what}.")


def forbidden() -> AppError:
    return AppError(
        403,
        "api.context.permissions.app_error",
        "You do not have the appropriate permissions.",
    )


def bad_request(param: str) -> AppError:
    return AppError(400, "api.context.invalid_param.app_error", f"Invalid {param} parameter.")


def unauthorized() -> AppError:
    return AppError(
        401,
        "api.context.session_expired.app_error",
        "Invalid or expired session, please login again.",
    )
