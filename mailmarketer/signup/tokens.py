"""The two signed tokens of the signup pages.

**Form tokens.** The public form is posted from other sites (the embed snippet) and by scripts,
where Django's CSRF cookie cannot work: a cross-site POST carries no SameSite=Lax cookie, and
the pages set no cookie at all. CSRF guards an ambient credential, and a public form has none
(no session, no cookie): what a forged post could do is what anyone can do by filling the form.
So the routes are CSRF-exempt and each post carries instead a token signed for that one form,
with its time: the hosted page's token expires after FORM_TOKEN_HOURS (a page left open
overnight asks to be sent again); the embed snippet's token, pasted into another site's HTML
where nothing can renew it, lasts EMBED_TOKEN_DAYS, and the builder says so. A token of another
form, altered or expired, is refused and nothing is stored.

**Confirmation tokens** name one Confirmation row; they expire with it (CONFIRM_DAYS). They
carry an id only, never the address.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from django.conf import settings
from django.core import signing

FORM_TOKEN_HOURS = 24
EMBED_TOKEN_DAYS = 400
CONFIRM_DAYS = 7

_FORM_SALT = "mailmarketer.signup.form"
_CONFIRM_SALT = "mailmarketer.signup.confirm"
PAGE, EMBED = "page", "embed"
_MAX_AGE = {PAGE: timedelta(hours=FORM_TOKEN_HOURS), EMBED: timedelta(days=EMBED_TOKEN_DAYS)}


def make_form_token(form_id: int, via: str = PAGE) -> str:
    return signing.TimestampSigner(salt=_FORM_SALT).sign(f"{form_id}.{via}")


def read_form_token(token: str, form_id: int) -> str | None:
    """ "page" or "embed" for a current token of this form, None for anything else."""
    key = (token, form_id, settings.SECRET_KEY)
    known = _verified.get(key)
    if known is None:
        known = _verify(token or "", form_id)
        if known is None:
            return None
        with _lock:
            if len(_verified) >= MAX_VERIFIED:
                _verified.clear()
            _verified[key] = known
    via, minted = known
    if time.time() - minted > _MAX_AGE[via].total_seconds():
        return None
    return via


# Tokens whose signature this process checked, with their time: an embed's token is the same
# string in every visitor's post, and its signature (an HMAC) need not be checked again; its
# age is, each time. Bounded: past it the memory starts again.
MAX_VERIFIED = 10_000
_verified: dict[tuple[str, int, str], tuple[str, int]] = {}
_lock = threading.Lock()


def _verify(token: str, form_id: int) -> tuple[str, int] | None:
    """(via, signing time) of a token with a good signature for this form, else None."""
    signer = signing.TimestampSigner(salt=_FORM_SALT)
    try:
        # The signature checked once (TimestampSigner.unsign would check it again for the age).
        value, stamp = signing.Signer.unsign(signer, token).rsplit(signer.sep, 1)
        minted = signing.b62_decode(stamp)
    except (signing.BadSignature, ValueError):
        return None
    form_part, _, via = value.partition(".")
    if form_part != str(form_id) or via not in _MAX_AGE:
        return None
    return via, minted


def make_confirm_token(confirmation_id: int) -> str:
    return signing.TimestampSigner(salt=_CONFIRM_SALT).sign(str(confirmation_id))


def read_confirm_token(token: str) -> int | None:
    try:
        value = signing.TimestampSigner(salt=_CONFIRM_SALT).unsign(
            token or "", max_age=timedelta(days=CONFIRM_DAYS)
        )
    except signing.BadSignature:  # altered, forged or expired (SignatureExpired is one)
        return None
    return int(value) if value.isdigit() else None


# -- self-service links (the preference centre's mails) ---------------------------------------
#
# The preference centre mails two links to the person's own address: their data, and the
# erasure of it. Each names one (workspace, subscriber) and is stamped with its time; both
# expire after SELF_SERVICE_HOURS, so a link left in a mailbox stops working the next day.

SELF_SERVICE_HOURS = 24
DATA, ERASE = "data", "erase"
_SELF_SERVICE_SALT = {
    DATA: "mailmarketer.signup.data-download",
    ERASE: "mailmarketer.signup.erase",
}


def make_self_service_token(kind: str, workspace_id: int, subscriber_id: int) -> str:
    signer = signing.TimestampSigner(salt=_SELF_SERVICE_SALT[kind])
    return signer.sign(f"{int(workspace_id)}.{int(subscriber_id)}")


def read_self_service_token(kind: str, token: str) -> tuple[int, int] | None:
    """(workspace id, subscriber id) of a current token of this kind; None when altered,
    forged, of the other kind or older than SELF_SERVICE_HOURS."""
    try:
        value = signing.TimestampSigner(salt=_SELF_SERVICE_SALT[kind]).unsign(
            token or "", max_age=timedelta(hours=SELF_SERVICE_HOURS)
        )
    except signing.BadSignature:
        return None
    workspace_part, _, subscriber_part = value.partition(".")
    if not (workspace_part.isdigit() and subscriber_part.isdigit()):
        return None
    return int(workspace_part), int(subscriber_part)
