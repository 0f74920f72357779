import pytest
from django.core import signing
from django.test import Client

from mailmarketer.accounts.models import AuditEvent, Membership, User, Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.accounts.setup import SALT, setup_token

from .auth_helpers import PASSWORD, sign_in, signed_in_as

FORM = {
    "workspace_name": "Acme Ltd",
    "workspace_slug": "acme-ltd",
    "name": "Olivia Owner",
    "email": "Olivia@Acme.test",
    "password1": PASSWORD,
    "password2": PASSWORD,
}


def setup_path(token=None):
    return f"/setup/{token or setup_token()}/"


def test_it_shows_the_setup_form_while_no_user_exists(client, db):
    response = client.get(setup_path())
    assert response.status_code == 200
    html = response.content.decode()
    for field in FORM:
        assert f'<label for="id_{field}">' in html
    assert 'data-slug-from="id_workspace_name"' in html


def test_it_creates_the_first_owner_and_workspace_and_signs_in(client, db):
    response = client.post(setup_path(), FORM)
    assert response.status_code == 302
    assert response["Location"] == "/app/acme-ltd/"
    user = User.objects.get()
    assert user.email == "olivia@acme.test"
    assert user.name == "Olivia Owner"
    assert user.password.startswith("argon2")
    workspace = Workspace.objects.get(slug="acme-ltd")
    assert workspace.name == "Acme Ltd"
    assert Membership.objects.get(user=user, workspace=workspace).role == Role.OWNER
    assert signed_in_as(client) == "olivia@acme.test"
    assert client.get("/app/acme-ltd/").status_code == 200
    assert AuditEvent.objects.get(event="auth.login").new == {"method": "setup"}


def test_it_refuses_once_a_user_exists(client, db):
    client.post(setup_path(), FORM)
    other = Client()
    response = other.get(setup_path())
    assert response.status_code == 410
    assert "Setup is already done" in response.content.decode()
    assert 'href="/login/"' in response.content.decode()
    again = other.post(setup_path(), {**FORM, "email": "eve@evil.test", "workspace_slug": "x"})
    assert again.status_code == 410
    assert list(User.objects.values_list("email", flat=True)) == ["olivia@acme.test"]


def test_it_refuses_when_the_personas_exist(client, personas):
    assert client.get(setup_path()).status_code == 410


@pytest.mark.parametrize("token", ["nonsense", signing.dumps("first-owner", salt="other-salt")])
def test_it_answers_404_to_an_invalid_token(client, db, token):
    assert client.get(setup_path(token)).status_code == 404
    assert client.post(setup_path(token), FORM).status_code == 404
    assert not User.objects.exists()


def test_it_answers_404_to_an_expired_token(client, db, settings):
    token = signing.dumps("first-owner", salt=SALT)
    settings.SETUP_LINK_MAX_AGE = -1
    assert client.get(setup_path(token)).status_code == 404


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("Acme Ltd", "lower-case letters"),
        ("-acme", "not starting or ending with a hyphen"),
        ("a" * 51, "at most 50 characters"),
        ("help", "is a page of the app"),  # /app/help/ is the help pages, not a workspace
        ("switch", "is a page of the app"),
    ],
)
def test_it_checks_the_workspace_address(client, db, slug, message):
    response = client.post(setup_path(), {**FORM, "workspace_slug": slug})
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert 'aria-describedby="id_workspace_slug_helptext id_workspace_slug_error"' in html
    assert not User.objects.exists()


def test_it_refuses_a_workspace_address_already_taken(client, db):
    Workspace.objects.create(name="Existing", slug="acme-ltd")
    response = client.post(setup_path(), FORM)
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert not User.objects.exists()


def test_it_checks_the_password_against_the_validators(client, db):
    response = client.post(setup_path(), {**FORM, "password1": "olivia", "password2": "olivia"})
    assert "too short" in response.content.decode()
    response = client.post(setup_path(), {**FORM, "password2": "something else entirely 1"})
    assert "two passwords differ" in response.content.decode()
    assert not User.objects.exists()


def test_it_lets_the_new_owner_sign_in_again(client, db):
    client.post(setup_path(), FORM)
    client.post("/logout/")
    assert signed_in_as(client) is None
    assert sign_in(client, "olivia@acme.test")["Location"] == "/app/"
