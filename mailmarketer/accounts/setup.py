"""The first-run setup link: while no user exists, `mailmarketer run` prints a one-time link
where the first owner chooses their password (there is no default password anywhere).

The link is signed with the secret key and expires; it is single-use because the setup page
refuses as soon as any user exists.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing

SALT = "mailmarketer.accounts.first-owner-setup"


def setup_needed() -> bool:
    from .models import User

    return not User.objects.exists()


def setup_token() -> str:
    return signing.dumps("first-owner", salt=SALT)


def setup_url() -> str:
    return f"{settings.BASE_URL}/setup/{setup_token()}/"


def check_setup_token(token: str) -> bool:
    try:
        return signing.loads(token, salt=SALT, max_age=settings.SETUP_LINK_MAX_AGE) == "first-owner"
    except signing.BadSignature:
        return False
