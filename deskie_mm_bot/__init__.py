"""deskie-mm-bot: relays Mattermost conversations to Deskie cases and agents' answers back."""

__version__ = "0.1.0"
