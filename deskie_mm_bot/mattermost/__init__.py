"""The Mattermost edge: websocket events, REST calls, post decoding."""
