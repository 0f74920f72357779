from unittest import mock

import pytest
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tasks_db.models import DBTaskResult

from mailmarketer.accounts.models import AuditEvent, User
from mailmarketer.lib import outbox
from mailmarketer.lib.worker import run_task_one

from .auth_helpers import (
    NEW_PASSWORD,
    PASSWORD,
    failures,
    give_password,
    link_in,
    only_mail_to,
    sign_in,
    signed_in_as,
)


@pytest.fixture(autouse=True)
def _mail_to_the_outbox(settings):
    # The test runner swaps in Django's in-memory mail backend; these tests read the outbox
    # that the product writes to when no relay is configured.
    settings.EMAIL_BACKEND = "mailmarketer.lib.outbox.OutboxBackend"


@pytest.fixture
def alice(personas):
    return give_password(personas.alice)


def two_sessions(user):
    first, second = Client(), Client()
    for client in (first, second):
        assert sign_in(client, user.email).status_code == 302
    return first, second


# -- changing the password -----------------------------------------------------------------


def change(client, current=PASSWORD, new=NEW_PASSWORD, again=None):
    return client.post(
        "/account/password/",
        {"current_password": current, "password1": new, "password2": again or new},
    )


def test_it_changes_the_password_and_ends_only_the_other_sessions(alice):
    first, second = two_sessions(alice)
    response = change(first)
    assert response["Location"] == "/account/"
    assert signed_in_as(first) == "alice@acme.test"
    assert signed_in_as(second) is None
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert alice.password.startswith("argon2")
    assert AuditEvent.objects.filter(event="auth.password_changed", actor_user_id=alice.pk).exists()
    assert sign_in(Client(), "alice@acme.test", NEW_PASSWORD).status_code == 302


def test_it_refuses_a_wrong_current_password(alice):
    first, second = two_sessions(alice)
    response = change(first, current="not it")
    assert response.status_code == 200
    html = response.content.decode()
    assert "not your current password" in html
    assert 'aria-describedby="id_current_password_error"' in html
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)
    assert signed_in_as(second) == "alice@acme.test"
    assert failures("bad_password")


