"""Walks every URL pattern of the project: each view declares its access rule, and no
state-changing request gets through without a CSRF token except the short allowlist below."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from mailmarketer.accounts.permissions import CATALOGUE

# Routes that legitimately take state-changing requests without a CSRF token, and why.
CSRF_ALLOWLIST = {
    # The REST API authenticates with a bearer token, never a cookie, so there is no ambient
    # credential for another site to ride on.
    r"^api/v1/",
    # RFC 8058 one-click unsubscribe: mail clients POST with no cookie and so no CSRF token. The
    # signed token in the URL is the only authority, and all it can do is unsubscribe its person.
    r"^f/u/",
    # Public sign-up forms, posted cross-site from embed snippets and by scripts, where no
    # CSRF cookie can be sent; a public form has no ambient credential to ride, and each post
    # carries a signed per-form token instead (signup/tokens.py). The double opt-in link, like
    # the unsubscribe link, has its signed token in the URL as its only authority.
    r"^f/<slug:ws>/<slug:form_slug>",
    r"^f/c/",
    # The webinar cancel link: the signed token in the URL is its only authority (GET changes
    # nothing; POST cancels that one registration).
    r"^f/w/",
    # Relay providers' bounce webhooks post with no cookie; each request carries the provider's
    # signature (or basic auth), checked before anything is read (delivery/bounces/webhooks.py).
    r"^hooks/bounces/",
    # The website snippet's collect endpoint: posted cross-site by sendBeacon with no cookie;
    # all it can do is add a hit for a site whose allowed origins include the poster's Origin.
    r"^t/e$",
}

SAMPLE_VALUES = {
    "ws": "acme",
    "token": "sample-token",
    "uidb64": "MQ",
    "message_id": "x",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def walk(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def sample_path(route: str) -> str:
    def fill(match):
        converter, name = match.group(1), match.group(2)
        if name in SAMPLE_VALUES:
            return SAMPLE_VALUES[name]
        return "1" if converter == "int" else "sample"

    path = re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)
    path = path.lstrip("^").rstrip("$").replace("\\Z", "")
    return "/" + path


def project_routes():
    return [(route, p) for route, p in walk() if not route.startswith("api/v1/")]


def csrf_checked_routes():
    return [
        (route, p)
        for route, p in walk()
        if not any(re.match(allowed, route) for allowed in CSRF_ALLOWLIST)
    ]


def test_it_finds_routes_to_check():
    routes = [route for route, _ in project_routes()]
    assert "login/" in routes
    assert "app/<slug:ws>/" in routes


@pytest.mark.parametrize(("route", "pattern"), project_routes(), ids=lambda v: str(v))
def test_it_declares_an_access_rule_for_every_view(route, pattern):
    callback = pattern.callback
    access = getattr(callback, "access", None)
    assert access in {"public", "account", "workspace"}, (
        f"{route} has no access rule: decorate its view with workspace_view(PERMISSION), "
        "account_view or public_view (accounts/access.py)"
    )
    if access == "workspace":
        assert callback.required_permission in CATALOGUE
        assert "<slug:ws>" in route, f"{route} is a workspace view without the workspace in its URL"


@pytest.mark.parametrize(("route", "pattern"), csrf_checked_routes(), ids=lambda v: str(v))
def test_it_rejects_state_changing_requests_without_a_csrf_token(route, pattern, personas):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.alice)
    path = sample_path(route)
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(path, data={})
        assert response.status_code == 403, f"{method.upper()} {path} -> {response.status_code}"
        assert b"CSRF" in response.content, f"{method.upper()} {path} was not a CSRF refusal"
