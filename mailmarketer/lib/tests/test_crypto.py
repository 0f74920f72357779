"""Secrets at rest: encryption, what the raw column holds, rotation and the key file."""

from __future__ import annotations

import secrets
import stat

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.db import connection

from mailmarketer.accounts.models import TotpDevice
from mailmarketer.lib import crypto
from mailmarketer.lib.crypto import DecryptionError, decrypt, encrypt, rotate_all
from mailmarketer.testing import make_user


@pytest.fixture
def old_key(settings):
    key = crypto.generate_key()
    settings.ENCRYPTION_KEYS = [key]
    return key


@pytest.fixture
def device(db, old_key):
    seed = secrets.token_hex(20)
    user = make_user("alice@acme.test", "Alice")
    device = TotpDevice.objects.create(user=user, name="phone", key=seed, confirmed=True)
    device.seed = seed
    return device


def raw_key_column(device) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM accounts_totpdevice WHERE id = %s", [device.pk])
        return cursor.fetchone()[0]


def stored_seed(device) -> str:
    return TotpDevice.objects.get(pk=device.pk).key


def test_it_round_trips_a_secret(old_key):
    token = encrypt("smtp password")

    assert token.startswith("fernet:")
    assert "smtp password" not in token
    assert decrypt(token) == "smtp password"
    assert encrypt("smtp password") != token  # random IV: equal secrets look different


def test_it_keeps_a_secret_field_unreadable_in_the_raw_column(device):
    raw = raw_key_column(device)

    assert raw.startswith("fernet:")
    assert device.seed not in raw
    assert stored_seed(device) == device.seed


def test_it_rotates_every_secret_under_a_new_primary_key(device, old_key, settings):
    before = raw_key_column(device)
    new_key = crypto.generate_key()
    settings.ENCRYPTION_KEYS = [new_key, old_key]

    assert rotate_all() == 1

    assert raw_key_column(device) != before
    settings.ENCRYPTION_KEYS = [new_key]
    assert stored_seed(device) == device.seed
    settings.ENCRYPTION_KEYS = [old_key]
    with pytest.raises(DecryptionError):
        stored_seed(device)


def test_it_names_mm_encryption_key_when_the_key_is_wrong(old_key, settings):
    token = encrypt("webhook secret")
    settings.ENCRYPTION_KEYS = [crypto.generate_key()]

    with pytest.raises(DecryptionError, match="MM_ENCRYPTION_KEY"):
        decrypt(token)


def test_it_names_the_row_it_cannot_rotate(device, settings):
    settings.ENCRYPTION_KEYS = [crypto.generate_key()]  # the key that wrote it is gone

    with pytest.raises(DecryptionError, match=rf"accounts.TotpDevice.key of row {device.pk}"):
        rotate_all()


def test_it_refuses_a_value_that_is_not_encrypted(old_key):
    with pytest.raises(DecryptionError, match="not an encrypted secret"):
        decrypt("plain text")


# -- the key file (the embedded default) ---------------------------------------------------------


@pytest.fixture
def key_file(tmp_path, settings, old_key):
    path = tmp_path / "encryption.key"
    path.write_text(old_key + "\n")
    settings.ENCRYPTION_KEY_FILE = path
    return path


def test_it_replaces_the_key_file_and_re_encrypts_under_the_new_key(device, key_file, settings):
    old_key = settings.ENCRYPTION_KEYS[0]

    assert crypto.rotate_key_file() == 1

    keys = key_file.read_text().split()
    assert len(keys) == 1 and keys[0] != old_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert keys == settings.ENCRYPTION_KEYS
    assert stored_seed(device) == device.seed
    settings.ENCRYPTION_KEYS = [old_key]
    with pytest.raises(DecryptionError):
        stored_seed(device)


def test_it_keeps_every_secret_readable_when_rotation_stops_half_way(
    device, key_file, settings, monkeypatch
):
    old_key = settings.ENCRYPTION_KEYS[0]

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(crypto, "rotate_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        crypto.rotate_key_file()

    keys = key_file.read_text().split()
    assert len(keys) == 2 and keys[1] == old_key  # the new key first, the old one kept
    both = MultiFernet([Fernet(k.encode()) for k in keys])
    assert both.decrypt(raw_key_column(device).removeprefix("fernet:").encode()).decode() == (
        device.seed
    )
    assert not list(key_file.parent.glob(".*.tmp"))  # no temporary file left behind


def test_it_writes_the_key_file_owner_only_and_one_key_a_line(tmp_path):
    path = tmp_path / "sub" / "encryption.key"

    crypto.write_key_file(path, ["first", "second"])

    assert path.read_text() == "first\nsecond\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