def test_it_applies_the_password_validators(alice):
    first, _ = two_sessions(alice)
    for new, expected in (
        ("short", "too short"),
        ("1234567890123", "entirely numeric"),
        ("password1234", "too common"),
        ("alice@acme.test", "too similar"),
    ):
        response = change(first, new=new)
        assert expected in response.content.decode(), new
    mismatch = change(first, again="something else entirely 7")
    assert "two passwords differ" in mismatch.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_it_throttles_guessing_the_current_password(alice, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    first, _ = two_sessions(alice)
    change(first, current="guess 1")
    change(first, current="guess 2")
    with mock.patch.object(User, "check_password") as check:
        response = change(first)
    check.assert_not_called()
    assert response.status_code == 429


# -- password reset ------------------------------------------------------------------------


def request_reset(client, email):
    """Ask for a reset, then let the worker send what the request queued."""
    response = client.post("/password-reset/", {"email": email})
    while run_task_one():
        pass
    return response


class SlowRelay:
    """An email backend that records every call; a real relay here took 400 ms per message."""

    calls: list = []

    def __init__(self, **kwargs):
        pass

    def send_messages(self, messages):
        SlowRelay.calls.extend(m.to for m in messages)
        return len(messages)


def test_it_answers_a_reset_request_without_waiting_for_the_relay(alice, settings):
    # The time of the answer told whether a staff account exists (issue 9, F6): no request
    # talks to the relay; both answers are the same page, and the mail goes out from the worker.
    settings.EMAIL_BACKEND = f"{__name__}.SlowRelay"
    SlowRelay.calls = []
    known = Client().post("/password-reset/", {"email": "alice@acme.test"})
    unknown = Client().post("/password-reset/", {"email": "nobody@acme.test"})
    assert SlowRelay.calls == []
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/password-reset/sent/"
    assert DBTaskResult.objects.count() == 2  # one job each: the same work for both
    while run_task_one():
        pass
    assert SlowRelay.calls == [["alice@acme.test"]]


def test_it_mails_a_reset_link_through_the_outbox(client, alice):
    response = request_reset(client, "Alice@Acme.test")
    assert response["Location"] == "/password-reset/sent/"
    message = only_mail_to("alice@acme.test")
    assert "new password" in message["Subject"]
    assert message["Message-ID"].endswith("@testserver>")
    path = link_in(message)
    assert path.startswith("/password-reset/")


def test_it_says_the_same_whether_or_not_the_address_has_an_account(alice):
    known, unknown = Client(), Client()
    a = request_reset(known, "alice@acme.test")
    b = request_reset(unknown, "nobody@acme.test")
    assert a["Location"] == b["Location"] == "/password-reset/sent/"
    assert known.get(a["Location"]).content == unknown.get(b["Location"]).content
    entries, total = outbox.list_messages()
    assert total == 1
    assert entries[0].to == "alice@acme.test"


def test_it_stops_mailing_resets_to_one_address_past_the_limit(client, alice, settings):
    settings.PASSWORD_RESET_LIMIT = 2
    for _ in range(4):
        assert request_reset(client, "alice@acme.test")["Location"] == "/password-reset/sent/"
    assert outbox.list_messages()[1] == 2
    assert AuditEvent.objects.filter(event="auth.password_reset_requested").count() == 4


def test_it_mails_no_link_to_a_deactivated_account(client, alice):
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert request_reset(client, "alice@acme.test")["Location"] == "/password-reset/sent/"
    assert outbox.list_messages()[1] == 0


def test_it_shows_the_same_page_when_the_mail_cannot_be_sent(client, alice):
    with mock.patch("mailmarketer.lib.emails.send", side_effect=OSError("relay down")):
        response = request_reset(client, "alice@acme.test")
    assert response["Location"] == "/password-reset/sent/"


def test_it_sets_a_new_password_with_the_link_and_ends_every_session(alice):
    first, second = two_sessions(alice)
    visitor = Client()
    request_reset(visitor, "alice@acme.test")
    link = link_in(only_mail_to("alice@acme.test"))
    opened = visitor.get(link)
    # The token leaves the URL for the session, so no Referer or history can carry it on.
    assert opened.status_code == 302
    assert opened["Location"].endswith("/set-password/")
    form = visitor.get(opened["Location"])
    assert "Choose a new password" in form.content.decode()
    done = visitor.post(opened["Location"], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done["Location"] == "/login/"
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert signed_in_as(first) is None
    assert signed_in_as(second) is None
    row = AuditEvent.objects.get(event="auth.password_reset")
    assert row.actor_user_id == alice.pk
    assert sign_in(Client(), "alice@acme.test", NEW_PASSWORD).status_code == 302


def test_it_accepts_a_reset_link_once(alice):
    visitor = Client()
    request_reset(visitor, "alice@acme.test")
    link = link_in(only_mail_to("alice@acme.test"))
    step = visitor.get(link)["Location"]
    visitor.post(step, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    again = Client().get(link)
    assert again.status_code == 410
    assert "no longer works" in again.content.decode()
    # Nor can the same browser post to the second step again.
    replay = visitor.post(step, {"password1": "yet another passphrase 9", "password2": "x"})
    assert replay.status_code == 410
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


def test_it_refuses_a_tampered_or_foreign_link(alice, personas):
    visitor = Client()
    request_reset(visitor, "alice@acme.test")
    link = link_in(only_mail_to("alice@acme.test"))
    _, _, uid, token, _ = link.split("/")
    assert visitor.get(f"/password-reset/{uid}/{token[:-2]}xx/").status_code == 410
    bob_uid = urlsafe_base64_encode(force_bytes(personas.bob.pk))
    assert visitor.get(f"/password-reset/{bob_uid}/{token}/").status_code == 410
    assert visitor.get("/password-reset/!!!/set-password/").status_code == 410


def test_it_refuses_the_second_step_without_a_token_in_the_session(alice):
    uid = urlsafe_base64_encode(force_bytes(alice.pk))
    response = Client().post(
        f"/password-reset/{uid}/set-password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 410
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_it_checks_the_new_password_on_reset(alice):
    visitor = Client()
    request_reset(visitor, "alice@acme.test")
    step = visitor.get(link_in(only_mail_to("alice@acme.test")))["Location"]
    response = visitor.post(step, {"password1": "short", "password2": "short"})
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)
