"""Images uploaded for campaigns (campaigns/images.py writes and serves them).

An image belongs to a workspace, not to one campaign: a logo is used again and again, and a
message already sent keeps pointing at its URL, so an image outlives the campaign it was
uploaded for. The file is named by its content (SHA-256), stored once per workspace under the
data directory, and served at a URL that never changes (/i/<workspace>/<sha256>.<ext>).
"""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now

from mailmarketer.accounts.models import User, Workspace


class CampaignImage(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    sha256 = models.CharField(max_length=64)
    # The type sniffed from the content (never the browser's word): png, jpg, gif or webp.
    ext = models.CharField(max_length=4)
    content_type = models.CharField(max_length=20)
    size = models.PositiveIntegerField()
    filename = models.CharField(max_length=200, help_text="As uploaded, for the staff's list")
    uploaded_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "sha256"], name="campaign_image_unique")
        ]

    def __str__(self):
        return self.filename
