"""API fixtures: a token per persona role, and a client that sends one."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.test import Client

from mailmarketer.accounts.permissions import Role
from mailmarketer.testing import make_token


@pytest.fixture(autouse=True)
def _fresh_rate_counts():
    # The rate limit counts in the cache, keyed by token id; ids are reused after a rollback.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def tokens(personas):
    """owner, marketer and analyst tokens of acme; mallory's owner token of evil."""
    return SimpleNamespace(
        owner=make_token(personas.acme, Role.OWNER),
        marketer=make_token(personas.acme, Role.MARKETER),
        analyst=make_token(personas.acme, Role.ANALYST),
        mallory=make_token(personas.evil, Role.OWNER, name="mallory's token"),
    )


class ApiClient:
    """Django's test client with the bearer header and JSON bodies filled in."""

    def __init__(self, raw: str | None = None, client: Client | None = None):
        self.client = client or Client()
        self.raw = raw

    def request(self, method: str, path: str, body=None, *, headers=None, raw_body=None, **extra):
        headers = dict(headers or {})
        if self.raw is not None:
            headers.setdefault("Authorization", f"Bearer {self.raw}")
        kwargs = {"headers": headers, **extra}
        if body is not None or raw_body is not None:
            kwargs["data"] = raw_body if raw_body is not None else json.dumps(body)
            kwargs["content_type"] = "application/json"
        return getattr(self.client, method.lower())(path, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body, **kw)


@pytest.fixture
def as_token():
    return ApiClient
