"""Deskie HTML -> Mattermost Markdown, and splitting long answers without cutting them."""

from __future__ import annotations

import re

from markdownify import markdownify

MM_LIMIT = 16383
_QUOTED_HISTORY = re.compile(r'<div class="omni_orig_reply".*?</div>\s*$', re.S | re.I)
_TAG = re.compile(r"<[a-zA-Z/][^>]*>")


def html_to_markdown(html: str) -> str:
    # Agents' e-mail-style answers carry the quoted history; the chat already shows it.
    html = _QUOTED_HISTORY.sub("", html)
    md = markdownify(
        html,
        heading_style="ATX",
        bullets="-",
        strong_em_symbol="*",
        code_language="",
        escape_underscores=False,
        escape_asterisks=False,
    )
    md = re.sub(r"\n{3,}", "\n\n", md)
    return md.strip()


def message_body(content: str | None, content_html: str | None) -> str:
    """The text to post: HTML when Deskie gave it, else the plain content (which may hold HTML too)."""
    if content_html and content_html.strip():
        return html_to_markdown(content_html)
    text = (content or "").strip()
    if _TAG.search(text):
        return html_to_markdown(text)
    return text


def split_message(text: str, limit: int = MM_LIMIT) -> list[str]:
    """Split at paragraph, then line, then word boundaries; every character is kept."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            idx = window.rfind(sep)
            if idx > limit // 2:
                cut = idx + len(sep)
                break
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        parts.append(rest)
    return parts
