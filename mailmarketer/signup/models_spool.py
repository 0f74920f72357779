"""The sign-up spool's progress marks (signup/spooled.py): one row per spool file being
ingested, its byte offset moved in the same transaction as the batch it ends, and one row
named `lock` that every ingestion step locks first."""

from __future__ import annotations

from django.db import models


class SpoolMark(models.Model):
    name = models.CharField(max_length=100, unique=True)
    offset = models.BigIntegerField(default=0)

    def __str__(self):
        return f"sign-up spool mark {self.name} at {self.offset}"
