import base64

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from mailmarketer.accounts.models import AuditEvent, TotpDevice, Workspace
from mailmarketer.accounts.views_auth import PENDING_KEY

from .auth_helpers import (
    PASSWORD,
    code,
    confirmed_device,
    failures,
    give_password,
    sign_in,
    signed_in_as,
    wrong_code,
)


@pytest.fixture
def alice(personas):
    return give_password(personas.alice)


@pytest.fixture
def alice_client(alice):
    # Signed in after the password is set: setting it ends earlier sessions.
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def device(alice):
    return confirmed_device(alice)


def is_verified(client) -> bool:
    return DEVICE_ID_SESSION_KEY in client.session


def require_2fa(workspace):
    Workspace.objects.filter(pk=workspace.pk).update(require_2fa=True)


# -- the code step of sign-in --------------------------------------------------------------


def test_it_asks_for_a_code_instead_of_signing_in(client, device):
    response = sign_in(client, "alice@acme.test", next="/app/acme/")
    assert response["Location"] == "/login/2fa/"
    assert signed_in_as(client) is None
    page = client.get("/login/2fa/")
    assert page.status_code == 200
    assert 'autocomplete="one-time-code"' in page.content.decode()


def test_it_signs_in_with_the_current_code(client, device):
    sign_in(client, "alice@acme.test", next="/app/acme/")
    response = client.post("/login/2fa/", {"code": code(device)})
    assert response["Location"] == "/app/acme/"
    assert signed_in_as(client) == "alice@acme.test"
    assert is_verified(client)
    assert PENDING_KEY not in client.session
    assert AuditEvent.objects.get(event="auth.login").new == {"method": "password+totp"}


def test_it_rejects_a_wrong_code(client, device):
    sign_in(client, "alice@acme.test")
    response = client.post("/login/2fa/", {"code": wrong_code(device)})
    assert response.status_code == 200
    assert "not right" in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()
    assert signed_in_as(client) is None
    assert len(failures("bad_2fa_code")) == 1


def test_it_rejects_a_replayed_code(device):
    first, second = Client(), Client()
    used = code(device)
    sign_in(first, "alice@acme.test")
    assert first.post("/login/2fa/", {"code": used})["Location"] == "/app/"
    sign_in(second, "alice@acme.test")
    response = second.post("/login/2fa/", {"code": used})
    assert response.status_code == 200
    assert "used already" in response.content.decode()
    assert signed_in_as(second) is None
    assert failures("bad_2fa_code")


def test_it_accepts_the_next_code_after_one_was_used(device):
    first, second = Client(), Client()
    sign_in(first, "alice@acme.test")
    first.post("/login/2fa/", {"code": code(device)})
    sign_in(second, "alice@acme.test")
    assert second.post("/login/2fa/", {"code": code(device, 1)})["Location"] == "/app/"


def test_it_rejects_letters_before_checking_the_device(client, device):
    sign_in(client, "alice@acme.test")
    response = client.post("/login/2fa/", {"code": "12ab56"})
    assert "6 digits" in response.content.decode()
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


def test_it_slows_down_guessing_on_the_device(client, device):
    sign_in(client, "alice@acme.test")
    client.post("/login/2fa/", {"code": wrong_code(device)})
    # Right away, even the right code is refused: the device waits after each wrong one.
    response = client.post("/login/2fa/", {"code": code(device)})
    assert "Too many wrong codes" in response.content.decode()
    assert signed_in_as(client) is None


