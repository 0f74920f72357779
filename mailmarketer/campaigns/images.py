"""Images for campaigns: uploaded by staff, stored under the data directory, served from our own
host at a URL that never changes, so a message sent years ago still shows its pictures and no
third party sees who opens it.

- Only PNG, JPEG, GIF and WebP, recognised from the file's first bytes (the name and the
  browser's type are not trusted). SVG is refused: it is a document that can carry scripts and
  links, and most mail programs do not show it. At most IMAGE_MAX_BYTES a file.
- A file is named by its SHA-256, per workspace: uploading the same picture twice gives the same
  URL and one file. The path is `<IMAGES_DIR>/<workspace id>/<sha256>.<ext>`, written to a
  temporary name and renamed, so a reader never sees half a file. The row is written after the
  file, in the upload's transaction: a failed transaction leaves at most an unreferenced file,
  which the next upload of the same picture reuses; a row never points at a missing file.
- Served at /i/<workspace slug>/<sha256>.<ext> (the slug cannot change) to anyone, since mail
  programs fetch it without a login; the content type is the sniffed one, cached for a year
  (the content behind a URL never changes), with a policy that lets the file do nothing but be
  an image.
- Every upload writes one audit row ("campaign.image_uploaded").
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from django.conf import settings
from django.db import transaction

from mailmarketer.accounts.actions import ActionError, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.lib.datafiles import open_private, private_dir

from .actions import sanitise_filename
from .models_images import CampaignImage

IMAGE_MAX_BYTES = 5 * 1024 * 1024  # a picture in an email larger than this is a mistake
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
IMAGE_NAME = re.compile(r"^(?P<sha256>[0-9a-f]{64})\.(?P<ext>png|jpg|gif|webp)$")


def sniff(data: bytes) -> str | None:
    """The image type the content is (an IMAGE_TYPES key), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _looks_like_svg(data: bytes, filename: str) -> bool:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return filename.lower().endswith((".svg", ".svgz")) or head.startswith((b"<svg", b"<?xml"))


def image_path(workspace_id: int, sha256: str, ext: str) -> Path:
    return Path(settings.IMAGES_DIR) / str(workspace_id) / f"{sha256}.{ext}"


def image_url(image: CampaignImage) -> str:
    """The absolute URL a message uses."""
    return f"{settings.BASE_URL}/i/{image.workspace.slug}/{image.sha256}.{image.ext}"


def _store(path: Path, data: bytes) -> None:
    if path.exists() and path.stat().st_size == len(data):
        return
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open_private(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


@transaction.atomic
def do_upload_image(workspace, *, filename: str, data: bytes, actor: Actor) -> CampaignImage:
    """Store the image (or find the same one uploaded before); ActionError(field="image")
    when it is not an image we accept."""
    data = bytes(data)
    if not data:
        raise ActionError("the file is empty", code="invalid_image", field="image")
    if len(data) > IMAGE_MAX_BYTES:
        raise ActionError(
            f"the image is {len(data):,} bytes; at most {IMAGE_MAX_BYTES:,} (5 MB) are allowed",
            code="image_too_large",
            field="image",
        )
    ext = sniff(data)
    if ext is None:
        if _looks_like_svg(data, filename or ""):
            raise ActionError(
                "SVG images are not accepted: they can carry scripts and most mail programs "
                "do not show them. Export it as PNG.",
                code="invalid_image",
                field="image",
            )
        raise ActionError(
            "the file is not a PNG, JPEG, GIF or WebP image (its content says so, whatever "
            "its name)",
            code="invalid_image",
            field="image",
        )
    try:
        name = sanitise_filename(filename or f"image.{ext}")
    except ActionError:
        name = f"image.{ext}"
    sha256 = hashlib.sha256(data).hexdigest()
    _store(image_path(workspace.pk, sha256, ext), data)
    image, created = CampaignImage.objects.get_or_create(
        workspace=workspace,
        sha256=sha256,
        defaults={
            "ext": ext,
            "content_type": IMAGE_TYPES[ext],
            "size": len(data),
            "filename": name,
            "uploaded_by": actor.user,
        },
    )
    audit(
        "campaign.image_uploaded",
        actor=actor,
        workspace=workspace,
        obj=image,
        new={
            "filename": name,
            "content_type": image.content_type,
            "size": image.size,
            "sha256": sha256,
            "new": created,
        },
    )
    return image


def images_for(workspace, limit: int = 60) -> list[CampaignImage]:
    """Newest first."""
    return list(
        CampaignImage.objects.filter(workspace=workspace).order_by("-created_at", "-id")[:limit]
    )


def get_image(workspace_slug: str, name: str) -> CampaignImage | None:
    """The image named `<sha256>.<ext>` of the workspace with this slug, when it exists."""
    match = IMAGE_NAME.match(name)
    if match is None:
        return None
    return (
        CampaignImage.objects.filter(
            workspace__slug=workspace_slug, sha256=match["sha256"], ext=match["ext"]
        )
        .select_related("workspace")
        .first()
    )
