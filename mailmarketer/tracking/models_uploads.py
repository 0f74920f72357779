"""Access-log files uploaded by staff on a site's pages (uploads.py imports them in the worker)."""

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from mailmarketer.accounts.models import Workspace

from .models_web import Site


class LogUpload(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="log_uploads")
    file_name = models.CharField(max_length=200)  # as uploaded; shown, never used as a path
    log_format = models.CharField(max_length=500, default="combined")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    size = models.BigIntegerField(default=0)  # bytes of the file as stored (compressed or not)
    bytes_done = models.BigIntegerField(default=0)
    lines_done = models.BigIntegerField(default=0)
    totals = models.JSONField(default=dict, blank=True)  # logs.Totals.summary() + bad lines
    error = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    def __str__(self):
        return f"log upload {self.pk} ({self.status})"
