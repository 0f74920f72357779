from datetime import timedelta

import pytest
from django.utils import timezone

from mailmarketer.accounts import actions
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import ApiToken, AuditEvent, Invitation, Membership, Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.lib import outbox


def membership(ws, user):
    return Membership.objects.get(workspace=ws, user=user)


def test_it_keeps_the_last_owner(personas):
    alice = Actor.for_user(personas.alice)
    owner = membership(personas.acme, personas.alice)
    with pytest.raises(actions.Conflict, match="at least one owner"):
        actions.do_change_role(owner, Role.ADMIN, actor=alice)
    with pytest.raises(actions.Conflict, match="last owner"):
        actions.do_remove_member(owner, actor=alice)
    assert membership(personas.acme, personas.alice).role == Role.OWNER


def test_it_lets_an_owner_step_down_once_another_owner_exists(personas):
    alice = Actor.for_user(personas.alice)
    actions.do_change_role(membership(personas.acme, personas.bob), Role.OWNER, actor=alice)
    actions.do_change_role(membership(personas.acme, personas.alice), Role.ADMIN, actor=alice)
    assert membership(personas.acme, personas.alice).role == Role.ADMIN
    changes = AuditEvent.objects.filter(event="member.role_changed").order_by("id")
    assert [(e.old, e.new) for e in changes] == [
        ({"role": "marketer"}, {"role": "owner"}),
        ({"role": "owner"}, {"role": "admin"}),
    ]


def test_it_allows_only_owners_to_grant_the_owner_role(personas):
    actions.do_change_role(
        membership(personas.acme, personas.bob), Role.ADMIN, actor=Actor.for_user(personas.alice)
    )
    bob = Actor.for_user(personas.bob)  # now an admin
    with pytest.raises(actions.ActionError, match="only an owner"):
        actions.do_change_role(membership(personas.acme, personas.carol), Role.OWNER, actor=bob)
    with pytest.raises(actions.ActionError, match="only an owner"):
        actions.do_remove_member(membership(personas.acme, personas.alice), actor=bob)
    with pytest.raises(actions.ActionError, match="only an owner"):
        actions.do_create_api_token(personas.acme, name="x", role=Role.OWNER, actor=bob)


def test_it_rejects_unknown_roles(personas):
    with pytest.raises(actions.ActionError, match="unknown role 'god'"):
        actions.do_change_role(
            membership(personas.acme, personas.bob), "god", actor=Actor.for_user(personas.alice)
        )


def test_it_mails_an_invitation_after_commit_and_accepts_it_once(
    personas, django_capture_on_commit_callbacks
):
    alice = Actor.for_user(personas.alice)
    with django_capture_on_commit_callbacks(execute=True):
        invitation = actions.do_invite_member(
            personas.acme, email="Dave@Acme.test", role=Role.MARKETER, actor=alice
        )
    messages, total = outbox.list_messages()
    assert total == 1
    assert messages[0].to == "dave@acme.test"
    token = actions.invitation_token(invitation)
    assert actions.invitation_from_token(token) == invitation

    dave = actions.do_create_user(email="dave@acme.test", password=None, actor=Actor.system())
    actions.do_accept_invitation(invitation, dave, actor=Actor.for_user(dave))
    assert membership(personas.acme, dave).role == Role.MARKETER
    assert actions.invitation_from_token(token) is None
    with pytest.raises(actions.Conflict):
        actions.do_accept_invitation(invitation, dave, actor=Actor.for_user(dave))


def test_it_refuses_tampered_expired_and_revoked_invitation_tokens(personas):
    alice = Actor.for_user(personas.alice)
    invitation = actions.do_invite_member(
        personas.acme, email="erin@acme.test", role=Role.ANALYST, actor=alice
    )
    token = actions.invitation_token(invitation)
    assert actions.invitation_from_token(token[:-2] + "xx") is None
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(1))
    assert actions.invitation_from_token(token) is None
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() + timedelta(1))
    assert actions.invitation_from_token(token) is not None
    actions.do_revoke_invitation(invitation, actor=alice)
    assert actions.invitation_from_token(token) is None


def test_it_refuses_an_invitation_accepted_by_another_address(personas):
    invitation = actions.do_invite_member(
        personas.acme,
        email="frank@acme.test",
        role=Role.ANALYST,
        actor=Actor.for_user(personas.alice),
    )
    with pytest.raises(actions.ActionError, match=r"frank@acme\.test"):
        actions.do_accept_invitation(
            invitation, personas.mallory, actor=Actor.for_user(personas.mallory)
        )
    assert not Membership.objects.filter(workspace=personas.acme, user=personas.mallory).exists()


def test_it_stores_only_the_hash_of_an_api_token(personas):
    token, raw = actions.do_create_api_token(
        personas.acme, name="CRM sync", role=Role.MARKETER, actor=Actor.for_user(personas.alice)
    )
    assert raw.startswith("mm_")
    stored = ApiToken.objects.get(pk=token.pk)
    assert raw not in (stored.key_hash, stored.prefix, stored.name)
    assert stored.key_hash == actions.hash_token(raw)


def test_it_audits_workspace_changes_with_old_and_new_values(personas):
    actions.do_update_workspace(
        personas.acme,
        {"postal_address": "1 Main St", "timezone": "Europe/Berlin"},
        actor=Actor.for_user(personas.alice),
    )
    ws = Workspace.objects.get(pk=personas.acme.pk)
    assert (ws.postal_address, ws.timezone) == ("1 Main St", "Europe/Berlin")
    row = AuditEvent.objects.get(event="workspace.updated")
    assert row.old == {"postal_address": "", "timezone": "UTC"}
    assert row.new == {"postal_address": "1 Main St", "timezone": "Europe/Berlin"}


def test_it_refuses_unknown_fields_and_bad_time_zones(personas):
    alice = Actor.for_user(personas.alice)
    with pytest.raises(actions.ActionError, match="slug"):
        actions.do_update_workspace(personas.acme, {"slug": "x"}, actor=alice)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="Mars/Olympus"):
        actions.do_update_workspace(personas.acme, {"timezone": "Mars/Olympus"}, actor=alice)
    assert Workspace.objects.get(pk=personas.acme.pk).timezone == "UTC"


@pytest.mark.parametrize("slug", ["help", "switch"])
def test_it_refuses_a_workspace_address_the_app_uses_for_its_own_pages(db, slug):
    with pytest.raises(actions.ActionError, match="is a page of the app") as refused:
        actions.do_create_workspace(name="Help", slug=slug, owner=None, actor=Actor.system())
    assert refused.value.field == "slug"
    assert not Workspace.objects.exists()
