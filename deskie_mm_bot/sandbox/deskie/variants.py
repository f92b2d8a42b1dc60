"""Opt-in behaviours where the reference leaves room ([LIB], [GUESS], "unknown").

Another emulator written from the same documents, or a real account, may behave the other plausible
way. Every switch defaults to this emulator's usual behaviour; tests flip them to prove the bot copes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RATE_HEADERS = ("full", "refusal_only")
RETRY_AFTER_HEADERS = ("retry_after", "Retry-After")
CLOSED_CASE_MESSAGES = ("refuse", "reopen")
PAGING = ("honour", "ignore_page")
EMPTY_LISTS = ("object", "array", "root_array")
MESSAGE_CONTENT = ("both", "html_only")
WEBHOOK_ATTACHMENTS = ("detailed", "url_only")


@dataclass
class DeskieVariants:
    # --- the custom-channel webhook (§7.1: only case_id, custom_user_id, content are [CODE]) ----
    # Fields left out of every webhook object, e.g. {"message_id", "content_html", "staff_id"}.
    webhook_omit: set[str] = field(default_factory=set)
    # `object[content]` carries the message's HTML (and no `content_html` is sent).
    webhook_html_in_content: bool = False
    # Each webhook is delivered this many extra times even when the bot answered 2xx.
    webhook_duplicates: int = 0
    # --- rate-limit headers (§4: "two or three" headers per response, exact rules unknown) ------
    # "full": rate_limit_per_minute + api_calls_left on every answer (retry_after when out);
    # "refusal_only": no budget headers at all, only the retry header on a refused call.
    rate_headers: str = "full"
    # Name of the retry header: Deskie's documented `retry_after` or the standard `Retry-After`.
    retry_after_header: str = "retry_after"
    # --- search and lists ------------------------------------------------------------------------
    # False: `^` anchors are not understood; they are matched literally as part of the text.
    search_anchors: bool = True
    # "ignore_page": list endpoints always answer the first page, whatever `page` asks.
    paging: str = "honour"
    # "array": an empty list is answered as `[]` (a PHP empty array) instead of {"total_count": 0};
    # "root_array": as `{"case": []}` (the root key over an empty array, as one SDK's test has it).
    empty_list: str = "object"
    # "html_only": listed messages carry `content: ""` and only `content_html` (the laravel fixture).
    message_content: str = "both"
    # "url_only": webhook attachments carry nothing but `url` (all that live receivers read, §7.1).
    webhook_attachments: str = "detailed"
    # --- active chats (§5.7: whether ending a chat moves `updated_at` is unknown) ------------------
    # True: a chat that ends (timeout, "end chat") gets `updated_at` = the moment it ended.
    chat_end_bumps_updated: bool = False
    # --- files (§7.1: whether an attachment URL needs the API credentials is unknown) ----------
    # True: the account's file URLs answer 401 unless the request carries the API's Basic auth.
    file_urls_need_auth: bool = False
    # --- cases -----------------------------------------------------------------------------------
    # "reopen": a customer message to a closed case is taken and reopens the case (§6.2 unknown).
    closed_case_messages: str = "refuse"
    # False: the create-case answer carries no `user_id` (§5.1 lists it; one may not send it).
    create_answer_user_id: bool = True

    def check(self) -> None:
        for name, allowed in (
            ("rate_headers", RATE_HEADERS),
            ("retry_after_header", RETRY_AFTER_HEADERS),
            ("closed_case_messages", CLOSED_CASE_MESSAGES),
            ("paging", PAGING),
            ("empty_list", EMPTY_LISTS),
            ("message_content", MESSAGE_CONTENT),
            ("webhook_attachments", WEBHOOK_ATTACHMENTS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}")
