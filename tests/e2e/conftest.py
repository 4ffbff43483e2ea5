"""End-to-end tests: every counterpart a real server on 127.0.0.1."""

from tests.adapters.conftest import loopback_only

__all__ = ["loopback_only"]
