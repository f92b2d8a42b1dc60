import socket

import pytest

from tests.conftest import NetworkBlocked


def test_connect_beyond_loopback_fails() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NetworkBlocked):
            s.connect(("192.0.2.1", 80))
    finally:
        s.close()


def test_resolving_a_public_name_fails() -> None:
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("example.com", 443)


def test_loopback_is_allowed() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.socket()
    try:
        c.connect(srv.getsockname())
    finally:
        c.close()
        srv.close()


def test_subprocesses_of_the_tests_are_held_to_loopback_too() -> None:
    import os
    import subprocess
    import sys

    from tests.support.harness import NETGUARD

    code = "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=2)\nexcept OSError as e:\n    print(e)"
    env = dict(os.environ, PYTHONPATH=str(NETGUARD))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30).stdout
    assert "only loopback is allowed" in out
