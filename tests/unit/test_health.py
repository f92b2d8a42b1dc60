"""/healthz from typed states: healthy only with the websocket up, Deskie usable, and no stop under way."""

from __future__ import annotations

from deskie_mm_bot.health import Health, LinkState, ServiceState


def _health(*, websocket: LinkState = LinkState.CONNECTED, deskie: ServiceState = ServiceState.OK,
            last_error: str | None = None, stopping: bool = False) -> Health:
    return Health(websocket=websocket, reconnects=2, deskie=deskie, deskie_last_error=last_error, stopping=stopping)


def test_healthy_only_when_every_part_is() -> None:
    assert _health().ok
    assert _health(deskie=ServiceState.RATE_LIMITED).ok and _health(deskie=ServiceState.UNKNOWN).ok
    assert not _health(websocket=LinkState.DISCONNECTED).ok
    assert not _health(deskie=ServiceState.FAILING).ok
    assert not _health(stopping=True).ok


def test_the_json_keeps_its_documented_shape() -> None:
    assert _health(deskie=ServiceState.FAILING, last_error="HTTP 503").as_json() == {
        "mattermost": {"websocket": "connected", "reconnects": 2},
        "deskie": {"state": "failing", "last_error": "HTTP 503"},
        "stopping": False,
    }
