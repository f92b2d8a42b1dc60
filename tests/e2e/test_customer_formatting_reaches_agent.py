"""A customer's Markdown reaches the agent formatted (`content_html`, beside the plain `content`), and
HTML a customer types arrives as text, never as markup."""

from __future__ import annotations

from collections.abc import Callable

from deskie_mm_bot.markup.markdown import markdown_to_html
from deskie_mm_bot.sandbox_runner import World
from tests.support.harness import BotProcess, first_case, wait_for

MARKDOWN = (
    "**Order 1234** is _late_, see [the tracking page](https://track.example/1234) and `ERR-42`:\n"
    "\n"
    "- ordered on Monday\n"
    "- paid by card\n"
    "\n"
    "> Your parcel is on its way\n"
    "\n"
    "```\n"
    "curl -s https://api.example/parcel/1234\n"
    "```"
)


def test_markdown_arrives_as_html_beside_the_plain_text(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], MARKDOWN)
    case = first_case(world)
    (msg,) = world.dk.messages(case["case_id"])
    assert msg["content"] == MARKDOWN
    html = msg["content_html"]
    for fragment in (
        "<strong>Order 1234</strong>", "<em>late</em>", '<a href="https://track.example/1234">the tracking page</a>',
        "<code>ERR-42</code>", "<li>ordered on Monday</li>", "<li>paid by card</li>", "<blockquote>",
        "<pre><code>curl -s https://api.example/parcel/1234", "</ul>",
    ):
        assert fragment in html, fragment


def test_html_a_customer_types_arrives_escaped(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    typed = 'hi <script>alert("x")</script> and <img src=x onerror=alert(1)> <b>bold?</b>'
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], typed)
    case = first_case(world)
    world.mm.post_as(world.jane["id"], world.jane_dm["id"], "again: <iframe src=https://evil.example></iframe>")
    msgs = wait_for(lambda: (m := world.dk.messages(case["case_id"])) and len(m) == 2 and m, what="both")
    assert msgs[0]["content"] == typed
    for msg in msgs:
        html = msg["content_html"].lower()
        for tag in ("<script", "<img", "<b>", "<iframe"):
            assert tag not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in msgs[0]["content_html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in msgs[0]["content_html"]


def test_a_channel_message_names_its_author_in_both_forms(world: World, make_bot: Callable[..., BotProcess]) -> None:
    make_bot().start()
    world.mm.post_as(world.bob["id"], world.support["id"], "@helpbot the **printer** is down")
    case = first_case(world)
    (msg,) = world.dk.messages(case["case_id"])
    assert msg["content"].startswith("Bob Stone (@bob): ")
    assert "<strong>Bob Stone (@bob)</strong>" in msg["content_html"]
    assert "<strong>printer</strong>" in msg["content_html"]


def test_unsafe_links_are_not_made_links() -> None:
    html = markdown_to_html("[click](javascript:alert(1)) and [ok](https://example.com)")
    assert 'href="javascript' not in html
    assert '<a href="https://example.com">ok</a>' in html


def test_a_single_newline_is_a_line_break_as_in_mattermost() -> None:
    assert markdown_to_html("line one\nline two") == "<p>line one<br />\nline two</p>"
