"""The test rule for the network, in one place: loopback only. Used by tests/conftest.py for the test
process and by this folder's sitecustomize.py for every Python subprocess the tests start."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

real_connect = socket.socket.connect
real_connect_ex = socket.socket.connect_ex
real_getaddrinfo = socket.getaddrinfo


class NetworkBlocked(ConnectionRefusedError):
    """Raised for any address beyond loopback."""


def is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def check(address: object) -> None:
    # AF_UNIX paths (str/bytes) stay local by nature.
    if isinstance(address, tuple) and address and not is_loopback(address[0]):
        raise NetworkBlocked(f"test tried to reach {address!r}; only loopback is allowed")


def guarded_connect(self: socket.socket, address: Any) -> None:
    check(address)
    return real_connect(self, address)


def guarded_connect_ex(self: socket.socket, address: Any) -> int:
    check(address)
    return real_connect_ex(self, address)


def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not is_loopback(host):
        raise NetworkBlocked(f"test tried to resolve {host!r}; only loopback is allowed")
    return real_getaddrinfo(host, *args, **kwargs)


def install(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    setattr_(socket.socket, "connect", guarded_connect)
    setattr_(socket.socket, "connect_ex", guarded_connect_ex)
    setattr_(socket, "getaddrinfo", guarded_getaddrinfo)
