"""Emoji names the emulator knows as system emoji; any other name is a custom emoji that does not
exist, which the server refuses (404 `app.emoji.get_by_name.no_result`)."""

from __future__ import annotations

SYSTEM_EMOJI = frozenset(
    {
        "+1", "-1", "thumbsup", "thumbsdown", "eyes", "white_check_mark", "heavy_check_mark", "x",
        "heart", "smile", "slightly_smiling_face", "tada", "rocket", "warning", "hourglass",
        "hourglass_flowing_sand", "raised_hands", "pray", "ok_hand", "wave", "question", "exclamation",
    }
)
