"""The team page: members, invitations, role changes and removals, each change audited."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from mailmarketer.accounts import actions
from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent, Invitation, Membership
from mailmarketer.accounts.permissions import Role
from mailmarketer.lib import outbox
from mailmarketer.testing import client_for, make_member, make_user


def team_url(ws="acme"):
    return reverse("team", kwargs={"ws": ws})


def member(ws, user):
    return Membership.objects.get(workspace=ws, user=user)


def role_url(m, ws="acme"):
    return reverse("team-role", kwargs={"ws": ws, "membership_id": m.pk})


def remove_url(m, ws="acme"):
    return reverse("team-remove", kwargs={"ws": ws, "membership_id": m.pk})


def revoke_url(inv, ws="acme"):
    return reverse("team-invitation-revoke", kwargs={"ws": ws, "invitation_id": inv.pk})


def invite(personas, email="dave@acme.test", role=Role.MARKETER):
    return actions.do_invite_member(
        personas.acme, email=email, role=role, actor=Actor.for_user(personas.alice)
    )


@pytest.fixture(autouse=True)
def _mail_to_the_outbox(settings):
    # The test runner swaps in Django's in-memory mail backend; these tests read the outbox,
    # the way a person running the product without SMTP would.
    settings.EMAIL_BACKEND = "mailmarketer.lib.outbox.OutboxBackend"


@pytest.fixture
def admin_client(personas):
    """dave, an admin of acme: manages the team but is not an owner."""
    dave = make_user("dave@acme.test", "Dave")
    make_member(personas.acme, dave, Role.ADMIN)
    return client_for(dave)


# -- the page ------------------------------------------------------------------------------------


def test_it_lists_members_with_roles_and_join_dates(alice_client, personas):
    personas.acme.timezone = "UTC"
    response = alice_client.get(team_url())
    assert response.status_code == 200
    html = response.content.decode()
    for email in ("alice@acme.test", "bob@acme.test", "carol@acme.test"):
        assert email in html
    assert "mallory@evil.test" not in html
    joined = member(personas.acme, personas.bob).created_at.strftime("%Y-%m-%d")
    assert joined in html
    # bob's role select has marketer selected
    bob = member(personas.acme, personas.bob)
    select = re.search(rf'<select id="role-{bob.pk}".*?</select>', html, re.S).group(0)
    assert '<option value="marketer" selected>' in select
    assert f'<label for="role-{bob.pk}"' in html
    assert 'action="/app/acme/team/invite/"' in html


def test_it_shows_the_team_read_only_to_an_analyst(carol_client):
    response = carol_client.get(team_url())
    assert response.status_code == 200
    html = response.content.decode()
    assert "bob@acme.test" in html
    assert "team/invite/" not in html
    assert "/role/" not in html
    assert "/remove/" not in html


def test_it_forbids_the_page_to_a_role_without_team_view(carol_client, monkeypatch):
    # Every role may see the team today; the page still names its permission and enforces it.
    monkeypatch.setitem(p.ROLE_PERMISSIONS, Role.ANALYST, frozenset({p.WORKSPACE_VIEW}))
    response = carol_client.get(team_url())
    assert response.status_code == 403
    assert b"bob@acme.test" not in response.content


def test_it_hides_another_workspaces_team(mallory_client):
    response = mallory_client.get(team_url())
    assert response.status_code == 404
    assert b"alice@acme.test" not in response.content
    own = mallory_client.get(team_url("evil"))
    assert own.status_code == 200
    assert b"mallory@evil.test" in own.content
    assert b"alice@acme.test" not in own.content


# -- invitations ---------------------------------------------------------------------------------


def test_it_invites_a_member_and_mails_the_link(
    alice_client, personas, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            reverse("team-invite", kwargs={"ws": "acme"}),
            {"invite-email": "Dave@Acme.test", "invite-role": "analyst"},
        )
    assert response.status_code == 302
    invitation = Invitation.objects.get(workspace=personas.acme, email="dave@acme.test")
    assert invitation.role == Role.ANALYST
    assert invitation.invited_by == personas.alice
    event = AuditEvent.objects.get(event="member.invited")
    assert event.workspace == personas.acme
    assert event.actor_user == personas.alice
    assert event.object_repr == "dave@acme.test"

    entries, total = outbox.list_messages()
    assert total == 1
    assert entries[0].to == "dave@acme.test"
    assert entries[0].subject == "Alice invited you to Acme on Mail Marketer"
    text, html = outbox.message_parts(outbox.get_message(entries[0].id))
    link = f"http://testserver/invite/{actions.invitation_token(invitation)}/"
    assert link in text
    assert f'href="{link}"' in html
    assert "as analyst" in text

    page = alice_client.get(team_url())
    assert b"dave@acme.test" in page.content
    assert b"Invitation sent to dave@acme.test." in page.content


def test_it_escapes_the_workspace_name_in_the_html_mail_only(
    alice_client, personas, django_capture_on_commit_callbacks
):
    personas.acme.name = "Tom & <b>Jerry</b>"
    personas.acme.save()
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(
            reverse("team-invite", kwargs={"ws": "acme"}),
            {"invite-email": "dave@acme.test", "invite-role": "marketer"},
        )
    entries, _ = outbox.list_messages()
    text, html = outbox.message_parts(outbox.get_message(entries[0].id))
    assert '"Tom & <b>Jerry</b>"' in text
    assert "Tom &amp; &lt;b&gt;Jerry&lt;/b&gt;" in html
    assert "<b>Jerry</b>" not in html
    assert entries[0].subject == "Alice invited you to Tom & <b>Jerry</b> on Mail Marketer"


def test_it_shows_a_bad_invitation_address_on_the_field(alice_client):
    response = alice_client.post(
        reverse("team-invite", kwargs={"ws": "acme"}),
        {"invite-email": "not-an-address", "invite-role": "marketer"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    field = re.search(r'<input[^>]*name="invite-email"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in field
    assert 'aria-describedby="id_invite-email_helptext id_invite-email_error"' in field
    assert 'id="id_invite-email_error"' in html
    assert "Enter a valid email address." in html
    assert not Invitation.objects.exists()


def test_it_says_when_the_invitee_is_already_a_member(alice_client):
    response = alice_client.post(
        reverse("team-invite", kwargs={"ws": "acme"}),
        {"invite-email": "bob@acme.test", "invite-role": "analyst"},
    )
    assert response.status_code == 409
    assert b"bob@acme.test is already a member of this workspace" in response.content
    assert not Invitation.objects.exists()


def test_it_forbids_inviting_to_a_marketer(bob_client):
    response = bob_client.post(
        reverse("team-invite", kwargs={"ws": "acme"}),
        {"invite-email": "eve@acme.test", "invite-role": "owner"},
    )
    assert response.status_code == 403
    assert not Invitation.objects.exists()


def test_it_does_not_offer_the_owner_role_to_an_admin(admin_client, personas):
    html = admin_client.get(team_url()).content.decode()
    invite_select = re.search(r'<select name="invite-role".*?</select>', html, re.S).group(0)
    assert 'value="owner"' not in invite_select
    assert 'value="admin"' in invite_select
    # alice is an owner: an admin gets no controls on her row
    alice = member(personas.acme, personas.alice)
    assert f'id="role-{alice.pk}"' not in html
    assert remove_url(alice) not in html

    response = admin_client.post(
        reverse("team-invite", kwargs={"ws": "acme"}),
        {"invite-email": "eve@acme.test", "invite-role": "owner"},
    )
    assert response.status_code == 400
    assert not Invitation.objects.exists()


def test_it_offers_the_owner_role_to_an_owner(alice_client):
    html = alice_client.get(team_url()).content.decode()
    invite_select = re.search(r'<select name="invite-role".*?</select>', html, re.S).group(0)
    assert 'value="owner"' in invite_select


def test_it_revokes_an_invitation(alice_client, personas):
    invitation = invite(personas)
    response = alice_client.post(revoke_url(invitation))
    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert AuditEvent.objects.filter(
        event="member.invitation_revoked", object_id=str(invitation.pk)
    ).exists()
    page = alice_client.get(team_url()).content.decode()
    assert "The invitation to dave@acme.test was revoked." in page
    assert "No open invitations." in page
    assert revoke_url(invitation) not in page


def test_it_forbids_revoking_an_invitation_to_a_marketer(bob_client, personas):
    invitation = invite(personas)
    assert bob_client.post(revoke_url(invitation)).status_code == 403
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


# -- roles and removal -----------------------------------------------------------------------


def test_it_changes_a_role_and_audits_it(alice_client, personas):
    bob = member(personas.acme, personas.bob)
    response = alice_client.post(role_url(bob), {"role": "admin"})
    assert response.status_code == 302
    assert member(personas.acme, personas.bob).role == Role.ADMIN
    event = AuditEvent.objects.get(event="member.role_changed")
    assert (event.old, event.new) == ({"role": "marketer"}, {"role": "admin"})
    assert event.actor_user == personas.alice
    assert event.workspace == personas.acme
    assert event.ip == "127.0.0.1"


def test_it_refuses_to_demote_the_last_owner(alice_client, personas):
    alice = member(personas.acme, personas.alice)
    response = alice_client.post(role_url(alice), {"role": "admin"})
    assert response.status_code == 409
    assert b"at least one owner" in response.content
    assert b'role="alert"' in response.content
    assert member(personas.acme, personas.alice).role == Role.OWNER
    assert not AuditEvent.objects.filter(event="member.role_changed").exists()


def test_it_refuses_to_remove_the_last_owner(alice_client, personas):
    response = alice_client.post(remove_url(member(personas.acme, personas.alice)))
    assert response.status_code == 409
    assert b"the last owner cannot be removed" in response.content
    assert Membership.objects.filter(workspace=personas.acme, user=personas.alice).exists()
    assert not AuditEvent.objects.filter(event="member.removed").exists()


def test_it_rejects_an_unknown_role(alice_client, personas):
    response = alice_client.post(role_url(member(personas.acme, personas.bob)), {"role": "king"})
    assert response.status_code == 400
    assert b"unknown role &#x27;king&#x27;" in response.content
    assert member(personas.acme, personas.bob).role == Role.MARKETER


def test_it_refuses_an_admin_changing_an_owner(admin_client, personas):
    alice = member(personas.acme, personas.alice)
    response = admin_client.post(role_url(alice), {"role": "marketer"})
    assert response.status_code == 403
    assert b"only an owner can grant or take away the owner role" in response.content
    assert admin_client.post(remove_url(alice)).status_code == 403
    assert member(personas.acme, personas.alice).role == Role.OWNER


def test_it_removes_a_member_and_audits_it(alice_client, personas):
    response = alice_client.post(remove_url(member(personas.acme, personas.carol)))
    assert response.status_code == 302
    assert not Membership.objects.filter(workspace=personas.acme, user=personas.carol).exists()
    event = AuditEvent.objects.get(event="member.removed")
    assert event.object_id == str(personas.carol.pk)
    assert event.old == {"role": "analyst"}
    assert b"carol@acme.test was removed" in alice_client.get(team_url()).content


def test_it_lets_a_member_leave_and_sends_them_home(admin_client, personas):
    dave = member(personas.acme, personas.acme.memberships.get(user__email="dave@acme.test").user)
    response = admin_client.post(remove_url(dave))
    assert response.status_code == 302
    assert response["Location"] == reverse("app-home")
    assert admin_client.get(team_url()).status_code == 404


def test_it_forbids_role_changes_and_removal_to_a_marketer(bob_client, personas):
    carol = member(personas.acme, personas.carol)
    assert bob_client.post(role_url(carol), {"role": "admin"}).status_code == 403
    assert bob_client.post(remove_url(carol)).status_code == 403
    assert member(personas.acme, personas.carol).role == Role.ANALYST
    assert not AuditEvent.objects.filter(event__startswith="member.").exists()


def test_it_finds_no_acme_member_or_invitation_from_another_workspace(mallory_client, personas):
    bob = member(personas.acme, personas.bob)
    invitation = invite(personas)
    # mallory owns evil: her own workspace's URLs with acme's ids find nothing
    assert mallory_client.post(role_url(bob, "evil"), {"role": "analyst"}).status_code == 404
    assert mallory_client.post(remove_url(bob, "evil")).status_code == 404
    assert mallory_client.post(revoke_url(invitation, "evil")).status_code == 404
    # and acme's URLs do not exist for her at all
    assert mallory_client.post(role_url(bob), {"role": "analyst"}).status_code == 404
    assert mallory_client.post(remove_url(bob)).status_code == 404
    assert mallory_client.post(revoke_url(invitation)).status_code == 404
    response = mallory_client.post(
        reverse("team-invite", kwargs={"ws": "acme"}),
        {"invite-email": "spy@evil.test", "invite-role": "owner"},
    )
    assert response.status_code == 404
    assert member(personas.acme, personas.bob).role == Role.MARKETER
    invitation.refresh_from_db()
    assert invitation.revoked_at is None
    assert not Invitation.objects.filter(email="spy@evil.test").exists()
    assert not AuditEvent.objects.filter(event__in=["member.role_changed", "member.removed"])
