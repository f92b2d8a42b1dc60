"""How an answer becomes posts: text split at the limit, the agent's name first, files five to a post."""

from __future__ import annotations

from deskie_mm_bot.markup.formatting import MM_LIMIT
from deskie_mm_bot.model import attachment_name as file_name
from deskie_mm_bot.relay.outbound import plan_posts, with_agent_name


def test_files_go_five_to_a_post_the_first_five_with_the_text() -> None:
    assert plan_posts("hello", 0) == [("hello", range(0))]
    assert plan_posts("hello", 5) == [("hello", range(0, 5))]
    assert plan_posts("hello", 7) == [("hello", range(0, 5)), ("", range(5, 7))]
    assert plan_posts("", 11) == [("", range(0, 5)), ("", range(5, 10)), ("", range(10, 11))]


def test_a_long_answer_with_files_keeps_every_character_and_room_for_file_lines() -> None:
    text = " ".join(f"word{i}" for i in range(6000))
    posts = plan_posts(text, 6)
    texts = [t for t, _ in posts if t]
    assert "".join(texts) == text
    assert all(len(t) <= MM_LIMIT - 2000 for t in texts)
    assert [list(files) for _, files in posts] == [[0, 1, 2, 3, 4]] + [[]] * (len(texts) - 1) + [[5]]


def test_the_name_goes_on_the_first_line_or_above_a_block() -> None:
    assert with_agent_name("Anna Smith", "Hello!") == "Anna Smith: Hello!"
    assert with_agent_name("Anna Smith", "- one\n- two") == "Anna Smith:\n\n- one\n- two"
    assert with_agent_name("Anna Smith", "> quoted") == "Anna Smith:\n\n> quoted"
    assert with_agent_name("Anna Smith", "1. first\n2. second") == "Anna Smith:\n\n1. first\n2. second"
    assert with_agent_name("Anna Smith", "10 minutes, please") == "Anna Smith: 10 minutes, please"
    assert with_agent_name("Anna Smith", "```\ncode\n```") == "Anna Smith:\n\n```\ncode\n```"
    assert with_agent_name("Anna Smith", "") == "Anna Smith:"
    assert with_agent_name("", "Hello!") == "Hello!"
    assert with_agent_name("*Zed* [admin]", "Hi") == "\\*Zed\\* \\[admin\\]: Hi"  # a name is not markup


def test_a_files_name_comes_from_the_url_when_not_given() -> None:
    assert file_name({"url": "https://acme.deskie.io/files/12/price%20list.pdf"}) == "price list.pdf"
    assert file_name({"url": "https://acme.deskie.io/some_path_here/345", "file_name": "test.jpg"}) == "test.jpg"
    assert file_name({"url": "https://acme.deskie.io/"}) == "file"
