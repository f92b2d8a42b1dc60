"""A customer's Mattermost Markdown as HTML for the agent (Deskie's `content_html`).

Rendered by markdown-it-py with raw HTML off: whatever HTML a customer types (`<script>`,
`<img onerror=...>`) arrives as text, escaped, never as markup. Links with unsafe schemes
(`javascript:`) are not made links. Mattermost shows a single newline as a line break, so here too.
"""

from __future__ import annotations

import html

from markdown_it import MarkdownIt

_MD = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False}).enable(
    ["strikethrough", "table"]
)


def markdown_to_html(text: str) -> str:
    return str(_MD.render(text or "")).strip()


def text_to_html(text: str) -> str:
    """Plain text (a line the bot adds, an author's name) as HTML."""
    return html.escape(text or "").replace("\n", "<br>\n")
