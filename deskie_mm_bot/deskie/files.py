"""The files of an agent's answer, fetched from the URLs Deskie gives (webhook or messages list).

The webhook names no file (`object[attachments][N][url]` only): the name is the URL path's last part.
Whether a file URL needs the API credentials is not known, so the API's Basic auth goes with every
request to the Deskie account's own host, and never to any other host.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from .. import errors
from ..model import attachment_name as file_name

CHUNK = 256 * 1024
TIMEOUT = (5.0, 30.0)


class FileGone(errors.Gone):
    """The file will never come (404, no access, over the size allowed): name it, do not retry."""


class FileTooLarge(FileGone, errors.TooLarge):
    """Larger than the chat server takes."""


class FileTransient(Exception):
    """Deskie's file host failed this time (timeout, 5xx): try the answer again later."""


@dataclass(frozen=True)
class AnswerFile:
    name: str
    data: bytes
    mime_type: str


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


class FileFetcher:
    """Blocking downloads (run off the loop); one session with the account's auth, one without."""

    def __init__(self, base_url: str, staff_email: str, api_key: str, *, verify: bool | str = True) -> None:
        self._origin = _origin(base_url)
        self._auth = (staff_email, api_key)
        self._verify = verify
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = "deskie-mm-bot"
            session.verify = self._verify
            self._local.session = session
        return session

    def fetch(self, attachment: dict[str, Any], max_bytes: int) -> AnswerFile:
        url = str(attachment.get("url") or "")
        name = file_name(attachment)
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise FileGone("no usable URL")
        auth = self._auth if _origin(url) == self._origin else None
        try:
            # Redirects are followed by hand: requests would keep the auth on a redirect to another
            # port or scheme of a host, and the credentials are for the account's own origin only.
            resp = self._session().get(url, auth=auth, timeout=TIMEOUT, stream=True, allow_redirects=False)
            hops = 0
            while resp.is_redirect and hops < 5:
                target = requests.compat.urljoin(url, resp.headers.get("Location", ""))
                resp.close()
                url, hops = target, hops + 1
                auth = self._auth if _origin(url) == self._origin else None
                resp = self._session().get(url, auth=auth, timeout=TIMEOUT, stream=True, allow_redirects=False)
            with resp:
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise FileTransient(f"HTTP {resp.status_code}")
                if resp.status_code >= 400 or resp.is_redirect:
                    raise FileGone("not found" if resp.status_code in (404, 410) else f"HTTP {resp.status_code}")
                declared = resp.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FileTooLarge(f"{int(declared)} bytes")
                body = bytearray()
                for chunk in resp.iter_content(CHUNK):
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise FileTooLarge(f"over {max_bytes} bytes")
                mime = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        except requests.RequestException as e:
            raise FileTransient(type(e).__name__) from None
        return AnswerFile(name, bytes(body), str(attachment.get("mime_type") or mime or "application/octet-stream"))
