from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone

from mailmarketer.accounts import actions
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent, Invitation, Membership, User
from mailmarketer.accounts.permissions import Role

from .auth_helpers import PASSWORD, give_password, sign_in, signed_in_as


def invite(personas, email, role=Role.MARKETER):
    invitation = actions.do_invite_member(
        personas.acme, email=email, role=role, actor=Actor.for_user(personas.alice)
    )
    return invitation, f"/invite/{actions.invitation_token(invitation)}/"


def role_in_acme(personas, email):
    membership = Membership.objects.filter(workspace=personas.acme, user__email=email).first()
    return membership.role if membership else None


# -- someone without an account ------------------------------------------------------------


def test_it_creates_the_account_and_joins_the_workspace(client, personas):
    _, path = invite(personas, "dave@acme.test")
    page = client.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Join Acme" in html
    assert "dave@acme.test" in html
    response = client.post(path, {"name": "Dave", "password1": PASSWORD, "password2": PASSWORD})
    assert response["Location"] == "/app/acme/"
    dave = User.objects.get(email="dave@acme.test")
    assert dave.name == "Dave"
    assert dave.check_password(PASSWORD)
    assert role_in_acme(personas, "dave@acme.test") == Role.MARKETER
    assert signed_in_as(client) == "dave@acme.test"
    assert client.get("/app/acme/").status_code == 200
    created = AuditEvent.objects.get(event="user.created", object_id=str(dave.pk))
    assert created.actor_label == "invitation"
    assert created.ip == "127.0.0.1"
    assert AuditEvent.objects.filter(event="member.joined", actor_user_id=dave.pk).exists()


def test_it_checks_the_new_password_and_creates_nothing_on_error(client, personas):
    _, path = invite(personas, "dave@acme.test")
    response = client.post(path, {"name": "Dave", "password1": "dave", "password2": "dave"})
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()
    assert not User.objects.filter(email="dave@acme.test").exists()


def test_it_accepts_an_invitation_once(client, personas):
    _, path = invite(personas, "dave@acme.test")
    client.post(path, {"name": "Dave", "password1": PASSWORD, "password2": PASSWORD})
    again = Client().get(path)
    assert again.status_code == 410
    assert "no longer works" in again.content.decode()


# -- someone with an account ---------------------------------------------------------------


def test_it_asks_an_existing_user_to_sign_in_first(client, personas):
    _, path = invite(personas, "mallory@evil.test")
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="/login/?{urlencode({"next": path})}"' in html
    assert client.post(path).status_code == 200
    assert role_in_acme(personas, "mallory@evil.test") is None


def test_it_lets_the_invited_user_accept_after_signing_in(client, personas):
    give_password(personas.mallory)
    _, path = invite(personas, "mallory@evil.test", Role.ANALYST)
    response = sign_in(client, "mallory@evil.test", next=path)
    assert response["Location"] == path
    page = client.get(path)
    assert "Accept and join Acme" in page.content.decode()
    accepted = client.post(path)
    assert accepted["Location"] == "/app/acme/"
    assert role_in_acme(personas, "mallory@evil.test") == Role.ANALYST
    assert client.get("/app/acme/").status_code == 200


def test_it_does_not_let_another_user_accept(mallory_client, personas):
    _, path = invite(personas, "dave@example.test")
    User.objects.create_user(email="dave@example.test")
    page = mallory_client.get(path)
    assert "but this invitation is for" in page.content.decode()
    assert mallory_client.post(path).status_code == 200
    assert role_in_acme(personas, "mallory@evil.test") is None
    assert role_in_acme(personas, "dave@example.test") is None
    assert mallory_client.get("/app/acme/").status_code == 404


def test_it_offers_to_sign_out_to_switch_accounts(mallory_client, personas):
    _, path = invite(personas, "dave@example.test")
    User.objects.create_user(email="dave@example.test")
    response = mallory_client.post("/logout/", {"next": f"/login/?next={path}"})
    assert response["Location"] == f"/login/?next={path}"
    assert signed_in_as(mallory_client) is None


# -- links that no longer work -------------------------------------------------------------


def test_it_refuses_an_expired_invitation(client, personas):
    invitation, path = invite(personas, "dave@acme.test")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(1))
    assert client.get(path).status_code == 410
    response = client.post(path, {"name": "Dave", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 410
    assert not User.objects.filter(email="dave@acme.test").exists()


def test_it_refuses_a_revoked_invitation(client, personas):
    invitation, path = invite(personas, "dave@acme.test")
    actions.do_revoke_invitation(invitation, actor=Actor.for_user(personas.alice))
    assert client.get(path).status_code == 410


def test_it_refuses_a_replaced_invitation(client, personas):
    _, old_path = invite(personas, "dave@acme.test")
    _, new_path = invite(personas, "dave@acme.test", Role.ANALYST)
    assert client.get(old_path).status_code == 410
    assert client.get(new_path).status_code == 200


def test_it_refuses_an_invitation_used_by_an_existing_user(client, personas):
    give_password(personas.mallory)
    invitation, path = invite(personas, "mallory@evil.test")
    actions.do_accept_invitation(invitation, personas.mallory, actor=Actor.system())
    sign_in(client, "mallory@evil.test")
    assert client.get(path).status_code == 410
    assert client.post(path).status_code == 410


@pytest.mark.parametrize("token", ["nonsense", "1:2:3"])
def test_it_refuses_a_forged_token(client, db, token):
    response = client.get(f"/invite/{token}/")
    assert response.status_code == 410
    assert "Ask the person who invited you" in response.content.decode()
