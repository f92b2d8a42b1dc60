"""Loaded at start-up by every Python subprocess the tests run (this folder is on their PYTHONPATH):
outbound connections beyond loopback fail there as in the test process itself."""

from deskie_netguard import install

install()
