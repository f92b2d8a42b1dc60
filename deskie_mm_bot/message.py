"""The canonical message types the relay works with: no protocol details beyond this point."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChatPost:
    """A customer's post as the relay sees it, whether it came by websocket or REST catch-up."""

    post_id: str
    channel_id: str
    channel_type: str  # D (direct), G (group), O (public), P (private)
    team_id: str
    user_id: str
    root_id: str
    text: str
    file_ids: list[str] = field(default_factory=list)
    create_at_ms: int = 0
    update_at_ms: int = 0
    edit_at_ms: int = 0
    delete_at_ms: int = 0
    post_type: str = ""
    from_bot: bool = False
    from_webhook: bool = False
    mentions_bot: bool = False  # the server counts the bot as mentioned, or the text names it
    names_bot: bool = False  # the text itself @mentions the bot
    original_id: str = ""  # set only on an edit-history copy of another post (not a post of its own)

    @property
    def is_direct(self) -> bool:
        return self.channel_type == "D"
