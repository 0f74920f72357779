"""Helpers shared by the sign-in tests (test_auth_*.py)."""

from __future__ import annotations

import re
import secrets

from django_otp.oath import TOTP

from mailmarketer.accounts.models import AuditEvent, TotpDevice
from mailmarketer.lib import outbox

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a quite different passphrase 42"


def give_password(user, password: str = PASSWORD):
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


def code(device: TotpDevice, steps: int = 0) -> str:
    """The code the authenticator app shows now (or `steps` time steps away)."""
    return f"{TOTP(device.bin_key, device.step, 0, device.digits, steps).token():06d}"


def wrong_code(device: TotpDevice) -> str:
    """A code that matches none of the steps the device accepts right now."""
    accepted = {code(device, steps) for steps in (-2, -1, 0, 1, 2)}
    candidate = int(code(device))
    while f"{candidate:06d}" in accepted:
        candidate = (candidate + 1) % 1_000_000
    return f"{candidate:06d}"


def confirmed_device(user) -> TotpDevice:
    return TotpDevice.objects.create(
        user=user, name="Authenticator app", key=secrets.token_hex(20), confirmed=True
    )


def sign_in(client, email: str, password: str = PASSWORD, **extra):
    return client.post("/login/", {"email": email, "password": password, **extra})


def signed_in_as(client):
    """The email of the user the client's session belongs to, or None (via the account page)."""
    response = client.get("/account/")
    if response.status_code != 200:
        return None
    return response.context["user"].email


def failures(reason: str | None = None):
    rows = AuditEvent.objects.filter(event="auth.login_failed")
    return [r for r in rows if reason is None or r.new.get("reason") == reason]


def only_mail_to(address: str):
    entries, total = outbox.list_messages()
    assert total == 1, f"expected one message in the outbox, found {total}"
    assert entries[0].to == address
    return outbox.get_message(entries[0].id)


def link_in(message, base="http://testserver") -> str:
    text, html = outbox.message_parts(message)
    match = re.search(re.escape(base) + r"(/\S+)", text)
    assert match, f"no link to {base} in:\n{text}"
    assert match.group(0) in html
    return match.group(1)
