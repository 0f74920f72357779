"""The command line.

The commands' logic is tested in-process with call_command (on whichever database the suite
runs). What only the real entry point does (help before configuration, .env, configuration
errors as one line with status 2, the whole createuser/token path) is tested by running the
installed `mailmarketer` script on a temporary SQLite data directory.
"""

from __future__ import annotations

import io
import shutil
import sqlite3
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from mailmarketer.accounts.management.commands import createuser as createuser_module
from mailmarketer.accounts.models import AuditEvent, Membership, TotpDevice, User, Workspace
from mailmarketer.accounts.queries import get_token_by_raw
from mailmarketer.cli import SUBCOMMANDS, DotenvError, load_dotenv, parse_dotenv
from mailmarketer.lib import crypto
from mailmarketer.lib.tests.processes import cli_env, run_cli

PASSWORD = "correct horse battery staple"


def call(*args, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    return str(path)


class Terminal(io.StringIO):
    def isatty(self):
        return True


# -- createuser ------------------------------------------------------------------------------


def test_it_creates_a_user_a_workspace_and_a_membership(db, password_file):
    out, _ = call(
        "createuser",
        email="Dana@Example.test",
        workspace="acme-corp",
        role="owner",
        name="Dana",
        password_file=password_file,
    )

    user = User.objects.get(email="dana@example.test")
    assert user.name == "Dana"
    assert user.check_password(PASSWORD)
    assert user.password.startswith("argon2")
    workspace = Workspace.objects.get(slug="acme-corp")
    assert workspace.name == "Acme Corp"
    assert Membership.objects.get(user=user, workspace=workspace).role == "owner"
    events = set(AuditEvent.objects.filter(actor_label="cli").values_list("event", flat=True))
    assert events == {"user.created", "workspace.created", "member.added"}
    assert "Added dana@example.test to Acme Corp as owner." in out


def test_it_adds_an_existing_user_to_a_new_workspace_leaving_their_password(
    personas, password_file
):
    alice = personas.alice
    alice.set_password("alice's own long password")
    alice.save()

    out, err = call(
        "createuser",
        email="ALICE@acme.test",
        workspace="newco",
        role="admin",
        password_file=password_file,
    )

    alice.refresh_from_db()
    assert alice.check_password("alice's own long password")
    assert Membership.objects.get(user=alice, workspace__slug="newco").role == "admin"
    assert User.objects.filter(email__iexact="alice@acme.test").count() == 1
    assert "password is left unchanged" in err
    assert "Created user" not in out


def test_it_refuses_an_existing_membership(personas):
    with pytest.raises(CommandError, match="already a member of Acme"):
        call("createuser", email="bob@acme.test", workspace="acme", role="owner")

    assert Membership.objects.get(user=personas.bob, workspace=personas.acme).role == "marketer"


def test_it_refuses_an_unknown_role_listing_the_roles(db):
    with pytest.raises(CommandError, match="owner, admin, marketer, analyst, support"):
        call("createuser", email="dana@example.test", workspace="acme", role="boss")

    assert not User.objects.exists()


def test_it_refuses_a_weak_password_and_creates_nothing(db, tmp_path):
    weak = tmp_path / "weak"
    weak.write_text("password\n")

    with pytest.raises(CommandError, match=r"password refused: .*too short"):
        call(
            "createuser",
            email="dana@example.test",
            workspace="acme",
            role="owner",
            password_file=str(weak),
        )

    assert not User.objects.exists()
    assert not Workspace.objects.exists()


def test_it_refuses_a_bad_workspace_slug_and_creates_nothing(db, password_file):
    with pytest.raises(CommandError, match="--workspace 'Not A Slug': slug: Use 1-50"):
        call(
            "createuser",
            email="dana@example.test",
            workspace="Not A Slug",
            role="owner",
            password_file=password_file,
        )

    assert not User.objects.exists()  # the user made before the refusal is rolled back
    assert not AuditEvent.objects.exists()


def test_it_refuses_an_invalid_email(db):
    with pytest.raises(CommandError, match="email: Enter a valid email address"):
        call("createuser", email="not-an-address", workspace="acme", role="owner")


def test_it_gives_a_user_no_password_and_a_reset_hint_without_a_terminal(db, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    out, _ = call("createuser", email="dana@example.test", workspace="acme", role="marketer")

    assert not User.objects.get(email="dana@example.test").has_usable_password()
    assert "has no password yet" in out
    assert "/password-reset/" in out


def test_it_asks_for_the_password_twice_on_a_terminal(db, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal())
    answers = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr(createuser_module.getpass, "getpass", lambda prompt: next(answers))

    call("createuser", email="dana@example.test", workspace="acme", role="owner")

    assert User.objects.get(email="dana@example.test").check_password(PASSWORD)


def test_it_refuses_two_different_passwords_on_a_terminal(db, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal())
    answers = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr(createuser_module.getpass, "getpass", lambda prompt: next(answers))

    with pytest.raises(CommandError, match="the two passwords differ"):
        call("createuser", email="dana@example.test", workspace="acme", role="owner")

    assert not User.objects.exists()


def test_it_reads_the_password_from_standard_input(db, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))

    call("createuser", email="dana@example.test", workspace="acme", role="owner", password_file="-")

    assert User.objects.get(email="dana@example.test").check_password(PASSWORD)


def test_it_names_an_unreadable_password_file(db, tmp_path):
    missing = str(tmp_path / "nope")

    with pytest.raises(CommandError, match=r"cannot read --password-file .*nope"):
        call(
            "createuser", email="d@example.test", workspace="a", role="owner", password_file=missing
        )


# -- token -------------------------------------------------------------------------------------


def test_it_prints_only_the_new_token_on_standard_output(personas):
    out, err = call("token", "create", "--workspace", "acme", "--role", "marketer", "--name", "ci")

    raw = out.strip()
    assert out == raw + "\n" and raw.startswith("mm_") and " " not in raw
    token = get_token_by_raw(raw)
    assert token.workspace == personas.acme
    assert token.role == "marketer"
    assert token.name == "ci"
    assert "shown this once" in err
    assert raw not in err


def test_it_refuses_a_token_for_an_unknown_workspace(db):
    with pytest.raises(CommandError, match="no workspace with the slug 'nope'"):
        call("token", "create", "--workspace", "nope", "--role", "owner", "--name", "ci")


def test_it_refuses_a_token_with_an_unknown_role(personas):
    with pytest.raises(CommandError, match="unknown role 'boss'"):
        call("token", "create", "--workspace", "acme", "--role", "boss", "--name", "ci")


def test_it_lists_and_revokes_a_token_by_its_prefix(personas):
    out, _ = call("token", "create", "--workspace", "acme", "--role", "analyst", "--name", "bi")
    raw = out.strip()
    prefix = raw[:10]

    listing, _ = call("token", "list", "--workspace", "acme")
    assert prefix in listing and "bi" in listing and "active" in listing

    out, _ = call("token", "revoke", "--workspace", "acme", "--prefix", prefix)

    assert "Revoked 'bi'" in out
    assert get_token_by_raw(raw) is None
    listing, _ = call("token", "list", "--workspace", "acme")
    assert "revoked" in listing


def test_it_refuses_to_revoke_an_unknown_prefix(personas):
    with pytest.raises(CommandError, match="no active token of acme has the prefix 'mm_nope'"):
        call("token", "revoke", "--workspace", "acme", "--prefix", "mm_nope")


def test_it_does_not_revoke_another_workspaces_token(personas):
    out, _ = call("token", "create", "--workspace", "evil", "--role", "owner", "--name", "x")
    raw = out.strip()

    with pytest.raises(CommandError, match="no active token"):
        call("token", "revoke", "--workspace", "acme", "--prefix", raw[:10])

    assert get_token_by_raw(raw) is not None


# -- rotatekey and genkey ----------------------------------------------------------------------


@pytest.fixture
def device(personas, settings):
    settings.ENCRYPTION_KEYS = [crypto.generate_key()]
    return TotpDevice.objects.create(user=personas.alice, name="phone", key="ab" * 20)


def test_it_re_encrypts_every_secret_with_rotatekey(device, settings):
    old = settings.ENCRYPTION_KEYS[0]
    new = crypto.generate_key()
    settings.ENCRYPTION_KEYS = [new, old]

    out, _ = call("rotatekey")

    assert "Re-encrypted 1 secret under the primary key" in out
    settings.ENCRYPTION_KEYS = [new]
    assert TotpDevice.objects.get(pk=device.pk).key == "ab" * 20


def test_it_explains_how_to_change_keys_when_only_one_is_configured(device, monkeypatch):
    monkeypatch.setenv("MM_ENCRYPTION_KEY", crypto.generate_key())

    _, err = call("rotatekey")

    assert "Only one key is configured" in err
    assert "put it first in MM_ENCRYPTION_KEY" in err


def test_it_refuses_rotatekey_generate_when_mm_encryption_key_is_set(device, monkeypatch):
    monkeypatch.setenv("MM_ENCRYPTION_KEY", crypto.generate_key())

    with pytest.raises(CommandError, match=r"MM_ENCRYPTION_KEY is set.*mailmarketer genkey"):
        call("rotatekey", "--generate")


def test_it_generates_a_new_key_file_with_rotatekey_generate(
    device, settings, monkeypatch, tmp_path
):
    monkeypatch.delenv("MM_ENCRYPTION_KEY", raising=False)
    key_file = tmp_path / "encryption.key"
    old = settings.ENCRYPTION_KEYS[0]
    key_file.write_text(old + "\n")
    settings.ENCRYPTION_KEY_FILE = key_file

    out, _ = call("rotatekey", "--generate")

    assert "re-encrypted 1 secret under it" in out
    assert key_file.read_text().split() == settings.ENCRYPTION_KEYS != [old]
    assert TotpDevice.objects.get(pk=device.pk).key == "ab" * 20


def test_it_prints_a_usable_key_with_genkey():
    out, _ = call("genkey")

    Fernet(out.strip().encode())


# -- .env --------------------------------------------------------------------------------------


def test_it_parses_a_dotenv_file():
    text = "\n".join(
        [
            "# a comment",
            "",
            "MM_DEBUG=true",
            "export MM_BASE_URL = https://mail.example.test ",
            'MM_SECRET_KEY="with # hash and = sign"',
            "MM_SMTP_URL='smtp://relay.example.test'",
            "MM_EMPTY=",
        ]
    )

    assert parse_dotenv(text) == {
        "MM_DEBUG": "true",
        "MM_BASE_URL": "https://mail.example.test",
        "MM_SECRET_KEY": "with # hash and = sign",
        "MM_SMTP_URL": "smtp://relay.example.test",
        "MM_EMPTY": "",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("MM_DEBUG=true\nMM_DEBUG true", r"line 2: expected KEY=VALUE"),
        ("1BAD=x", r"line 1: expected KEY=VALUE"),
        ('MM_SECRET_KEY="unterminated', r"line 1: MM_SECRET_KEY: the closing quote is missing"),
    ],
)
def test_it_names_the_line_of_a_malformed_dotenv(text, problem):
    with pytest.raises(DotenvError, match=problem):
        parse_dotenv(text)


