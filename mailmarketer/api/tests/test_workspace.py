"""GET /me, GET /workspace and PATCH /workspace: allowed, forbidden and cross-workspace."""

from __future__ import annotations

import pytest

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.models import AuditEvent, Workspace
from mailmarketer.accounts.permissions import ROLE_PERMISSIONS, Role

pytestmark = pytest.mark.django_db


# -- GET /me ---------------------------------------------------------------------------------


def test_it_tells_a_token_who_it_is(tokens, as_token):
    response = as_token(tokens.analyst.raw).get("/api/v1/me")
    assert response.status_code == 200
    assert response.json() == {
        "workspace": {"slug": "acme", "name": "Acme"},
        "token": {
            "name": "analyst token",
            "prefix": tokens.analyst.token.prefix,
            "role": "analyst",
        },
        "permissions": sorted(ROLE_PERMISSIONS[Role.ANALYST]),
    }


def test_it_refuses_me_to_a_role_without_workspace_view(tokens, as_token, monkeypatch):
    # Every shipped role may view its workspace; take it away to prove the route checks it.
    monkeypatch.setitem(
        ROLE_PERMISSIONS, Role.ANALYST, ROLE_PERMISSIONS[Role.ANALYST] - {p.WORKSPACE_VIEW}
    )
    response = as_token(tokens.analyst.raw).get("/api/v1/me")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert p.WORKSPACE_VIEW in response.json()["message"]


def test_it_shows_mallory_only_her_own_workspace_on_me(tokens, as_token):
    body = as_token(tokens.mallory.raw).get("/api/v1/me").json()
    assert body["workspace"] == {"slug": "evil", "name": "Evil"}
    assert "acme" not in str(body).lower()


# -- GET /workspace ----------------------------------------------------------------------------


def test_it_shows_the_settings_to_a_role_that_may_view_them(tokens, as_token):
    response = as_token(tokens.marketer.raw).get("/api/v1/workspace")
    assert response.status_code == 200
    assert response.json() == {
        "slug": "acme",
        "name": "Acme",
        "sender_name": "Acme",
        "sender_email": "news@acme.test",
        "postal_address": "",
        "timezone": "UTC",
        "require_2fa": False,
        "privacy": {
            "consent_store_ip": True,
            "tracking_mode": "identified",
            "tracking_requires_consent": False,
        },
    }


def test_it_refuses_the_settings_to_an_analyst(tokens, as_token):
    response = as_token(tokens.analyst.raw).get("/api/v1/workspace")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert "sender_email" not in response.content.decode()


def test_it_shows_mallory_her_own_settings_not_acmes(tokens, as_token):
    body = as_token(tokens.mallory.raw).get("/api/v1/workspace").json()
    assert body["slug"] == "evil"
    assert "news@acme.test" not in str(body)


# -- PATCH /workspace --------------------------------------------------------------------------


def test_it_changes_the_settings_for_an_owner(tokens, as_token):
    response = as_token(tokens.owner.raw).patch(
        "/api/v1/workspace",
        {
            "name": "Acme Ltd",
            "sender_email": "hello@acme.test",
            "postal_address": "1 Road, Town",
            "timezone": "Europe/Berlin",
            "require_2fa": True,
            "privacy": {"consent_store_ip": False},
        },
    )
    assert response.status_code == 200
    assert response.json()["privacy"]["consent_store_ip"] is False
    acme = Workspace.objects.get(slug="acme")
    assert (acme.name, acme.sender_email, acme.postal_address) == (
        "Acme Ltd",
        "hello@acme.test",
        "1 Road, Town",
    )
    assert (acme.timezone, acme.require_2fa, acme.consent_store_ip) == (
        "Europe/Berlin",
        True,
        False,
    )
    assert acme.sender_name == "Acme"  # not sent, not changed


def test_it_writes_an_audit_row_naming_the_token(tokens, as_token):
    as_token(tokens.owner.raw).patch(
        "/api/v1/workspace",
        {"sender_name": "Acme News", "privacy": {"consent_store_ip": False}},
        REMOTE_ADDR="203.0.113.9",
    )
    event = AuditEvent.objects.get(event="workspace.updated")
    assert event.workspace_id == tokens.owner.token.workspace_id
    assert event.actor_token_id == tokens.owner.token.pk
    assert event.actor_user_id is None
    assert event.ip == "203.0.113.9"
    assert tokens.owner.token.prefix in event.actor_label
    assert event.old == {"sender_name": "Acme", "consent_store_ip": True}
    assert event.new == {"sender_name": "Acme News", "consent_store_ip": False}


