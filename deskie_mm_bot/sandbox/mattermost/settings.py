"""Server settings the emulator honours (System Console values a bot can meet), with Mattermost's defaults."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_FILE_SIZE = 104857600  # FileSettings.MaxFileSize: 100 MiB


@dataclass
class ServerSettings:
    # FileSettings.MaxFileSize, per file: larger uploads are refused with 413.
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    # FileSettings.EnableFileAttachments: off refuses every upload with 403.
    enable_file_attachments: bool = True
    # ServiceSettings.EnablePostUsernameOverride (reported in the client config only).
    enable_post_username_override: bool = False

    def client_config(self, version: str) -> dict[str, str]:
        """GET /api/v4/config/client?format=old: every value is a string."""
        return {
            "Version": version,
            "MaxFileSize": str(self.max_file_size),
            "EnableFileAttachments": "true" if self.enable_file_attachments else "false",
            "EnablePostUsernameOverride": "true" if self.enable_post_username_override else "false",
            "SiteName": "Mattermost",
        }
