"""Two-factor recovery codes (issue 12): ten single-use codes at set-up, shown once, stored
hashed, each use audited; they stand in for the app's code at sign-in and nowhere else."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from mailmarketer.accounts import actions
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent, RecoveryCode, TotpDevice

from .auth_helpers import PASSWORD, code, confirmed_device, failures, give_password, sign_in

CODE_SHAPE = re.compile(r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>")


@pytest.fixture
def alice(personas):
    return give_password(personas.alice)


@pytest.fixture
def codes(alice):
    confirmed_device(alice)
    return actions.do_make_recovery_codes(alice, actor=Actor.system("test"))


def _set_up(client, user) -> list[str]:
    client.force_login(user)
    client.get("/account/2fa/")
    pending = TotpDevice.objects.get(user=user)
    response = client.post("/account/2fa/", {"code": code(pending)})
    assert response["Location"] == "/account/2fa/recovery-codes/"
    return CODE_SHAPE.findall(client.get(response["Location"]).content.decode())


def test_it_shows_ten_codes_once_after_set_up_and_stores_only_hashes(alice):
    client = Client()
    shown = _set_up(client, alice)
    assert len(shown) == len(set(shown)) == 10
    again = client.get("/account/2fa/recovery-codes/").content.decode()
    assert not CODE_SHAPE.findall(again)
    assert "10</strong> unused recovery codes" in again
    stored = list(RecoveryCode.objects.filter(user=alice).values_list("code_hash", flat=True))
    assert len(stored) == 10
    assert not any(c.replace("-", "") in h or c in h for c in shown for h in stored)
    assert AuditEvent.objects.filter(event="auth.recovery_codes_made").count() == 1


def test_it_signs_in_with_a_recovery_code_once(alice, codes):
    client = Client()
    assert sign_in(client, "alice@acme.test")["Location"] == "/login/2fa/"
    response = client.post("/login/2fa/", {"code": codes[3].upper().replace("-", " ")})
    assert response.status_code == 302 and response["Location"] != "/login/2fa/"
    assert DEVICE_ID_SESSION_KEY in client.session
    (used,) = AuditEvent.objects.filter(event="auth.recovery_code_used")
    assert used.new == {"left": 9}
    assert AuditEvent.objects.filter(event="auth.login", new__method="password+recovery_code")

    again = Client()
    sign_in(again, "alice@acme.test")
    refused = again.post("/login/2fa/", {"code": codes[3]})
    assert refused.status_code == 200
    assert "each code works once" in refused.content.decode()
    assert DEVICE_ID_SESSION_KEY not in again.session
    assert failures("bad_2fa_code")


def test_it_refuses_another_persons_code(alice, codes, personas):
    bob = give_password(personas.bob)
    confirmed_device(bob)
    client = Client()
    sign_in(client, "bob@acme.test", PASSWORD)
    refused = client.post("/login/2fa/", {"code": codes[0]})
    assert refused.status_code == 200 and DEVICE_ID_SESSION_KEY not in client.session
    assert RecoveryCode.objects.filter(used_at__isnull=False).count() == 0


def test_it_does_not_take_a_recovery_code_when_setting_an_app_up(alice):
    client = Client()
    client.force_login(alice)
    client.get("/account/2fa/")
    page = client.post("/account/2fa/", {"code": "abcde-fghjk"})
    assert "Enter the 6 digits" in page.content.decode()
    assert not TotpDevice.objects.filter(confirmed=True).exists()


def test_making_new_codes_replaces_the_old_and_needs_the_second_factor(alice, codes):
    client = Client()
    client.force_login(alice)  # password only: this session has not used the second factor
    response = client.post("/account/2fa/recovery-codes/")
    assert response["Location"].startswith("/account/2fa/?next=")
    assert AuditEvent.objects.filter(event="auth.recovery_codes_made").count() == 1

    verified = Client()
    sign_in(verified, "alice@acme.test")
    verified.post("/login/2fa/", {"code": codes[0]})
    made = verified.post("/account/2fa/recovery-codes/")
    fresh = CODE_SHAPE.findall(verified.get(made["Location"]).content.decode())
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    assert not actions.do_use_recovery_code(alice, codes[1], actor=Actor.system("test"))
    assert actions.do_use_recovery_code(alice, fresh[0], actor=Actor.system("test"))


def test_turning_two_factor_off_deletes_the_codes(alice, codes):
    client = Client()
    client.force_login(alice)
    client.post("/account/2fa/disable/", {"password": PASSWORD})
    assert not RecoveryCode.objects.exists()


@pytest.mark.parametrize("entered", ["", "abcde", "abcde-fghj0", "ab'de-fghjk", "x" * 500])
def test_it_refuses_anything_not_shaped_like_a_code(alice, codes, entered):
    assert not actions.do_use_recovery_code(alice, entered, actor=Actor.system("test"))
    assert not RecoveryCode.objects.filter(used_at__isnull=False).exists()
