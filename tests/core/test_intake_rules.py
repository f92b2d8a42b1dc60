"""Intake rules: which Mattermost events become outbox rows, under which conversation key and identity.

Events are built in the websocket shape (`data.post` and `data.mentions` as JSON strings), decoded by
`post_from_event`, and fed to `Intake.accept` with a fake directory and a real store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deskie_mm_bot.mattermost.chat import person_of, place_of
from deskie_mm_bot.mattermost.events import post_from_dict, post_from_event
from deskie_mm_bot.model import ChatPost, Person, Place
from deskie_mm_bot.relay.intake import Intake, IntakeRules
from deskie_mm_bot.store import OutboxItem, Store

BOT_ID = "botuserid0000000000000000a"
BOT_NAME = "helpbot"
JANE = "janeuserid000000000000000a"
BOB = "bobuserid0000000000000000a"
OTHERBOT = "otherbotid00000000000000a"
TEAM = "team1id0000000000000000000"
OTHER_TEAM = "team2id0000000000000000000"

DM = "dmchannelid00000000000000a"
SUPPORT = "supportchanid000000000000a"
FOREIGN = "foreignchanid000000000000a"
GM = "groupchanid00000000000000a"


class FakeDirectory:
    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {
            JANE: {"id": JANE, "username": "jane", "first_name": "Jane", "last_name": "Doe"},
            BOB: {"id": BOB, "username": "bob", "first_name": "", "last_name": ""},
            BOT_ID: {"id": BOT_ID, "username": BOT_NAME, "is_bot": True},
            OTHERBOT: {"id": OTHERBOT, "username": "ci", "is_bot": True},
        }
        self.channels: dict[str, dict[str, Any]] = {
            DM: {"id": DM, "type": "D", "team_id": "", "name": f"{BOT_ID}__{JANE}", "display_name": ""},
            SUPPORT: {"id": SUPPORT, "type": "O", "team_id": TEAM, "name": "support", "display_name": "Support"},
            FOREIGN: {"id": FOREIGN, "type": "O", "team_id": OTHER_TEAM, "name": "elsewhere", "display_name": "Else"},
            GM: {"id": GM, "type": "G", "team_id": "", "name": "0f3a9c", "display_name": "bob, helpbot, jane"},
        }

    async def person(self, user_id: str) -> Person:
        return person_of(self.users[user_id])

    async def place(self, channel_id: str) -> Place:
        return place_of(self.channels[channel_id])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.sqlite3")
    yield s
    s.close()


def row(store: Store, post_id: str) -> OutboxItem:
    """The outbox row the intake recorded for a post (the test fails here if there is none)."""
    item = store.outbox_item(post_id)
    assert item is not None, f"{post_id} was not recorded"
    return item


def make_intake(store: Store, **rules: Any) -> Intake:
    return Intake(store, FakeDirectory(), IntakeRules(bot_id=BOT_ID, **rules))


def raw_post(
    post_id: str,
    channel_id: str,
    user_id: str = JANE,
    message: str = "hello",
    *,
    root_id: str = "",
    type_: str = "",
    props: dict[str, Any] | None = None,
    create_at: int = 1732550000123,
    edit_at: int = 0,
    delete_at: int = 0,
) -> dict[str, Any]:
    return {
        "id": post_id,
        "create_at": create_at,
        "update_at": max(create_at, edit_at, delete_at),
        "edit_at": edit_at,
        "delete_at": delete_at,
        "is_pinned": False,
        "user_id": user_id,
        "channel_id": channel_id,
        "root_id": root_id,
        "original_id": "",
        "message": message,
        "type": type_,
        "props": props or {},
        "hashtags": "",
        "metadata": {},  # no file_ids key: the server omits it on a post without files
    }


def event(post: dict[str, Any], *, kind: str = "posted", mentions: list[str] | None = None) -> dict[str, Any]:
    """An event as the websocket sends it: post and mentions are JSON strings; edits carry only the post."""
    channel = FakeDirectory().channels[post["channel_id"]]
    data: dict[str, Any] = {"post": json.dumps(post)}
    if kind == "posted":
        data.update(channel_type=channel["type"], team_id=channel["team_id"], sender_name="@someone")
        if mentions:
            data["mentions"] = json.dumps(mentions)
    return {
        "event": kind,
        "data": data,
        "broadcast": {"omit_users": None, "user_id": "", "channel_id": post["channel_id"], "team_id": ""},
        "seq": 1,
    }


def decode(ev: dict[str, Any]) -> ChatPost:
    post = post_from_event(ev, bot_id=BOT_ID, bot_username=BOT_NAME)
    assert post is not None
    return post


def accept(intake: Intake, ev: dict[str, Any]) -> bool:
    return asyncio.run(intake.accept(decode(ev)))


def dm(post_id: str, message: str = "hello", **kw: Any) -> dict[str, Any]:
    # Mattermost counts the other party of a DM as mentioned.
    return event(raw_post(post_id, DM, message=message, **kw), mentions=[BOT_ID])


# ---- never relayed ---------------------------------------------------------------------------------------


def test_events_ignore_self(store: Store) -> None:
    intake = make_intake(store)
    assert accept(intake, event(raw_post("p1", DM, user_id=BOT_ID, message="bot answer"))) is False
    assert not store.has_post("p1")
    assert store.count_outbox() == 0


@pytest.mark.parametrize("props", [{"from_bot": "true"}, {"from_webhook": "true"}, {"from_bot": True}])
def test_other_bots_and_webhooks_ignored(store: Store, props: dict[str, Any]) -> None:
    intake = make_intake(store, mention_only=False)
    assert accept(intake, event(raw_post("p1", SUPPORT, user_id=BOB, message="@helpbot build", props=props))) is False
    assert not store.has_post("p1")


def test_bot_account_without_props_ignored(store: Store) -> None:
    intake = make_intake(store)
    assert accept(intake, event(raw_post("p1", DM, user_id=OTHERBOT), mentions=[BOT_ID])) is False
    assert store.count_outbox() == 0


def test_system_join_channel_ignored(store: Store) -> None:
    intake = make_intake(store, mention_only=False)
    post = raw_post("p1", SUPPORT, message="@jane joined the channel.", type_="system_join_channel")
    assert accept(intake, event(post)) is False
    assert not store.has_post("p1")


# ---- DMs and channels -----------------------------------------------------------------------------------


def test_dm_always_recorded_as_the_person(store: Store) -> None:
    intake = make_intake(store, mention_only=True)
    assert accept(intake, dm("p1", "I need help")) is True
    item = row(store, "p1")
    assert item is not None
    assert item.conv_key == f"ch:{DM}"
    assert item.user_custom_id == f"u:{JANE}"
    assert item.user_full_name == "Jane Doe (@jane)"
    assert item.author == "Jane Doe (@jane)"
    assert item.show_author is False
    assert item.reply_root_id == "" and item.channel_id == DM
    assert item.text == "I need help" and item.kind == "message"
    assert item.posted_at == pytest.approx(1732550000.123)


def test_dm_recorded_without_any_mention(store: Store) -> None:
    intake = make_intake(store, mention_only=True)
    assert accept(intake, event(raw_post("p1", DM, message="no mention"))) is True


def test_replayed_post_not_recorded_twice(store: Store) -> None:
    intake = make_intake(store)
    assert accept(intake, dm("p1")) is True
    assert accept(intake, dm("p1")) is False
    assert store.count_outbox() == 1


def test_channel_post_without_mention_ignored_when_mention_only(store: Store) -> None:
    intake = make_intake(store, mention_only=True)
    assert accept(intake, event(raw_post("p1", SUPPORT, message="just chatting"))) is False
    assert not store.has_post("p1")


def test_channel_post_with_mention_recorded_as_the_channel(store: Store) -> None:
    intake = make_intake(store, mention_only=True)
    assert accept(intake, event(raw_post("p1", SUPPORT, message="@helpbot printer is down"), mentions=[BOT_ID]))
    item = row(store, "p1")
    assert item.conv_key == f"ch:{SUPPORT}"
    assert item.user_custom_id == f"c:{SUPPORT}"
    assert item.user_full_name == "Support (~support)"
    assert item.author == "Jane Doe (@jane)"
    assert item.show_author is True


def test_mention_in_text_counts_without_mentions_field(store: Store) -> None:
    intake = make_intake(store)
    assert accept(intake, event(raw_post("p1", SUPPORT, message="hey @HelpBot, help"))) is True


def test_mentions_field_counts_without_mention_in_text(store: Store) -> None:
    intake = make_intake(store)
    assert accept(intake, event(raw_post("p1", SUPPORT, message="@here anyone?"), mentions=[BOT_ID])) is True


def test_mention_of_a_longer_username_is_not_a_mention(store: Store) -> None:
    intake = make_intake(store)
    assert accept(intake, event(raw_post("p1", SUPPORT, message="ask @helpbot-admin or mail helpbot@x.io"))) is False


def test_author_without_full_name_shown_by_handle(store: Store) -> None:
    intake = make_intake(store)
    accept(intake, event(raw_post("p1", SUPPORT, user_id=BOB, message="@helpbot hi")))
    assert row(store, "p1").author == "@bob"


def test_mention_only_false_records_all_channel_posts(store: Store) -> None:
    intake = make_intake(store, mention_only=False)
    assert accept(intake, event(raw_post("p1", SUPPORT, message="no mention at all"))) is True
    assert row(store, "p1").user_custom_id == f"c:{SUPPORT}"


def test_other_team_ignored_when_team_is_set(store: Store) -> None:
    intake = make_intake(store, team_id=TEAM, mention_only=False)
    assert accept(intake, event(raw_post("p1", FOREIGN, message="@helpbot hi"), mentions=[BOT_ID])) is False
    assert not store.has_post("p1")
    assert accept(intake, event(raw_post("p2", SUPPORT, message="@helpbot hi"))) is True
    assert accept(intake, dm("p3")) is True, "DMs belong to no team and are always relayed"


def test_other_team_ignored_when_event_lacks_team_and_type(store: Store) -> None:
    # REST catch-up posts carry no channel type or team: the directory decides.
    intake = make_intake(store, team_id=TEAM, mention_only=False)
    post = post_from_dict(
        raw_post("p1", FOREIGN, message="@helpbot hi"), channel_type="", team_id="", bot_id=BOT_ID, bot_username=BOT_NAME
    )
    assert asyncio.run(intake.accept(post)) is False
    assert not store.has_post("p1")


def test_every_team_relayed_when_team_not_set(store: Store) -> None:
    intake = make_intake(store, team_id="")
    assert accept(intake, event(raw_post("p1", FOREIGN, message="@helpbot hi"))) is True


# ---- threads -------------------------------------------------------------------------------------------


def test_thread_mode_keys_by_root_and_replies_continue_it(store: Store) -> None:
    intake = make_intake(store, reply_mode="thread")
    assert accept(intake, event(raw_post("root1", SUPPORT, message="@helpbot first issue")))
    assert accept(intake, event(raw_post("r1", SUPPORT, user_id=BOB, message="me too", root_id="root1")))
    assert accept(intake, event(raw_post("root2", SUPPORT, message="@helpbot second issue")))
    root1, r1, root2 = (row(store, p) for p in ("root1", "r1", "root2"))
    assert root1.conv_key == r1.conv_key == "th:root1"
    assert root1.reply_root_id == r1.reply_root_id == "root1"
    assert root2.conv_key == "th:root2" and root2.reply_root_id == "root2"
    assert root1.user_custom_id == f"u:{JANE}"
    assert r1.author == "@bob" and r1.show_author is True


def test_thread_mode_reply_keeps_the_existing_chat_identity(store: Store) -> None:
    intake = make_intake(store, reply_mode="thread")
    accept(intake, event(raw_post("root1", SUPPORT, message="@helpbot issue")))
    store.create_conversation(
        conv_key="th:root1",
        channel_id=SUPPORT,
        reply_root_id="root1",
        user_custom_id=f"u:{JANE}",
        user_full_name="Jane Doe (@jane)",
        case_id=2000,
        case_number="1-2000",
        deskie_user_id=123,
        last_message_id=1,
        case_updated_at=None,
    )
    assert accept(intake, event(raw_post("r1", SUPPORT, user_id=BOB, message="more", root_id="root1")))
    r1 = row(store, "r1")
    assert (r1.user_custom_id, r1.user_full_name, r1.author) == (f"u:{JANE}", "Jane Doe (@jane)", "@bob")


def test_thread_mode_each_dm_message_starts_its_own_thread(store: Store) -> None:
    intake = make_intake(store, reply_mode="thread")
    accept(intake, dm("d1", "one"))
    accept(intake, dm("d2", "two"))
    assert row(store, "d1").conv_key == "th:d1"
    assert row(store, "d2").conv_key == "th:d2"
    assert row(store, "d1").show_author is False


def test_reply_in_relayed_thread_without_mention_is_recorded(store: Store) -> None:
    intake = make_intake(store, mention_only=True)
    assert accept(intake, event(raw_post("root1", SUPPORT, message="@helpbot help")))
    assert accept(intake, event(raw_post("r1", SUPPORT, user_id=BOB, message="details", root_id="root1")))
    assert row(store, "r1").conv_key == f"ch:{SUPPORT}"


def test_reply_in_unrelayed_thread_without_mention_is_ignored(store: Store) -> None:
    intake = make_intake(store, mention_only=True)
    assert accept(intake, event(raw_post("root1", SUPPORT, message="team chatter"))) is False
    assert accept(intake, event(raw_post("r1", SUPPORT, user_id=BOB, message="reply", root_id="root1"))) is False
    assert store.count_outbox() == 0


def test_reply_in_the_thread_of_an_agent_answer_is_recorded_without_mention(store: Store) -> None:
    intake = make_intake(store, mention_only=True)
    assert accept(intake, event(raw_post("root1", SUPPORT, message="@helpbot help")))
    conv = store.create_conversation(
        conv_key=f"ch:{SUPPORT}", channel_id=SUPPORT, reply_root_id="", user_custom_id=f"c:{SUPPORT}",
        user_full_name="Support (~support)", case_id=7, case_number="7", deskie_user_id=1,
        last_message_id=0, case_updated_at=None,
    )
    store.add_reply(message_id=70, case_id=7, conversation_id=conv.id, body="answer", attachments=[],
                    source="webhook")
    reply = store.due_replies(now=1e12)[0]
    store.record_reply_part(reply.id, "answerpost1")
    assert accept(intake, event(raw_post("r2", SUPPORT, user_id=BOB, message="thanks!", root_id="answerpost1")))
    assert row(store, "r2").conv_key == f"ch:{SUPPORT}"


# ---- edits and deletions ----------------------------------------------------------------------------------


def test_edit_of_relayed_post_becomes_a_note(store: Store) -> None:
    intake = make_intake(store)
    accept(intake, event(raw_post("p1", SUPPORT, message="@helpbot printer on floor 2")))
    edited = raw_post("p1", SUPPORT, message="@helpbot printer on floor 3", edit_at=1732550100000)
    assert accept(intake, event(edited, kind="post_edited")) is True
    original = row(store, "p1")
    assert original.text == "@helpbot printer on floor 2", "never a silent rewrite"
    note = row(store, "edit:p1:1732550100000")
    assert note is not None and note.kind == "note"
    assert note.conv_key == original.conv_key and note.user_custom_id == original.user_custom_id
    assert "floor 3" in note.text and "floor 2" in note.text
    assert note.posted_at == pytest.approx(1732550100.0)
    # The same edit event seen again is not a second note.
    assert accept(intake, event(edited, kind="post_edited")) is False


def test_edit_of_post_never_relayed_is_not_a_note(store: Store) -> None:
    intake = make_intake(store)
    edited = raw_post("p1", SUPPORT, message="still no mention", edit_at=1732550100000)
    assert accept(intake, event(edited, kind="post_edited")) is False
    assert store.count_outbox() == 0


def test_delete_of_relayed_post_becomes_a_note(store: Store) -> None:
    intake = make_intake(store)
    accept(intake, dm("p1", "my password is hunter2"))
    deleted = raw_post("p1", DM, message="", delete_at=1732550200000)
    assert accept(intake, event(deleted, kind="post_deleted")) is True
    note = row(store, "delete:p1")
    assert note.kind == "note" and "deleted" in note.text and note.conv_key == f"ch:{DM}"


def test_delete_of_unknown_post_ignored(store: Store) -> None:
    intake = make_intake(store)
    assert accept(intake, event(raw_post("p9", DM, delete_at=1732550200000), kind="post_deleted")) is False
    assert store.count_outbox() == 0


# ---- decoding the websocket event -----------------------------------------------------------------------------

# §1.4 of the protocol reference, placeholders filled in.
POSTED_1_4 = (
    '{"event":"posted",\n'
    ' "data":{\n'
    '   "channel_display_name":"@alice",\n'
    '   "channel_name":"<uidA>__<uidB>",\n'
    '   "channel_type":"D",\n'
    '   "post":"{\\"id\\":\\"pst4u3m1x7f8zq9c3h1k5w2abc\\",\\"create_at\\":1732550000123,\\"update_at\\":1732550000123,'
    '\\"edit_at\\":0,\\"delete_at\\":0,\\"is_pinned\\":false,\\"user_id\\":\\"<alice id>\\",'
    '\\"channel_id\\":\\"<dm channel id>\\",\\"root_id\\":\\"\\",\\"original_id\\":\\"\\",'
    '\\"message\\":\\"hello @helpbot\\",\\"type\\":\\"\\",\\"props\\":{\\"disable_group_highlight\\":true},'
    '\\"hashtags\\":\\"\\",\\"pending_post_id\\":\\"<alice id>:1732550000000\\",'
    '\\"reply_count\\":0,\\"last_reply_at\\":0,\\"participants\\":null,\\"metadata\\":{}}",\n'
    '   "sender_name":"@alice",\n'
    '   "set_online":true,\n'
    '   "team_id":"",\n'
    '   "mentions":"[\\"<bot user id>\\"]"\n'
    " },\n"
    ' "broadcast":{"omit_users":null,"user_id":"","channel_id":"<dm channel id>","team_id":"",'
    '"connection_id":"","omit_connection_id":""},\n'
    ' "seq":5}'
)


def test_posted_event_decoded_from_reference_shape(store: Store) -> None:
    alice, dm_id = "aliceid0000000000000000000", "alicedm0000000000000000000"
    text = (
        POSTED_1_4.replace("<alice id>", alice).replace("<dm channel id>", dm_id).replace("<bot user id>", BOT_ID)
    )
    ev = json.loads(text)
    assert isinstance(ev["data"]["post"], str) and isinstance(ev["data"]["mentions"], str)

    post = decode(ev)
    assert post.post_id == "pst4u3m1x7f8zq9c3h1k5w2abc"
    assert post.channel_id == dm_id and post.channel_type == "D" and post.team_id == ""
    assert post.user_id == alice and post.root_id == ""
    assert post.text == "hello @helpbot"
    assert post.mentions_bot is True
    assert post.create_at_ms == 1732550000123 and post.edit_at_ms == 0
    assert not post.from_bot and not post.from_webhook and post.post_type == ""

    directory = FakeDirectory()
    directory.users[alice] = {"id": alice, "username": "alice", "first_name": "Alice", "last_name": "Liddell"}
    directory.channels[dm_id] = {"id": dm_id, "type": "D", "team_id": "", "name": f"{alice}__{BOT_ID}"}
    intake = Intake(store, directory, IntakeRules(bot_id=BOT_ID))
    assert asyncio.run(intake.accept(post)) is True
    item = row(store, "pst4u3m1x7f8zq9c3h1k5w2abc")
    assert item.user_custom_id == f"u:{alice}" and item.user_full_name == "Alice Liddell (@alice)"


def test_mentions_list_without_the_bot_is_not_a_mention() -> None:
    ev = event(raw_post("p1", SUPPORT, message="@jane look"), mentions=[JANE])
    assert decode(ev).mentions_bot is False


# ---- group messages, edit-history copies ----------------------------------------------------------------


@pytest.mark.parametrize("text, relayed", [("@helpbot the printer is down", True), ("bob, lunch at noon?", False)])
def test_group_message_is_addressed_to_the_bot_only_by_its_text(store: Store, text: str, relayed: bool) -> None:
    """GMMention: the server puts every member but the poster in `mentions`, the bot on every GM post."""
    intake = make_intake(store, mention_only=True)
    ev = event(raw_post("g1", GM, message=text), mentions=[BOT_ID])
    assert decode(ev).mentions_bot is True
    assert accept(intake, ev) is relayed
    assert store.has_post("g1") is relayed


def test_group_message_without_channel_type_in_the_event_is_still_decided_by_text(store: Store) -> None:
    intake = make_intake(store, mention_only=True)
    ev = event(raw_post("g2", GM, message="no bot here"), mentions=[BOT_ID])
    del ev["data"]["channel_type"]  # the type then comes from the channel itself
    assert accept(intake, ev) is False


def test_an_edit_history_copy_is_no_post_of_its_own(store: Store) -> None:
    intake = make_intake(store)
    assert accept(intake, dm("p1", "my order is 1234")) is True
    copy = raw_post("c1", DM, message="my order is 1234", delete_at=1732550009000)
    copy["original_id"] = "p1"
    post = post_from_dict(copy, channel_type="D", team_id="", bot_id=BOT_ID, bot_username=BOT_NAME)
    assert post.original_id == "p1"
    assert intake.skip_reason(post) == "edit-history copy"
    assert asyncio.run(intake.accept(post)) is False
    assert store.count_outbox() == 1
