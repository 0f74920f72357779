"""Encryption of secrets at rest (SMTP passwords, TOTP seeds, DKIM keys, webhook secrets).

Keys come from MM_ENCRYPTION_KEY: a comma-separated list of Fernet keys, the first one used to
encrypt and all of them tried to decrypt, so a key can be rotated without downtime: put the new key
first, restart, run `mailmarketer rotatekey`, then drop the old key. The embedded default generates
one key into the data directory.

Every secret column is an `EncryptedTextField`; `rotatekey` finds them all through the model
registry, so a new secret field is covered by rotation without anyone remembering to add it.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

# A prefix makes an encrypted value recognisable in the raw column and in a rotation scan.
PREFIX = "fernet:"


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


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
                _write_raw(model, field, pk, rotate(raw))
                count += 1
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
