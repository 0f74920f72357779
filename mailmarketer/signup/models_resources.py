"""Resources (lead magnets): a file kept in the data directory or an external https URL, given
to whoever submits a `resource` form. A grant is one signed download link (mailed, and shown at
once after a single opt-in form); each download through it is recorded per subscriber, a fact
other features segment on. Writes go through signup/resources.py."""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now

from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.models import Subscriber

from .models import Form


class Resource(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=200)
    # Either a stored file (its name under DATA_DIR/resources/ws-<id>/, never the uploader's
    # name) or an external https URL.
    stored_name = models.CharField(max_length=100, blank=True)
    # The name the download is offered under: made safe from the uploaded name (safe_filename).
    filename = models.CharField(max_length=120, blank=True)
    content_type = models.CharField(max_length=100, blank=True)  # from the content, not the client
    size = models.PositiveBigIntegerField(default=0)
    external_url = models.URLField(max_length=500, blank=True)
    link_days = models.PositiveSmallIntegerField(default=14)  # how long a download link lasts
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    def __str__(self):
        return self.title

    @property
    def is_file(self) -> bool:
        return bool(self.stored_name)


class ResourceForm(models.Model):
    """Which resource a `resource` form gives out (a form of that kind without one has no
    public page)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    form = models.OneToOneField(Form, on_delete=models.CASCADE, related_name="resource_binding")
    # RESTRICT: a resource a form gives cannot be deleted on its own, but goes with its
    # workspace (PROTECT would block that cascade).
    resource = models.ForeignKey(Resource, on_delete=models.RESTRICT, related_name="+")

    def __str__(self):
        return f"form {self.form_id} gives resource {self.resource_id}"


class ResourceGrant(models.Model):
    """One download link: signed with its id (signup.resources.make_download_token), valid until
    expires_at. The subscriber is null when the submission named nobody who may be recorded
    (an address a form may not sign up): the link still works, its downloads are counted only."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="grants")
    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    form = models.ForeignKey(
        Form, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    mailed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["subscriber", "resource", "created_at"], name="grant_recent"),
        ]

    def __str__(self):
        return f"grant {self.pk} of resource {self.resource_id}"


class ResourceDownload(models.Model):
    """One download: who (null when the link named nobody), what, when."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="downloads")
    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    downloaded_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "subscriber", "resource"], name="download_person"),
        ]

    def __str__(self):
        return f"download of resource {self.resource_id} at {self.downloaded_at}"
