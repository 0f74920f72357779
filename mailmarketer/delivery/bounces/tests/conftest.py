"""Fixtures of the bounce tests: acme ready to send, a list with people on it
(mailmarketer/testing.py)."""

from mailmarketer.testing import news, people, ws  # noqa: F401 (fixtures)