def test_it_lets_the_environment_win_over_dotenv(tmp_path):
    path = tmp_path / ".env"
    path.write_text("MM_DEBUG=true\nMM_BASE_URL=http://example.test\n")
    environ = {"MM_DEBUG": "false"}

    assert load_dotenv(path, environ) == ["MM_BASE_URL"]
    assert environ == {"MM_DEBUG": "false", "MM_BASE_URL": "http://example.test"}
    assert load_dotenv(tmp_path / "missing.env", environ) == []


# -- the real entry point ------------------------------------------------------------------------


def test_it_shows_help_for_every_subcommand_without_any_configuration(tmp_path):
    env = cli_env(None)  # no MM_DEBUG, no MM_SECRET_KEY: start-up would refuse
    commands = [[], *([name] for name in SUBCOMMANDS), ["token", "create"], ["token", "revoke"]]

    for command in commands:
        result = run_cli(*command, "--help", env=env, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith(f"usage: {' '.join(['mailmarketer', *command])}")


def test_it_shows_djangos_help_for_manage_and_migrate(tmp_path):
    env = cli_env(tmp_path / "var")

    manage = run_cli("manage", "--help", env=env, cwd=tmp_path)
    migrate = run_cli("migrate", "--help", env=env, cwd=tmp_path)

    assert manage.returncode == 0 and "[accounts]" in manage.stdout
    assert "createuser" in manage.stdout and "rotatekey" in manage.stdout
    assert migrate.returncode == 0 and migrate.stdout.startswith("usage: mailmarketer migrate")


def test_it_reports_a_malformed_setting_in_one_line_with_status_2(tmp_path):
    env = cli_env(tmp_path / "var", MM_DEBUG="maybe")

    result = run_cli("migrate", env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("mailmarketer: configuration error: MM_DEBUG: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_it_refuses_to_start_without_a_secret_key_unless_debug(tmp_path):
    env = cli_env(None, MM_DATA_DIR=str(tmp_path / "var"))

    result = run_cli("worker", env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("mailmarketer: configuration error: MM_SECRET_KEY: ")
    assert "Traceback" not in result.stderr


def test_it_reads_dotenv_from_the_current_directory(tmp_path):
    data_dir = tmp_path / "from-dotenv"
    (tmp_path / ".env").write_text(f"# local settings\nMM_DEBUG=true\nMM_DATA_DIR='{data_dir}'\n")

    configured = run_cli("manage", "check", env=cli_env(None), cwd=tmp_path)
    overridden = run_cli("manage", "check", env=cli_env(None, MM_DEBUG="maybe"), cwd=tmp_path)

    assert configured.returncode == 0, configured.stderr
    assert (data_dir / "secret.key").exists()  # MM_DATA_DIR came from the file
    assert overridden.returncode == 2  # the environment's MM_DEBUG won over the file's
    assert "MM_DEBUG" in overridden.stderr


def test_it_names_the_line_of_a_malformed_dotenv_at_start_up(tmp_path):
    (tmp_path / ".env").write_text("MM_DEBUG=true\nnonsense\n")

    result = run_cli("migrate", env=cli_env(None), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("mailmarketer: configuration error: ")
    assert ".env line 2: expected KEY=VALUE" in result.stderr


def test_it_prints_a_key_with_genkey_without_any_configuration(tmp_path):
    result = run_cli("genkey", env=cli_env(None), cwd=tmp_path)

    assert result.returncode == 0
    Fernet(result.stdout.strip().encode())


def django_shell(code: str, *, env, cwd):
    return run_cli("manage", "shell", "--no-imports", "-c", code, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A data directory migrated once; each test gets a copy (a migrate takes seconds)."""
    template = tmp_path_factory.mktemp("migrated") / "var"
    result = run_cli("migrate", env=cli_env(template), cwd=template.parent)
    assert result.returncode == 0, result.stderr
    return template


@pytest.fixture
def data_dir(migrated, tmp_path):
    return shutil.copytree(migrated, tmp_path / "var")


def test_it_creates_a_user_and_a_token_that_authenticates(data_dir, tmp_path):
    env = cli_env(data_dir)
    (tmp_path / "pw").write_text(PASSWORD + "\n")

    created = run_cli(
        "createuser",
        "--email=erin@example.test",
        "--workspace=acme",
        "--role=owner",
        "--password-file=pw",
        env=env,
        cwd=tmp_path,
    )
    token = run_cli(
        "token", "create", "--workspace=acme", "--role=marketer", "--name=ci", env=env, cwd=tmp_path
    )

    assert created.returncode == 0, created.stderr
    assert token.returncode == 0, token.stderr
    raw = token.stdout.strip()
    assert token.stdout == raw + "\n" and raw.startswith("mm_")
    check = (
        "from mailmarketer.accounts.queries import get_token_by_raw; "
        f"t = get_token_by_raw({raw!r}); print(t.workspace.slug, t.role)"
    )
    shell = django_shell(check, env=env, cwd=tmp_path)
    assert shell.stdout.strip() == "acme marketer", shell.stderr
    with sqlite3.connect(data_dir / "mailmarketer.sqlite3") as db:
        (password,) = db.execute(
            "SELECT password FROM accounts_user WHERE email = 'erin@example.test'"
        ).fetchone()
    assert password.startswith("argon2$argon2id$")


def test_it_rotates_the_embedded_key_file_with_rotatekey_generate(data_dir, tmp_path):
    env = cli_env(data_dir)
    key_file = data_dir / "encryption.key"
    old = key_file.read_text().split()
    plant = (
        "from mailmarketer.accounts.models import TotpDevice, User; "
        "u = User.objects.create_user('dana@example.test'); "
        "TotpDevice.objects.create(user=u, name='phone', key='cd' * 20)"
    )
    read = "from mailmarketer.accounts.models import TotpDevice as T; print(T.objects.get().key)"
    assert (
        run_cli("manage", "shell", "--no-imports", "-c", plant, env=env, cwd=tmp_path).returncode
        == 0
    )

    rotated = run_cli("rotatekey", "--generate", env=env, cwd=tmp_path)
    refused = run_cli(
        "rotatekey", "--generate", env={**env, "MM_ENCRYPTION_KEY": old[0]}, cwd=tmp_path
    )

    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 1 secret under it" in rotated.stdout
    new = key_file.read_text().split()
    assert len(new) == 1 and new != old
    assert (
        run_cli("manage", "shell", "--no-imports", "-c", read, env=env, cwd=tmp_path).stdout.strip()
        == "cd" * 20
    )
    assert refused.returncode == 1
    assert "mailmarketer rotatekey: error: MM_ENCRYPTION_KEY is set" in refused.stderr
