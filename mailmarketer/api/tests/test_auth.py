"""Bearer-token authentication: who gets in, who gets 401, and what is recorded."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from mailmarketer.accounts.actions import do_revoke_api_token
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def assert_401(response, code="unauthenticated"):
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert response["WWW-Authenticate"].startswith("Bearer ")


def test_it_accepts_a_valid_token(tokens, as_token):
    response = as_token(tokens.owner.raw).get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["workspace"]["slug"] == "acme"


def test_it_accepts_the_scheme_in_any_case(tokens, as_token):
    response = as_token().get("/api/v1/me", headers={"Authorization": f"bearer {tokens.owner.raw}"})
    assert response.status_code == 200


def test_it_rejects_a_revoked_token(tokens, as_token):
    do_revoke_api_token(tokens.owner.token, actor=Actor.system())
    response = as_token(tokens.owner.raw).get("/api/v1/me")
    assert_401(response, code="invalid_token")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_it_rejects_an_unknown_token(tokens, as_token):
    response = as_token(tokens.owner.raw + "x").get("/api/v1/me")
    assert_401(response, code="invalid_token")
    assert response.json()["message"] == "unknown or revoked API token"


def test_it_rejects_a_request_without_a_token(personas, as_token):
    response = as_token().get("/api/v1/me")
    assert_401(response)
    assert "Authorization: Bearer" in response.json()["message"]


@pytest.mark.parametrize(
    "header",
    ["Token {raw}", "Basic {raw}", "Bearer", "Bearer ", "{raw}", "Bearer {raw} extra"],
)
def test_it_rejects_a_malformed_authorization_header(tokens, as_token, header):
    response = as_token().get(
        "/api/v1/me", headers={"Authorization": header.format(raw=tokens.owner.raw)}
    )
    assert_401(response)
    assert response.json()["message"].startswith(("malformed", "authentication required"))


def test_it_ignores_a_signed_in_session(alice_client):
    # The API takes bearer tokens only: a browser's session cookie is no credential here,
    # which is also why the API needs no CSRF token.
    response = alice_client.get("/api/v1/me")
    assert_401(response)


def test_it_records_when_a_token_was_last_used(tokens, as_token):
    assert tokens.owner.token.last_used_at is None
    before = timezone.now()
    as_token(tokens.owner.raw).get("/api/v1/me")
    last_used = ApiToken.objects.get(pk=tokens.owner.token.pk).last_used_at
    assert last_used is not None and last_used >= before


def test_it_does_not_record_use_of_a_rejected_token(tokens, as_token):
    do_revoke_api_token(tokens.owner.token, actor=Actor.system())
    as_token(tokens.owner.raw).get("/api/v1/me")
    assert ApiToken.objects.get(pk=tokens.owner.token.pk).last_used_at is None


def test_it_needs_no_csrf_token_for_a_bearer_authenticated_patch(tokens, as_token):
    client = as_token(tokens.owner.raw, client=Client(enforce_csrf_checks=True))
    response = client.patch("/api/v1/workspace", {"name": "Acme Ltd"})
    assert response.status_code == 200
    assert response.json()["name"] == "Acme Ltd"
