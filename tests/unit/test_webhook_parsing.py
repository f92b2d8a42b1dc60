"""Deskie's custom-channel webhook bodies (form with PHP brackets, or JSON) and HTML -> Mattermost Markdown."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from deskie_mm_bot.deskie.webhook import WebhookError, parse_webhook
from deskie_mm_bot.markup.formatting import (
    MM_LIMIT,
    html_to_markdown,
    message_body,
    split_message,
)

FORM = "application/x-www-form-urlencoded"


def form(pairs: list[tuple[str, str]]) -> bytes:
    return urlencode(pairs).encode()


# ---- webhook ------------------------------------------------------------------------------------------


def test_form_body_with_object_brackets() -> None:
    body = form(
        [
            ("type", "message_new"),
            ("object[message_id]", "501"),
            ("object[case_id]", "2000"),
            ("object[custom_user_id]", "u:jane"),
            ("object[content]", "Hello & welcome = yes"),
            ("object[staff_id]", "22"),
            ("object[user_id]", "123"),
            ("object[note]", "0"),
        ]
    )
    ev = parse_webhook(body, FORM)
    assert ev.type == "message_new"
    assert ev.case_id == 2000 and ev.message_id == 501 and ev.staff_id == 22
    assert ev.custom_user_id == "u:jane"
    assert ev.content == "Hello & welcome = yes"
    assert ev.note is False
    assert ev.attachments == []


def test_form_body_with_attachment_urls_in_order() -> None:
    body = form(
        [
            ("type", "message_new"),
            ("object[case_id]", "2000"),
            ("object[content]", "files"),
            ("object[attachments][1][url]", "https://files.example/b.pdf"),
            ("object[attachments][1][file_name]", "b.pdf"),
            ("object[attachments][0][url]", "https://files.example/a.png"),
            ("object[attachments][0][file_name]", "a.png"),
            ("object[attachments][10][url]", "https://files.example/k.txt"),
        ]
    )
    ev = parse_webhook(body, FORM + "; charset=UTF-8")
    assert [a["url"] for a in ev.attachments] == [
        "https://files.example/a.png",
        "https://files.example/b.pdf",
        "https://files.example/k.txt",
    ]
    assert ev.attachments[0]["file_name"] == "a.png"


def test_json_body() -> None:
    body = json.dumps(
        {
            "type": "message_new",
            "object": {
                "message_id": 501,
                "case_id": 2000,
                "custom_user_id": "c:chan",
                "content": "Hi",
                "content_html": "<p>Hi</p>",
                "note": False,
                "attachments": [{"url": "https://files.example/a.png"}],
            },
        }
    ).encode()
    ev = parse_webhook(body, "application/json")
    assert (ev.case_id, ev.message_id, ev.custom_user_id) == (2000, 501, "c:chan")
    assert ev.content_html == "<p>Hi</p>"
    assert ev.note is False
    assert ev.attachments == [{"url": "https://files.example/a.png"}]


def test_json_body_recognised_without_json_content_type() -> None:
    ev = parse_webhook(b'{"type": "message_new", "object": {"case_id": "7"}}', "text/plain")
    assert ev.case_id == 7 and ev.message_id is None and ev.content == ""


@pytest.mark.parametrize(
    "body, ctype",
    [
        (form([("type", "message_new"), ("object[content]", "no case")]), FORM),
        (form([("type", "message_new"), ("object[case_id]", "")]), FORM),
        (form([("type", "message_new"), ("object[case_id]", "abc")]), FORM),
        (b'{"type": "message_new", "object": {"content": "x"}}', "application/json"),
        (b'{"type": "message_new"}', "application/json"),
        (b'{"type": "message_new", "object": "nope"}', "application/json"),
        (b"[1, 2]", "application/json"),
        (b"{not json", "application/json"),
        (b"", FORM),
    ],
)
def test_missing_or_bad_case_id_is_a_webhook_error(body: bytes, ctype: str) -> None:
    with pytest.raises(WebhookError):
        parse_webhook(body, ctype)


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("True", True), ("0", False), ("false", False), ("", False)])
def test_note_flag_in_form(value: str, expected: bool) -> None:
    ev = parse_webhook(form([("object[case_id]", "1"), ("object[note]", value)]), FORM)
    assert ev.note is expected


def test_note_flag_in_json_boolean() -> None:
    ev = parse_webhook(b'{"object": {"case_id": 1, "note": true}}', "application/json")
    assert ev.note is True


# ---- HTML -> Markdown ------------------------------------------------------------------------------------


def test_bold_and_links() -> None:
    md = html_to_markdown('<p>Please <b>restart</b> and see <a href="https://help.example/x">the guide</a>.</p>')
    assert md == "Please **restart** and see [the guide](https://help.example/x)."


def test_lists() -> None:
    assert html_to_markdown("<ul><li>one</li><li>two</li></ul>") == "- one\n- two"
    assert html_to_markdown("<ol><li>first</li><li>second</li></ol>") == "1. first\n2. second"


def test_blockquote_becomes_gt_prefixed_lines() -> None:
    md = html_to_markdown("<p>You wrote:</p><blockquote><p>it is broken</p><p>since Monday</p></blockquote>")
    quoted = [line for line in md.splitlines() if line.startswith(">")]
    assert quoted and all(line.startswith("> ") or line == ">" for line in quoted)
    assert any("it is broken" in line for line in quoted)
    assert any("since Monday" in line for line in quoted)
    assert md.startswith("You wrote:")


def test_code_block_and_inline_code() -> None:
    md = html_to_markdown("<p>Run <code>make</code>:</p><pre><code>x = 1\ny = 2</code></pre>")
    assert "`make`" in md
    assert "```\nx = 1\ny = 2\n```" in md


def test_underscores_and_asterisks_not_escaped() -> None:
    assert html_to_markdown("<p>set max_retry_count to 2*3</p>") == "set max_retry_count to 2*3"


def test_quoted_history_removed() -> None:
    html = (
        "<p>Thanks, fixed now.</p>"
        '<div class="omni_orig_reply"><div>On Mon, Jane wrote:</div>'
        "<blockquote><p>old message</p></blockquote></div>"
    )
    md = html_to_markdown(html)
    assert md == "Thanks, fixed now."


def test_no_runs_of_blank_lines() -> None:
    md = html_to_markdown("<p>a</p><br><br><br><p>b</p>")
    assert "\n\n\n" not in md and md.startswith("a") and md.endswith("b")


def test_message_body_prefers_html_then_plain_content() -> None:
    assert message_body("plain", "<p><b>rich</b></p>") == "**rich**"
    assert message_body("  plain text  ", None) == "plain text"
    assert message_body("<p>tagged <i>plain</i></p>", "") == "tagged *plain*"
    assert message_body("2 < 3 and 5 > 4", None) == "2 < 3 and 5 > 4"
    assert message_body(None, None) == ""


# ---- splitting ---------------------------------------------------------------------------------------------


def check_parts(text: str, parts: list[str], limit: int) -> None:
    assert "".join(parts) == text
    assert all(0 < len(p) <= limit for p in parts)


def test_short_message_is_one_part() -> None:
    assert split_message("hello") == ["hello"]
    assert split_message("x" * MM_LIMIT) == ["x" * MM_LIMIT]


def test_split_at_paragraph_boundary() -> None:
    para = "word " * 2000  # 10 000 chars
    text = (para.strip() + "\n\n") * 5
    parts = split_message(text)
    check_parts(text, parts, MM_LIMIT)
    assert len(parts) >= 4
    assert all(p.endswith("\n\n") for p in parts[:-1])


def test_split_at_line_boundary_when_no_paragraphs() -> None:
    line = "a" * 99 + "\n"
    text = line * 400  # 40 000 chars, only single newlines
    parts = split_message(text)
    check_parts(text, parts, MM_LIMIT)
    assert all(p.endswith("\n") for p in parts[:-1])


def test_split_at_word_boundary_when_one_long_line() -> None:
    text = " ".join(f"w{i:05d}" for i in range(6000))  # ~42 000 chars, no newlines
    parts = split_message(text)
    check_parts(text, parts, MM_LIMIT)
    assert all(p.endswith(" ") for p in parts[:-1])
    assert all(not p.startswith(" ") for p in parts)


def test_split_without_any_boundary_cuts_at_limit_and_keeps_everything() -> None:
    text = "".join(chr(0x41 + i % 26) for i in range(40000))
    parts = split_message(text)
    check_parts(text, parts, MM_LIMIT)
    assert [len(p) for p in parts] == [MM_LIMIT, MM_LIMIT, 40000 - 2 * MM_LIMIT]


def test_split_prefers_a_late_boundary_over_an_early_paragraph() -> None:
    # A paragraph break near the start would make a tiny first part: the last line break is used instead.
    text = "intro\n\n" + ("x" * 50 + "\n") * 5
    parts = split_message(text, limit=100)
    check_parts(text, parts, 100)
    assert len(parts[0]) > 50


@pytest.mark.parametrize("limit", [10, 37, 100])
def test_split_never_loses_a_character_with_mixed_content(limit: int) -> None:
    text = "Привет мир! 👋\n\nThis is a line.\nAnd another one with words\n\n" * 7 + "tail"
    parts = split_message(text, limit=limit)
    check_parts(text, parts, limit)
