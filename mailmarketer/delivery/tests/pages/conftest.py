"""Fixtures of the sending pages' tests, the same as the campaign content pages' (acme ready to
send, a list with people on it, a draft, and a campaign of evil's): mailmarketer/testing.py.
Test modules that define fixtures of the same names keep their own."""

from mailmarketer.testing import draft, evil_draft, news, people, ws  # noqa: F401 (fixtures)