def test_it_counts_wrong_codes_towards_the_sign_in_throttle(client, device, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    sign_in(client, "alice@acme.test", "wrong")
    sign_in(client, "alice@acme.test")
    client.post("/login/2fa/", {"code": wrong_code(device)})  # second failure
    response = client.post("/login/2fa/", {"code": code(device)})
    assert response.status_code == 429
    assert signed_in_as(client) is None


def test_it_forgets_the_password_step_after_five_minutes(client, device):
    sign_in(client, "alice@acme.test")
    session = client.session
    session[PENDING_KEY] = {**session[PENDING_KEY], "at": session[PENDING_KEY]["at"] - 301}
    session.save()
    response = client.post("/login/2fa/", {"code": code(device)}, follow=True)
    assert response.redirect_chain[0] == ("/login/", 302)
    assert "more than 5 minutes" in response.content.decode()
    assert signed_in_as(client) is None
    assert PENDING_KEY not in client.session


def test_it_sends_the_code_page_without_a_password_step_to_login(client, device):
    assert client.get("/login/2fa/")["Location"] == "/login/"
    assert client.post("/login/2fa/", {"code": code(device)})["Location"] == "/login/"
    assert signed_in_as(client) is None


def test_it_keeps_next_safe_through_the_code_step(client, device):
    sign_in(client, "alice@acme.test", next="https://evil.test/")
    assert client.post("/login/2fa/", {"code": code(device)})["Location"] == "/app/"


# -- setting up and turning off on the account page ----------------------------------------


def test_it_shows_the_state_of_two_factor_on_the_account_page(alice_client, alice):
    assert "Off." in alice_client.get("/account/").content.decode()
    confirmed_device(alice)
    assert "On." in alice_client.get("/account/").content.decode()


def test_it_sends_anonymous_visitors_of_account_pages_to_login(client, db):
    for path in ("/account/", "/account/2fa/", "/account/2fa/disable/", "/account/password/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/login/?next="), path
    assert not TotpDevice.objects.exists()


def test_it_shows_a_qr_code_and_the_secret_for_set_up(alice_client, alice):
    html = alice_client.get("/account/2fa/").content.decode()
    pending = TotpDevice.objects.get(user=alice)
    assert not pending.confirmed
    assert '<svg role="img"' in html
    assert "<title>QR code for your authenticator app</title>" in html
    secret = base64.b32encode(pending.bin_key).decode().rstrip("=")
    assert secret[:4] + " " + secret[4:8] in html
    # A reload shows the same secret (the app may have scanned it already).
    alice_client.get("/account/2fa/")
    assert list(TotpDevice.objects.filter(user=alice)) == [pending]


def test_it_turns_two_factor_on_and_ends_other_sessions(alice, personas):
    this, other = Client(), Client()
    this.force_login(alice)
    other.force_login(alice)
    this.get("/account/2fa/")
    pending = TotpDevice.objects.get(user=alice)
    response = this.post("/account/2fa/", {"code": code(pending)})
    assert response["Location"] == "/account/2fa/recovery-codes/"  # shown once, then the account
    pending.refresh_from_db()
    assert pending.confirmed
    assert signed_in_as(this) == "alice@acme.test"
    assert is_verified(this)
    assert signed_in_as(other) is None
    assert AuditEvent.objects.filter(event="auth.2fa_enabled", actor_user_id=alice.pk).exists()
    # From now on the password alone does not sign in.
    fresh = Client()
    assert sign_in(fresh, "alice@acme.test")["Location"] == "/login/2fa/"


def test_it_keeps_two_factor_off_after_a_wrong_set_up_code(alice_client, alice):
    alice_client.get("/account/2fa/")
    pending = TotpDevice.objects.get(user=alice)
    response = alice_client.post("/account/2fa/", {"code": wrong_code(pending)})
    assert response.status_code == 200
    assert "not right" in response.content.decode()
    pending.refresh_from_db()
    assert not pending.confirmed
    assert not AuditEvent.objects.filter(event="auth.2fa_enabled").exists()


def test_it_turns_two_factor_off_with_the_current_password(alice, device):
    this, other = Client(), Client()
    for client in (this, other):
        sign_in(client, "alice@acme.test")
        client.post("/login/2fa/", {"code": code(device, 0 if client is this else 1)})
    assert signed_in_as(other) == "alice@acme.test"
    response = this.post("/account/2fa/disable/", {"password": PASSWORD})
    assert response["Location"] == "/account/"
    assert not TotpDevice.objects.filter(user=alice).exists()
    assert signed_in_as(this) == "alice@acme.test"
    assert not is_verified(this)
    assert signed_in_as(other) is None
    assert AuditEvent.objects.filter(event="auth.2fa_disabled").exists()


def test_it_keeps_two_factor_on_without_the_right_password(alice_client, device):
    response = alice_client.post("/account/2fa/disable/", {"password": "not it"})
    assert response.status_code == 200
    assert "not your current password" in response.content.decode()
    assert TotpDevice.objects.filter(pk=device.pk).exists()
    assert failures("bad_password")


def test_it_warns_that_a_workspace_requires_two_factor_before_turning_it_off(
    alice_client, device, personas
):
    require_2fa(personas.acme)
    html = alice_client.get("/account/2fa/disable/").content.decode()
    assert "Acme requires two-factor authentication" in html


# -- workspaces that require two-factor ----------------------------------------------------


def test_it_sets_up_two_factor_when_a_workspace_requires_it(alice_client, alice, personas):
    require_2fa(personas.acme)
    response = alice_client.get("/app/acme/")
    assert response.status_code == 302
    assert response["Location"] == "/account/2fa/?next=%2Fapp%2Facme%2F&required=acme"
    page = alice_client.get(response["Location"])
    html = page.content.decode()
    assert "Acme requires two-factor authentication for your role" in html
    assert 'name="next" value="/app/acme/"' in html
    pending = TotpDevice.objects.get(user=alice)
    done = alice_client.post(
        "/account/2fa/", {"code": code(pending), "next": "/app/acme/", "required": "acme"}
    )
    # The recovery codes are shown once first; their page leads on to where the person was going.
    assert done["Location"] == "/account/2fa/recovery-codes/?next=%2Fapp%2Facme%2F"
    assert 'href="/app/acme/"' in alice_client.get(done["Location"]).content.decode()
    assert alice_client.get("/app/acme/").status_code == 200


def test_it_asks_an_unverified_session_for_a_code_when_a_workspace_requires_it(
    alice_client, device, personas
):
    require_2fa(personas.acme)
    location = alice_client.get("/app/acme/")["Location"]
    page = alice_client.get(location)
    assert "this session has not used it yet" in page.content.decode()
    wrong = alice_client.post("/account/2fa/", {"code": wrong_code(device), "next": "/app/acme/"})
    assert wrong.status_code == 200
    assert alice_client.get("/app/acme/").status_code == 302
    device.refresh_from_db()
    device.throttling_failure_timestamp = None  # the wait after a wrong code has passed
    device.save()
    done = alice_client.post("/account/2fa/", {"code": code(device), "next": "/app/acme/"})
    assert done["Location"] == "/app/acme/"
    assert alice_client.get("/app/acme/").status_code == 200


def test_it_does_not_name_a_workspace_the_user_is_not_in(alice_client, personas):
    html = alice_client.get("/account/2fa/?required=evil").content.decode()
    assert "Evil" not in html
    assert "requires two-factor" not in html


def test_it_sends_a_verified_session_straight_on(alice, device):
    client = Client()
    sign_in(client, "alice@acme.test")
    client.post("/login/2fa/", {"code": code(device)})
    response = client.get("/account/2fa/?next=/app/acme/")
    assert response["Location"] == "/app/acme/"
    assert client.get("/account/2fa/?next=https://evil.test/")["Location"] == "/account/"
