"""Email address normalisation, the one definition used by every path (forms, import, API,
admin, search, segments, suppression, erasure), and the suppression hash.

- normalise_email: trimmed, syntax checked, the domain lower-cased (and IDNA-normalised by
  email-validator for non-ASCII domains), the local part kept as the person typed it. This is
  the address stored, shown and mailed.
- email_key: the whole address lower-cased, what two addresses are compared by. RFC 5321 lets a
  server treat the local part case-sensitively, but no mainstream mailbox provider does, and
  every peer product compares whole addresses case-insensitively: `ANNA@beispiel.de` and
  `anna@Beispiel.DE` are one person. Subscriber.email_key holds it, unique per workspace.
- The suppression hash is taken over the key, so suppression and erasure match exactly the
  addresses that are the same subscriber.

Masking (mask_email, mask_addresses_in) is what a staff member without permission to see
personal data sees of an address, wherever it appears: alone or inside text from elsewhere.

Syntax is checked by email-validator without DNS lookups. Imports call this per row, so plain
ASCII addresses take a fast path: a strict regular expression whose every match email-validator
also accepts (a property test holds the two together); anything else goes to email-validator.
"""

from __future__ import annotations

import hashlib
import re

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254  # RFC 5321's path limit, minus the angle brackets

# dot-atom local part of ordinary characters; domain of LDH labels with an alphabetic TLD.
_FAST = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)


class InvalidEmail(ValueError):
    """The address is not valid; the message says why, for the person who typed it."""


def fast_normalise(address: str) -> str | None:
    """The normalised address for plain ASCII addresses, or None when email-validator must
    decide. Never accepts what email-validator would reject (a property test checks)."""
    match = _FAST.fullmatch(address)
    if match is None or len(match.group("local")) > 64:
        return None
    domain = match.group("domain")
    # Hyphens in a label's 3rd and 4th places are reserved for IDNA ("xn--"), which
    # email-validator checks: leave such domains to it.
    if "--" in domain:
        return None
    return f"{match.group('local')}@{domain.lower()}"


def normalise_email(raw: str) -> str:
    if raw is None:
        raise InvalidEmail("the email address is empty")
    address = raw.strip()
    if not address:
        raise InvalidEmail("the email address is empty")
    if len(address) > MAX_LENGTH:
        raise InvalidEmail(f"the email address is longer than {MAX_LENGTH} characters")
    fast = fast_normalise(address)
    if fast is not None:
        return fast
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    if len(result.local_part.encode()) > 64:
        raise InvalidEmail("the part before the @-sign is longer than 64 characters (RFC 5321)")
    return result.normalized


def email_key(normalised: str) -> str:
    """What a normalised address is compared by: the whole of it, lower-cased. Python's
    lower() and not the database's, whose idea of case differs between SQLite (ASCII only) and
    PostgreSQL (its locale): the key is computed here and stored."""
    return normalised.lower()


def suppression_hash(normalised: str) -> str:
    return hashlib.sha256(email_key(normalised).encode()).hexdigest()


def suppression_hashes(addresses: list[str]) -> list[str]:
    """suppression_hash of each address, in order: the send path checks a batch of 200 at a
    time (one call for the batch, send15c)."""
    sha256 = hashlib.sha256
    return [sha256(email_key(address).encode()).hexdigest() for address in addresses]


def mask_email(address: str) -> str:
    """`john@example.com` -> `j•••@example.com`: enough to tell people apart, not to mail them."""
    local, _, domain = address.rpartition("@")
    if not local:
        return "•••"
    return f"{local[0]}•••@{domain}"


# Anything shaped like local@domain inside free text: a relay's reply ("550 5.1.1
# <person1@example.com>: Recipient address rejected"), a bounce. Wider than a valid address on
# purpose: what a remote server wrote need not be valid to name someone. A quoted local part
# ("john smith"@example.com) is one too.
_ADDRESS_IN_TEXT = re.compile(r"""(?:"[^"\r\n]*"|[^\s<>()\[\],;:"'@]+)@[^\s<>()\[\],;:"'@]+""")


def mask_addresses_in(text: str, keep=None) -> str:
    """Free text with every address in it masked as mask_email does, the rest kept: "550
    <j•••@example.com>: Recipient address rejected" still says why the message failed.
    `keep(address)`, when given, spares the addresses that name nobody (our own return path)."""
    if not text or "@" not in text:
        return text

    def masked(match) -> str:
        address = match.group()
        return address if keep is not None and keep(address) else mask_email(address)

    return _ADDRESS_IN_TEXT.sub(masked, text)