def test_it_writes_no_audit_row_when_nothing_changes(tokens, as_token):
    response = as_token(tokens.owner.raw).patch("/api/v1/workspace", {"name": "Acme"})
    assert response.status_code == 200
    assert not AuditEvent.objects.filter(event="workspace.updated").exists()


@pytest.mark.parametrize("persona", ["analyst", "marketer"])
def test_it_refuses_changes_to_a_role_without_settings_manage(tokens, as_token, persona):
    response = as_token(getattr(tokens, persona).raw).patch("/api/v1/workspace", {"name": "X"})
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert p.SETTINGS_MANAGE in response.json()["message"]
    assert Workspace.objects.get(slug="acme").name == "Acme"
    assert not AuditEvent.objects.filter(event="workspace.updated").exists()


def test_it_refuses_before_looking_at_the_body(tokens, as_token):
    # A token that may not change settings learns nothing from validation errors.
    response = as_token(tokens.analyst.raw).patch("/api/v1/workspace", {"bogus": 1})
    assert response.status_code == 403


def test_it_changes_mallorys_workspace_not_acme(tokens, as_token):
    response = as_token(tokens.mallory.raw).patch("/api/v1/workspace", {"name": "Pwned"})
    assert response.status_code == 200
    assert response.json()["slug"] == "evil"
    assert Workspace.objects.get(slug="evil").name == "Pwned"
    assert Workspace.objects.get(slug="acme").name == "Acme"
    event = AuditEvent.objects.get(event="workspace.updated")
    assert event.workspace.slug == "evil"


def errors_of(response):
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "validation_failed"
    return {e["field"]: e["message"] for e in body["errors"]}


def test_it_names_unknown_fields(tokens, as_token):
    response = as_token(tokens.owner.raw).patch(
        "/api/v1/workspace", {"nmae": "X", "privacy": {"store_ip": False}}
    )
    assert errors_of(response) == {"nmae": "unknown field", "privacy.store_ip": "unknown field"}
    assert response.json()["message"] == "invalid fields: nmae, privacy.store_ip"


def test_it_names_a_bad_timezone(tokens, as_token):
    response = as_token(tokens.owner.raw).patch("/api/v1/workspace", {"timezone": "Mars/Base"})
    assert "is not a known time zone" in errors_of(response)["timezone"]
    assert Workspace.objects.get(slug="acme").timezone == "UTC"


def test_it_names_a_bad_email(tokens, as_token):
    response = as_token(tokens.owner.raw).patch(
        "/api/v1/workspace", {"sender_email": "not-an-address"}
    )
    assert errors_of(response) == {"sender_email": "Enter a valid email address."}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"require_2fa": "yes"}, "require_2fa"),
        ({"privacy": {"consent_store_ip": "false"}}, "privacy.consent_store_ip"),
        ({"name": None}, "name"),
        ({"name": 7}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "   "}, "name"),
        ({"privacy": None}, "privacy"),
    ],
)
def test_it_names_wrongly_typed_fields(tokens, as_token, body, field):
    response = as_token(tokens.owner.raw).patch("/api/v1/workspace", body)
    assert field in errors_of(response)
    assert Workspace.objects.get(slug="acme").name == "Acme"


def test_it_requires_a_json_object_body(tokens, as_token):
    client = as_token(tokens.owner.raw)
    assert errors_of(client.patch("/api/v1/workspace")) == {
        "": "a JSON object is required as the request body"
    }
    assert errors_of(client.patch("/api/v1/workspace", [1])) == {
        "": "the request body must be a JSON object"
    }


def test_it_answers_400_to_a_body_that_is_not_json(tokens, as_token):
    response = as_token(tokens.owner.raw).patch("/api/v1/workspace", raw_body="name=X")
    assert response.status_code == 400
    assert response.json() == {
        "code": "bad_request",
        "message": "the request body is not valid JSON",
    }


def test_it_changes_the_email_tracking_settings(tokens, as_token):
    client = as_token(tokens.owner.raw)
    response = client.patch(
        "/api/v1/workspace",
        {"privacy": {"tracking_mode": "anonymous", "tracking_requires_consent": True}},
    )
    assert response.status_code == 200
    assert response.json()["privacy"]["tracking_mode"] == "anonymous"
    acme = Workspace.objects.get(slug="acme")
    assert (acme.tracking_mode, acme.tracking_requires_consent) == ("anonymous", True)
    refused = client.patch("/api/v1/workspace", {"privacy": {"tracking_mode": "everything"}})
    assert refused.status_code == 422
    assert "privacy.tracking_mode" in refused.content.decode()
    assert Workspace.objects.get(slug="acme").tracking_mode == "anonymous"
