"""Encryption of secrets at rest (SMTP passwords, TOTP seeds, DKIM keys, webhook secrets).

Keys come from MM_ENCRYPTION_KEY: a comma-separated list of Fernet keys, the first one used to
encrypt and all of them tried to decrypt, so a key can be rotated without downtime: put the new key
first, restart, run `mailmarketer rotatekey`, then drop the old key. The embedded default generates
one key into the data directory (settings.ENCRYPTION_KEY_FILE, one key a line, the first one
primary); `mailmarketer rotatekey --generate` replaces it (see rotate_key_file).

Every secret column is an `EncryptedTextField`; `rotatekey` finds them all through the model
registry, so a new secret field is covered by rotation without anyone remembering to add it.
"""

from __future__ import annotations

import os
import secrets
from functools import cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

# A prefix makes an encrypted value recognisable in the raw column and in a rotation scan.
PREFIX = "fernet:"


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


def generate_key() -> str:
    """A new random Fernet key, as MM_ENCRYPTION_KEY and the key file hold it."""
    return Fernet.generate_key().decode()


@cache
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ValueError(
            "MM_ENCRYPTION_KEY: each key must be 32 url-safe base64-encoded bytes "
            "(make one with `mailmarketer genkey`)"
        ) from exc


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return PREFIX + fernet().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        raise DecryptionError("value is not an encrypted secret")
    try:
        return fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "secret cannot be decrypted with the configured MM_ENCRYPTION_KEY"
        ) from None


def rotate(stored: str) -> str:
    """Re-encrypt under the first (primary) key."""
    if not stored.startswith(PREFIX):
        raise DecryptionError("value is not an encrypted secret")
    try:
        return PREFIX + fernet().rotate(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "secret cannot be decrypted with the configured MM_ENCRYPTION_KEY"
        ) from None


class EncryptedTextField(models.TextField):
    """A text column holding a Fernet token; Python code sees the plaintext.

    Empty strings are stored as empty strings (nothing to hide), so "no password" stays visible
    as such. The column is never queried by value: equal plaintexts give different tokens.
    """

    description = "Text encrypted at rest"

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)


def encrypted_fields():
    """(model, field) for every EncryptedTextField of every installed model."""
    from django.apps import apps

    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                yield model, field


def rotate_all(batch: int = 500) -> int:
    """Re-encrypt every secret under the primary key; returns how many values were rewritten.

    Reads the raw column (bypassing decryption) and writes the raw column back, one row at a
    time in its own small transaction, so an interrupted rotation can simply be run again.
    """
    from django.db import transaction

    count = 0
    for model, field in encrypted_fields():
        rows = (
            model._base_manager.exclude(**{field.attname: ""})
            .exclude(**{f"{field.attname}__isnull": True})
            .values_list("pk", flat=True)
        )
        for pk in rows.iterator(chunk_size=batch):
            with transaction.atomic():
                raw = _raw_value(model, field, pk)
                if not raw:
                    continue
                try:
                    rotated = rotate(raw)
                except DecryptionError as exc:
                    raise DecryptionError(
                        f"{model._meta.label}.{field.name} of row {pk}: {exc}; nothing after "
                        "it was rotated (the rows before it were)"
                    ) from None
                _write_raw(model, field, pk, rotated)
                count += 1
    return count


def write_key_file(path: Path, keys: list[str]) -> None:
    """Replace the key file with these keys, one a line, atomically and readable by the owner
    only: a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f"{key}\n" for key in keys))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def rotate_key_file() -> int:
    """Generate a new key for the embedded default (the key file in the data directory),
    re-encrypt every secret under it, and drop the old keys; returns how many values were
    rewritten.

    The file first holds "new, then the old keys", so that a crash half-way leaves a file from
    which every secret, rotated or not, can still be read (running this again finishes the job);
    only when every secret is rotated is it rewritten with the new key alone. Processes that
    read the old file keep the old key in memory: stop them first, start them after.
    """
    path = Path(settings.ENCRYPTION_KEY_FILE)
    old = list(settings.ENCRYPTION_KEYS)
    new = generate_key()
    write_key_file(path, [new, *old])
    settings.ENCRYPTION_KEYS = [new, *old]
    count = rotate_all()
    write_key_file(path, [new])
    settings.ENCRYPTION_KEYS = [new]
    return count


def _raw_value(model, field, pk) -> str | None:
    from django.db import connection

    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(field.column)
    pk_column = connection.ops.quote_name(model._meta.pk.column)
    with connection.cursor() as cursor:
        # Identifiers come from model metadata, never from input; the value is a parameter.
        cursor.execute(f"SELECT {column} FROM {table} WHERE {pk_column} = %s", [pk])  # noqa: S608
        row = cursor.fetchone()
    return row[0] if row else None


def _write_raw(model, field, pk, value: str) -> None:
    from django.db import connection

    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(field.column)
    pk_column = connection.ops.quote_name(model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE {pk_column} = %s", [value, pk])  # noqa: S608
