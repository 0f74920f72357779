"""The API tokens page: list, create (the raw token shown once), revoke."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from mailmarketer.accounts import actions
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import ApiToken, AuditEvent, hash_token
from mailmarketer.accounts.permissions import Role
from mailmarketer.testing import client_for, make_member, make_user

TOKENS = reverse("tokens", kwargs={"ws": "acme"})
CREATE = reverse("token-create", kwargs={"ws": "acme"})


def revoke_url(token, ws="acme"):
    return reverse("token-revoke", kwargs={"ws": ws, "token_id": token.pk})


def make_token(personas, name="Acme warehouse sync", role=Role.MARKETER):
    return actions.do_create_api_token(
        personas.acme, name=name, role=role, actor=Actor.for_user(personas.alice)
    )


def test_it_lists_the_workspace_tokens(alice_client, personas):
    token, raw = make_token(personas)
    old, _ = make_token(personas, name="Old importer")
    actions.do_revoke_api_token(old, actor=Actor.for_user(personas.alice))
    actions.do_create_api_token(
        personas.evil, name="Evil bot", role=Role.OWNER, actor=Actor.for_user(personas.mallory)
    )
    response = alice_client.get(TOKENS)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme warehouse sync" in html
    assert f"<code>{token.prefix}…</code>" in html
    assert "alice@acme.test" in html  # created by
    assert "never" in html  # last used
    assert "Revoked" in html
    assert revoke_url(token) in html
    assert revoke_url(old) not in html  # already revoked: no button
    assert "Evil bot" not in html
    assert raw not in html


def test_it_creates_a_token_and_shows_it_once(alice_client, personas):
    response = alice_client.post(CREATE, {"token-name": "Website", "token-role": "analyst"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw = re.search(r'<code id="new-token" class="secret">(mm_[^<]+)</code>', html).group(1)
    assert 'data-copy="new-token"' in html
    assert f'curl -H "Authorization: Bearer {raw}" http://testserver/api/v1/me' in html

    token = ApiToken.objects.get(workspace=personas.acme, name="Website")
    assert token.role == Role.ANALYST
    assert token.created_by == personas.alice
    # The database holds only the hash; nothing of the secret beyond the shown prefix.
    assert token.key_hash == hash_token(raw)
    assert raw not in (token.key_hash, token.prefix, token.name)
    assert raw.startswith(token.prefix)
    event = AuditEvent.objects.get(event="token.created")
    assert (event.workspace, event.object_id, event.new) == (
        personas.acme,
        str(token.pk),
        {"role": "analyst"},
    )
    assert raw not in str(event.new) + event.object_repr

    # Never again: not in the list, not in the session, not in a URL.
    again = alice_client.get(TOKENS)
    assert raw not in again.content.decode()
    assert 'id="new-token"' not in again.content.decode()
    assert raw not in str(dict(alice_client.session.items()))
    assert "Location" not in response


def test_it_shows_a_missing_name_on_the_field(alice_client):
    response = alice_client.post(CREATE, {"token-name": "  ", "token-role": "marketer"})
    assert response.status_code == 400
    html = response.content.decode()
    field = re.search(r'<input[^>]*name="token-name"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in field
    assert "id_token-name_error" in field
    assert 'id="id_token-name_error"' in html
    assert not ApiToken.objects.exists()


def test_it_does_not_let_an_admin_make_an_owner_token(personas):
    dave = make_user("dave@acme.test")
    make_member(personas.acme, dave, Role.ADMIN)
    client = client_for(dave)
    select = re.search(
        r'<select name="token-role".*?</select>', client.get(TOKENS).content.decode(), re.S
    ).group(0)
    assert 'value="owner"' not in select
    response = client.post(CREATE, {"token-name": "Root", "token-role": "owner"})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_it_revokes_a_token(alice_client, personas):
    token, _ = make_token(personas)
    response = alice_client.post(revoke_url(token))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(event="token.revoked", object_id=str(token.pk)).count() == 1
    # Revoking twice changes nothing and writes no second row.
    alice_client.post(revoke_url(token))
    assert AuditEvent.objects.filter(event="token.revoked").count() == 1


@pytest.mark.parametrize("client_name", ["bob_client", "carol_client"])
def test_it_forbids_tokens_to_marketers_and_analysts(client_name, request, personas):
    client = request.getfixturevalue(client_name)
    token, _ = make_token(personas)
    page = client.get(TOKENS)
    assert page.status_code == 403
    assert b"Acme warehouse sync" not in page.content
    assert client.post(CREATE, {"token-name": "Mine", "token-role": "owner"}).status_code == 403
    assert client.post(revoke_url(token)).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None
    assert ApiToken.objects.count() == 1


def test_it_hides_acme_tokens_from_another_workspace(mallory_client, personas):
    token, _ = make_token(personas)
    page = mallory_client.get(TOKENS)
    assert page.status_code == 404
    assert b"Acme warehouse sync" not in page.content
    assert (
        b"Acme warehouse sync"
        not in mallory_client.get(reverse("tokens", kwargs={"ws": "evil"})).content
    )
    assert mallory_client.post(revoke_url(token, "evil")).status_code == 404
    assert mallory_client.post(revoke_url(token)).status_code == 404
    response = mallory_client.post(CREATE, {"token-name": "Spy", "token-role": "owner"})
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert not ApiToken.objects.filter(name="Spy").exists()
