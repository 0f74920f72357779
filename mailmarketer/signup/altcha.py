"""ALTCHA proof of work on every way into a form (docs/forms.md, "Proof of work").

No third party: challenges are made and checked here with the `altcha` package (ALTCHA's
"v1" proof of work: find the number n <= maxnumber with SHA-256(salt + n) = challenge), and the
browser solves them with the widget served from our own static files (signup/static/signup/
altcha/, see its README).

- A challenge is **bound to its form**: its salt carries `form=<id>` and `expires=<unix time>`,
  and the salt is hashed into the challenge, which is signed with a key derived from
  SECRET_KEY. A solution for another form, or one whose salt was edited, fails. The package's
  release pinned in pyproject (2.3.0+) closes challenge splicing (CVE-2025-68113) by ending the
  salt's parameters with a delimiter before the number.
- It **expires** after CHALLENGE_MINUTES.
- It is **single-use**: `spend` inserts a SolvedChallenge row (unique challenge) in the
  submission's transaction, so a replayed solution fails in any process, after a restart, and
  when two posts race (the second insert waits for the first and then fails). A submission
  refused later in its transaction rolls the row back with everything else: a solution that
  bought nothing can be sent again.

Checking a solution is one SHA-256 and one HMAC, and spending it one insert: the cost is the
client's, which is the point.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from altcha import create_challenge_v1, verify_solution_v1
from django.conf import settings
from django.db import connection, transaction
from django.utils.crypto import salted_hmac
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, audit
from mailmarketer.accounts.actors import Actor

from .fields import ALTCHA
from .models_altcha import DEFAULT_MAXNUMBER, FormProtection, SolvedChallenge

FIELD = ALTCHA  # the widget's field name, and the JSON key

CHALLENGE_MINUTES = 10
ALGORITHM = "SHA-256"
# A payload is a few hundred bytes of base64: anything longer is not one.
MAX_PAYLOAD = 2000
# The difficulties the settings page accepts: below 1,000 a script solves it before it could
# send the post; above 5 million an old phone takes most of a minute.
MIN_MAXNUMBER, MAX_MAXNUMBER = 1_000, 5_000_000
# Spent challenges are deleted an hour after they expired, by one in PRUNE_ONE_IN spends.
PRUNE_AFTER = timedelta(hours=1)
PRUNE_ONE_IN = 200


class AltchaRefused(Exception):
    """A missing, invalid, expired, foreign or replayed solution: `reason` is a texts.py key."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Protection:
    required: bool
    maxnumber: int


@dataclass(frozen=True)
class Solved:
    """A solution that checked out, not yet spent."""

    challenge: str
    expires_at: datetime


def _key() -> str:
    # Derived from SECRET_KEY like Django's own signatures, under a name of its own.
    return _key_of(settings.SECRET_KEY)


@functools.lru_cache(maxsize=4)
def _key_of(secret: str) -> str:
    # Derived once per secret (two SHA-256 runs saved on every check).
    return salted_hmac(
        "mailmarketer.signup.altcha", "hmac-key", secret=secret, algorithm="sha256"
    ).hexdigest()


def protection_for(workspace) -> Protection:
    row = FormProtection.objects.filter(workspace=workspace).first()
    if row is None:
        return Protection(required=True, maxnumber=DEFAULT_MAXNUMBER)
    return Protection(required=row.altcha_required, maxnumber=row.altcha_maxnumber)


def make_challenge(form, *, maxnumber: int | None = None, expires: datetime | None = None):
    """A fresh challenge for `form`, as the widget reads it (a dict for JSON)."""
    if maxnumber is None:
        maxnumber = protection_for(form.workspace).maxnumber
    expires = expires or now() + timedelta(minutes=CHALLENGE_MINUTES)
    challenge = create_challenge_v1(
        algorithm=ALGORITHM,
        max_number=maxnumber,
        hmac_key=_key(),
        expires=expires.astimezone(UTC),
        params={"form": str(form.pk)},
    )
    return challenge.to_dict()


def check(form, payload) -> Solved:
    """The solution sent with a post of `form`, checked but not spent. Raises AltchaRefused."""
    if payload in (None, ""):
        raise AltchaRefused("altcha_missing")
    if not isinstance(payload, str) or len(payload) > MAX_PAYLOAD:
        raise AltchaRefused("altcha_invalid")
    try:
        data = json.loads(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise AltchaRefused("altcha_invalid") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("algorithm", "challenge", "salt", "signature")
    ):
        raise AltchaRefused("altcha_invalid")
    if not isinstance(data.get("number"), int) or isinstance(data.get("number"), bool):
        raise AltchaRefused("altcha_invalid")
    _, _, query = data["salt"].partition("?")
    params = parse_qs(query)
    try:
        expires = int(params.get("expires", [""])[0])
    except ValueError:
        raise AltchaRefused("altcha_invalid") from None
    if expires < now().timestamp():
        raise AltchaRefused("altcha_expired")
    if params.get("form") != [str(form.pk)] or len(params.get("expires", [])) != 1:
        raise AltchaRefused("altcha_invalid")
    try:
        verified, _error = verify_solution_v1(data, _key(), check_expires=True)
    except (TypeError, ValueError):
        verified = False
    if not verified or data["algorithm"] != ALGORITHM:
        raise AltchaRefused("altcha_invalid")
    return Solved(challenge=data["challenge"], expires_at=datetime.fromtimestamp(expires, UTC))


def spend(workspace, solved: Solved) -> None:
    """Marks the challenge used, in the caller's transaction. Raises AltchaRefused when it was
    used before (by any process, at any time before its row was pruned)."""
    # One statement, no savepoint: a conflicting row that is committed, or that a concurrent
    # transaction is about to commit (the insert waits for it), makes it insert nothing.
    assert SolvedChallenge._meta.db_table == "signup_solvedchallenge"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO signup_solvedchallenge (workspace_id, challenge, expires_at, created_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (challenge) DO NOTHING",
            [workspace.pk, solved.challenge, solved.expires_at, now()],
        )
        inserted = cursor.rowcount
    if inserted != 1:
        raise AltchaRefused("altcha_used")
    if random.randrange(PRUNE_ONE_IN) == 0:  # not for security: spreads the cleanup
        SolvedChallenge.objects.filter(expires_at__lt=now() - PRUNE_AFTER).delete()


@transaction.atomic
def do_set_form_protection(workspace, *, required: bool, maxnumber: int, actor: Actor):
    """The workspace's switch and difficulty, with an audit row when they change."""
    if not isinstance(maxnumber, int) or not MIN_MAXNUMBER <= maxnumber <= MAX_MAXNUMBER:
        raise ActionError(
            f"the difficulty must be a whole number from {MIN_MAXNUMBER:,} to {MAX_MAXNUMBER:,}"
        )
    row, _ = FormProtection.objects.select_for_update().get_or_create(workspace=workspace)
    old = {"altcha_required": row.altcha_required, "altcha_maxnumber": row.altcha_maxnumber}
    new = {"altcha_required": bool(required), "altcha_maxnumber": maxnumber}
    if old == new:
        return row
    row.altcha_required, row.altcha_maxnumber, row.updated_at = bool(required), maxnumber, now()
    row.save()
    changed = sorted(k for k in new if new[k] != old[k])
    audit(
        "forms.protection_changed",
        actor=actor,
        workspace=workspace,
        obj=row,
        old={k: old[k] for k in changed},
        new={k: new[k] for k in changed},
    )
    return row
