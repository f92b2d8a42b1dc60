"""Opt-in behaviours of other Mattermost servers (older versions, proxies) the reference mentions.

Every switch defaults to this emulator's usual behaviour (a current v10/v11 server); tests flip them
to prove the bot copes with a server that behaves the other plausible way.
"""

from __future__ import annotations

from dataclasses import dataclass

MENTIONS = ("own", "none", "all")


@dataclass
class MattermostVariants:
    # `posted` events' `mentions`: "own" (>= 9.3: only to a mentioned user, holding only its id),
    # "none" (never sent), "all" (pre-9.3: the full list of mentioned ids, to everyone).
    mentions: str = "own"
    # False: `posted` data carries no `channel_type`, `team_id`, `channel_name`, `channel_display_name`.
    posted_channel_fields: bool = True
    # False: POST /posts ignores `pending_post_id` (a repeat makes a second post).
    pending_post_dedup: bool = True
    # False: GET /users/{id}/teams/{team_id}/channels answers 404 (a server or proxy without it).
    user_team_channels: bool = True
    # False: `hello` carries no `server_hostname` (older servers).
    hello_hostname: bool = True
    # The Content-Type of JSON answers; a proxy may add "; charset=utf-8".
    json_content_type: str = "application/json"

    def check(self) -> None:
        if self.mentions not in MENTIONS:
            raise ValueError(f"mentions must be one of {MENTIONS}")
