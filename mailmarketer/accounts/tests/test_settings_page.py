"""The workspace settings page: readable with settings.view, saved with settings.manage, each
change audited with its old and new values."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from mailmarketer.accounts.actions import WORKSPACE_EDITABLE
from mailmarketer.accounts.forms_team import WorkspaceSettingsForm
from mailmarketer.accounts.models import AuditEvent, Workspace

SETTINGS = reverse("settings-workspace", kwargs={"ws": "acme"})
SAVE = reverse("settings-workspace-save", kwargs={"ws": "acme"})


def valid(**changes):
    data = {
        "name": "Acme",
        "sender_name": "Acme",
        "sender_email": "news@acme.test",
        "postal_address": "1 Main Street\nSpringfield",
        "timezone": "Europe/Berlin",
        "consent_store_ip": "on",
        "tracking_mode": "identified",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def acme():
    return Workspace.objects.get(slug="acme")


def test_it_edits_every_editable_field_and_no_other():
    assert set(WorkspaceSettingsForm.base_fields) == set(WORKSPACE_EDITABLE)


def test_it_shows_the_form_with_the_current_values(alice_client):
    response = alice_client.get(SETTINGS)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'action="/app/acme/settings/save/"' in html
    assert 'name="name" value="Acme"' in html
    assert 'name="sender_email" value="news@acme.test"' in html
    # The time zone: a text box with the zones as suggestions (a datalist: no script needed).
    box = re.search(r'<input type="text" name="timezone"[^>]*>', html).group(0)
    assert 'value="UTC"' in box and 'list="id_timezone_zones"' in box
    zones = re.search(r'<datalist id="id_timezone_zones">.*?</datalist>', html, re.S).group(0)
    options = re.findall(r'<option value="([^"]+)"', zones)
    assert options == sorted(options)
    assert "Europe/Berlin" in options
    assert "localtime" not in options
    assert len(options) > 400
    assert "Marketing mail must carry your postal address" in html
    assert "Members whose role can see personal data must use two-factor authentication" in html
    assert "Keep the IP address and browser of people giving consent" in html
    # every control has a label, and its help is linked to it
    for name in WORKSPACE_EDITABLE:
        assert f'<label for="id_{name}">' in html
    textarea = re.search(r"<textarea[^>]*>", html).group(0)
    assert 'aria-describedby="id_postal_address_helptext"' in textarea


def test_it_saves_the_settings_and_audits_old_and_new_values(alice_client, personas):
    response = alice_client.post(SAVE, valid(require_2fa=None, consent_store_ip=None))
    assert response.status_code == 302
    assert response["Location"] == SETTINGS
    ws = acme()
    assert ws.postal_address == "1 Main Street\nSpringfield"
    assert ws.timezone == "Europe/Berlin"
    assert ws.consent_store_ip is False
    event = AuditEvent.objects.get(event="workspace.updated")
    assert event.workspace == personas.acme
    assert event.actor_user == personas.alice
    assert event.old == {"postal_address": "", "timezone": "UTC", "consent_store_ip": True}
    assert event.new == {
        "postal_address": "1 Main Street\nSpringfield",
        "timezone": "Europe/Berlin",
        "consent_store_ip": False,
    }
    assert b"Workspace settings saved." in alice_client.get(SETTINGS).content


def test_it_writes_no_audit_row_when_nothing_changed(alice_client):
    unchanged = valid(postal_address="", timezone="UTC")
    assert alice_client.post(SAVE, unchanged).status_code == 302
    assert not AuditEvent.objects.filter(event="workspace.updated").exists()


def test_it_shows_validation_errors_on_the_fields(alice_client):
    response = alice_client.post(
        SAVE, valid(name="  ", sender_email="not-an-address", timezone="Mars/Olympus_Mons")
    )
    assert response.status_code == 400
    html = response.content.decode()
    for name in ("name", "sender_email"):
        control = re.search(rf'<input[^>]*name="{name}"[^>]*>', html).group(0)
        assert 'aria-invalid="true"' in control
        assert f"id_{name}_error" in control
        assert f'id="id_{name}_error"' in html
    box = re.search(r'<input type="text" name="timezone"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in box
    assert 'value="Mars/Olympus_Mons"' in box  # kept, to be corrected
    assert "Mars/Olympus_Mons is not one of the available time zones" in html
    assert "Enter a valid email address." in html
    assert "This field is required." in html
    assert acme().sender_email == "news@acme.test"
    assert not AuditEvent.objects.filter(event="workspace.updated").exists()


def test_it_shows_a_read_only_view_to_a_marketer(bob_client, personas):
    personas.acme.postal_address = "<script>alert(1)</script>\nSpringfield"
    personas.acme.save()
    response = bob_client.get(SETTINGS)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<form method="post" action="/app/acme/settings/save/"' not in html
    assert "news@acme.test" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;<br>Springfield" in html
    assert "<script>alert" not in html
    assert "settings.manage" in html


def test_it_forbids_saving_to_a_marketer(bob_client):
    response = bob_client.post(SAVE, valid(name="Bob's workspace"))
    assert response.status_code == 403
    assert acme().name == "Acme"
    assert not AuditEvent.objects.exists()


def test_it_forbids_the_page_to_an_analyst(carol_client):
    response = carol_client.get(SETTINGS)
    assert response.status_code == 403
    assert b"news@acme.test" not in response.content
    assert carol_client.post(SAVE, valid(name="Carol's")).status_code == 403
    assert acme().name == "Acme"


def test_it_hides_another_workspaces_settings(mallory_client):
    response = mallory_client.get(SETTINGS)
    assert response.status_code == 404
    assert b"news@acme.test" not in response.content
    assert mallory_client.post(SAVE, valid(name="Pwned")).status_code == 404
    assert acme().name == "Acme"
    own = mallory_client.get(reverse("settings-workspace", kwargs={"ws": "evil"}))
    assert own.status_code == 200
    assert b"news@acme.test" not in own.content
    assert not AuditEvent.objects.exists()


def test_it_puts_the_models_own_validation_errors_on_the_fields(alice_client, monkeypatch):
    from django.core.exceptions import ValidationError

    from mailmarketer.accounts import actions

    def refuse(workspace, changes, *, actor):
        workspace.postal_address = changes["postal_address"]  # as the action does, then refuses
        raise ValidationError({"postal_address": ["That address is not deliverable."]})

    monkeypatch.setattr(actions, "do_update_workspace", refuse)
    response = alice_client.post(SAVE, valid(postal_address="Nowhere"))
    assert response.status_code == 400
    html = response.content.decode()
    textarea = re.search(r"<textarea[^>]*>", html).group(0)
    assert 'aria-invalid="true"' in textarea
    assert (
        '<ul class="errorlist" id="id_postal_address_error"><li>That address is not deliverable.'
        in html
    )
    assert acme().postal_address == ""


def test_it_refuses_control_characters_in_the_sender_on_the_form(alice_client):
    # A sender name with CR LF would add a header to every message (issue 9, F9).
    response = alice_client.post(
        SAVE, valid(sender_name="Acme\r\nBcc: v@evil.example", postal_address="1 Main\x07St")
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_sender_name_error"' in html and 'id="id_postal_address_error"' in html
    assert "must be one line without control characters" in html
    assert acme().sender_name == "Acme"
    assert not AuditEvent.objects.filter(event="workspace.updated").exists()


def test_it_saves_the_email_tracking_settings(alice_client):
    response = alice_client.post(
        SAVE, valid(tracking_mode="anonymous", tracking_requires_consent="on")
    )
    assert response.status_code == 302
    ws = acme()
    assert (ws.tracking_mode, ws.tracking_requires_consent) == ("anonymous", True)
    event = AuditEvent.objects.get(event="workspace.updated")
    assert event.new["tracking_mode"] == "anonymous"
    refused = alice_client.post(SAVE, valid(tracking_mode="everything"))
    assert refused.status_code == 400 and acme().tracking_mode == "anonymous"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("  europe/berlin ", "Europe/Berlin"),
        ("Berlin", "Europe/Berlin"),
        ("new york", "America/New_York"),
    ],
)
def test_it_takes_a_time_zone_as_people_type_it(alice_client, typed, stored):
    assert alice_client.post(SAVE, valid(timezone=typed)).status_code == 302
    assert acme().timezone == stored


def test_it_asks_which_zone_when_a_place_names_several(alice_client):
    response = alice_client.post(SAVE, valid(timezone="Istanbul"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "Istanbul is the name of several time zones: choose one of" in html
    assert "Europe/Istanbul" in html and "Asia/Istanbul" in html
    assert acme().timezone == "UTC"
