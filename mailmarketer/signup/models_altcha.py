"""ALTCHA proof of work (signup/altcha.py): a workspace's switch and difficulty, and the
solved challenges, one row each, so that a solution is good for one submission only, in every
web process and after a restart."""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now

from mailmarketer.accounts.models import Workspace

# How many numbers a browser may have to try (ALTCHA's `maxnumber`): half of it on average.
# 100,000 SHA-256 hashes take a phone about a second and a desktop a fraction of one.
DEFAULT_MAXNUMBER = 100_000


class FormProtection(models.Model):
    """A workspace's anti-abuse settings for its forms. No row means the defaults: ALTCHA
    required, at DEFAULT_MAXNUMBER. Changed only by altcha.do_set_form_protection."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    altcha_required = models.BooleanField(default=True)
    altcha_maxnumber = models.PositiveIntegerField(default=DEFAULT_MAXNUMBER)
    updated_at = models.DateTimeField(default=now)

    def __str__(self):
        return f"form protection of workspace {self.workspace_id}"


class SolvedChallenge(models.Model):
    """One ALTCHA challenge whose solution a submission used, inserted in that submission's
    transaction. The unique challenge is what refuses a replay: a second insert of it fails,
    whichever process tries and whenever, until the challenge has expired anyway (rows are
    deleted some time after `expires_at`)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    # The challenge's SHA-256 (hex): it covers the salt (form, expiry, random part) and the
    # number, and the signature covers it.
    challenge = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="solved_challenge_expiry")]

    def __str__(self):
        return f"solved challenge {self.challenge[:12]}"
