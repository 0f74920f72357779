from unittest import mock

import pytest
from django.test import Client

from mailmarketer.accounts.models import AuditEvent, User

from .auth_helpers import PASSWORD, failures, give_password, sign_in, signed_in_as


@pytest.fixture
def alice(personas):
    return give_password(personas.alice)


def test_it_hashes_passwords_with_argon2(alice):
    alice.refresh_from_db()
    assert alice.password.startswith("argon2")


def test_it_signs_in_with_the_right_password(client, alice):
    response = sign_in(client, "alice@acme.test")
    assert response.status_code == 302
    assert response["Location"] == "/app/"
    assert signed_in_as(client) == "alice@acme.test"
    login = AuditEvent.objects.get(event="auth.login")
    assert login.actor_user_id == alice.pk
    assert login.new == {"method": "password"}


def test_it_compares_the_email_address_case_insensitively(client, alice):
    response = sign_in(client, "  Alice@ACME.test ")
    assert response.status_code == 302
    assert signed_in_as(client) == "alice@acme.test"


def test_it_rotates_the_session_on_sign_in(client, alice):
    session = client.session
    session["marker"] = "x"
    session.save()
    before = session.session_key
    sign_in(client, "alice@acme.test")
    assert client.session.session_key != before
    assert client.session.get("marker") == "x"


def test_it_refuses_a_wrong_password_with_the_generic_message(client, alice):
    response = sign_in(client, "alice@acme.test", "not the password")
    assert response.status_code == 200
    assert "do not match an account" in response.content.decode()
    assert signed_in_as(client) is None
    [row] = failures()
    assert row.new == {"reason": "bad_password"}
    assert row.object_repr == "alice@acme.test"
    assert row.ip == "127.0.0.1"


def test_it_says_the_same_for_an_unknown_address(client, alice):
    unknown = sign_in(client, "nobody@acme.test", PASSWORD).content.decode()
    wrong = sign_in(client, "alice@acme.test", "not the password").content.decode()
    assert "do not match an account" in unknown
    message = [line for line in unknown.splitlines() if "do not match" in line]
    assert message == [line for line in wrong.splitlines() if "do not match" in line]
    assert [r.new["reason"] for r in failures()] == ["bad_password", "unknown_user"]


def test_it_refuses_a_deactivated_account(client, alice):
    User.objects.filter(pk=alice.pk).update(is_active=False)
    response = sign_in(client, "alice@acme.test")
    assert "deactivated" in response.content.decode()
    assert signed_in_as(client) is None
    assert failures("inactive")


def test_it_links_form_errors_for_screen_readers(client, db):
    response = client.post("/login/", {"email": "not-an-address", "password": ""})
    html = response.content.decode()
    assert 'aria-invalid="true"' in html
    assert 'aria-describedby="id_email_error"' in html
    assert 'id="id_email_error"' in html
    assert '<label for="id_password">' in html
    assert not failures()  # an invalid form never reaches the password check


def test_it_throttles_an_address_after_the_limit_even_with_the_right_password(
    client, alice, settings
):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        assert sign_in(client, "alice@acme.test", "wrong").status_code == 200
    with mock.patch.object(User, "check_password") as check:
        response = sign_in(client, "alice@acme.test")
    check.assert_not_called()
    assert response.status_code == 429
    assert "Wait" in response.content.decode()
    assert response["Retry-After"] == str(settings.LOGIN_FAILURE_WINDOW)
    assert signed_in_as(client) is None
    # Another address from another network is not affected.
    give_password(User.objects.get(email="bob@acme.test"))
    other = Client(REMOTE_ADDR="10.9.9.9")
    assert sign_in(other, "bob@acme.test").status_code == 302


def test_it_throttles_an_ip_address_across_many_accounts(alice, settings):
    settings.LOGIN_FAILURE_IP_LIMIT = 4
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(4):
        sign_in(attacker, f"guess{n}@acme.test", "password123")
    assert sign_in(attacker, "alice@acme.test").status_code == 429
    # The same account from a different address still signs in.
    assert sign_in(Client(REMOTE_ADDR="198.51.100.1"), "alice@acme.test").status_code == 302


def test_it_forgets_failures_outside_the_window(client, alice, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    for _ in range(2):
        sign_in(client, "alice@acme.test", "wrong")
    assert sign_in(client, "alice@acme.test").status_code == 429
    settings.LOGIN_FAILURE_WINDOW = 0
    assert sign_in(client, "alice@acme.test").status_code == 302


def test_it_follows_a_next_url_on_this_site(client, alice):
    response = sign_in(client, "alice@acme.test", next="/app/acme/")
    assert response["Location"] == "/app/acme/"


@pytest.mark.parametrize(
    "target",
    ["https://evil.test/", "//evil.test/x", "http://testserver.evil.test/", "javascript:alert(1)"],
)
def test_it_refuses_to_redirect_off_site_after_sign_in(client, alice, target):
    response = sign_in(client, "alice@acme.test", next=target)
    assert response.status_code == 302
    assert response["Location"] == "/app/"


def test_it_keeps_next_in_the_login_form(client, db):
    html = client.get("/login/?next=/app/acme/").content.decode()
    assert 'name="next" value="/app/acme/"' in html
    assert "evil" not in client.get("/login/?next=https://evil.test/").content.decode()


def test_it_sends_a_signed_in_visitor_of_the_login_page_on(alice_client):
    response = alice_client.get("/login/")
    assert response.status_code == 302
    assert response["Location"] == "/app/"


def test_it_points_to_the_setup_link_while_no_account_exists(client, db):
    assert "one-time setup link" in client.get("/login/").content.decode()


def test_it_signs_out_with_post_and_records_it(alice_client, personas):
    response = alice_client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert signed_in_as(alice_client) is None
    assert AuditEvent.objects.filter(event="auth.logout", actor_user_id=personas.alice.pk).exists()


def test_it_refuses_to_sign_out_with_get(alice_client):
    assert alice_client.get("/logout/").status_code == 405
    assert signed_in_as(alice_client) == "alice@acme.test"


def test_it_refuses_an_off_site_next_after_sign_out(alice_client):
    response = alice_client.post("/logout/", {"next": "https://evil.test/"})
    assert response["Location"] == "/login/"


def test_it_sends_the_root_to_the_app(client, db):
    assert client.get("/")["Location"] == "/app/"
