"""The Deskie edge: API client, rate budget, webhook parsing, HTML formatting."""
