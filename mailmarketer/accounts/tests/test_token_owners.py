"""API tokens stop working with their owner (issue 9, F7): when the person who made one leaves
the workspace, is deactivated or deleted, or moves to a role without its permissions; a
stopped token is shown as such and can be re-issued under someone else, audited."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from mailmarketer.accounts import actions
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import ApiToken, AuditEvent, Membership
from mailmarketer.accounts.permissions import Role
from mailmarketer.testing import make_member, make_user

pytestmark = pytest.mark.django_db
ME = "/api/v1/me"
TOKENS = reverse("tokens", kwargs={"ws": "acme"})


def status(raw: str) -> int:
    return Client().get(ME, headers={"Authorization": f"Bearer {raw}"}).status_code


@pytest.fixture
def dave(personas):
    """An admin of acme, who makes tokens."""
    user = make_user("dave@acme.test", "Dave")
    make_member(personas.acme, user, Role.ADMIN)
    return user


def token_of(user, workspace, role=Role.ADMIN):
    return actions.do_create_api_token(
        workspace, name=f"{role} sync", role=role, actor=Actor.for_user(user)
    )


def membership(user, workspace) -> Membership:
    return Membership.objects.get(user=user, workspace=workspace)


def test_it_stops_a_token_whose_owner_leaves_the_workspace(personas, dave):
    _, raw = token_of(dave, personas.acme)
    assert status(raw) == 200
    actions.do_remove_member(membership(dave, personas.acme), actor=Actor.for_user(personas.alice))
    assert status(raw) == 401


def test_it_stops_a_token_whose_owner_loses_its_permissions(personas, dave):
    _, admin_raw = token_of(dave, personas.acme, Role.ADMIN)
    _, marketer_raw = token_of(dave, personas.acme, Role.MARKETER)
    assert status(admin_raw) == status(marketer_raw) == 200
    actions.do_change_role(
        membership(dave, personas.acme), Role.MARKETER, actor=Actor.for_user(personas.alice)
    )
    response = Client().get(ME, headers={"Authorization": f"Bearer {admin_raw}"})
    assert response.status_code == 401
    assert "role (marketer) no longer holds the permissions" in response.json()["message"]
    # A role that still holds every permission of the token keeps it working.
    assert status(marketer_raw) == 200


def test_it_stops_a_token_whose_owner_is_deactivated(personas, dave):
    _, raw = token_of(dave, personas.acme)
    assert status(raw) == 200
    dave.is_active = False
    dave.save(update_fields=["is_active"])
    assert status(raw) == 401


def test_it_stops_a_token_whose_owner_is_deleted(personas, dave):
    token, raw = token_of(dave, personas.acme)
    assert status(raw) == 200
    dave.delete()
    token.refresh_from_db()
    assert token.created_by is None and not token.issued_by_operator
    assert status(raw) == 401


def test_it_keeps_a_command_line_token_working_without_an_owner(personas):
    _, raw = actions.do_create_api_token(
        personas.acme, name="cli", role=Role.OWNER, actor=Actor.system("cli")
    )
    assert status(raw) == 200


def test_it_refuses_a_token_its_maker_could_not_own(personas):
    # bob (marketer) cannot reach the tokens page; the action refuses him an admin token too.
    with pytest.raises(actions.ActionError, match="does not hold the permissions"):
        token_of(personas.bob, personas.acme, Role.ADMIN)


def test_it_shows_a_stopped_token_and_reissues_it_under_another_owner(alice_client, personas, dave):
    old, old_raw = token_of(dave, personas.acme)
    actions.do_remove_member(membership(dave, personas.acme), actor=Actor.for_user(personas.alice))
    html = alice_client.get(TOKENS).content.decode()
    assert "Stopped" in html and "its owner is no longer a member of the workspace" in html
    reissue = reverse("token-reissue", kwargs={"ws": "acme", "token_id": old.pk})
    assert reissue in html

    response = alice_client.post(reissue)

    assert response.status_code == 200
    new = ApiToken.objects.exclude(pk=old.pk).get()
    assert (new.name, new.role, new.created_by) == (old.name, old.role, personas.alice)
    new_raw = response.context["raw_token"]
    assert new_raw in response.content.decode()  # shown once, like a new token
    assert status(new_raw) == 200
    assert status(old_raw) == 401  # the secret the person who left may know stops for good
    event = AuditEvent.objects.get(event="token.reissued")
    assert event.actor_user == personas.alice
    assert event.old == {"token": old.prefix, "owner": "dave@acme.test"}


def test_it_forbids_reissuing_to_mallory(mallory_client, personas, dave):
    old, _ = token_of(dave, personas.acme)
    reissue = reverse("token-reissue", kwargs={"ws": "acme", "token_id": old.pk})
    assert mallory_client.post(reissue).status_code == 404
    assert ApiToken.objects.count() == 1
