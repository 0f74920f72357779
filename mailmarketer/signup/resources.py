"""Resources (lead magnets, docs/resources.md): storing what staff upload, giving it to whoever
submits a `resource` form, and recording each download.

**Uploads are hostile input.** The type is read from the content (the first bytes, and for plain
text the whole file), never from the name or the type the browser claims, against ALLOWED:
PDF, ZIP, EPUB, PNG, JPEG and UTF-8 plain text. The size is capped by MM_RESOURCE_MAX_MB while
copying, whatever the client said. The file goes to DATA_DIR/resources/ws-<id>/ under a random
name, 0600; the name it is offered under is made safe from the uploaded one (`safe_filename`).

**Download links** are signed with a grant's id and expire with the grant (the resource's
`link_days`, 14 by default), checked against the database row, so a link that was valid is
refused after expiry in every process. A forged or altered token names no grant.

**List bombing.** Anyone can type anyone's address into a form, so one address gets at most one
delivery mail per resource per DELIVERY_HOURS: a later submission reuses the grant already
mailed (the per-address submission limits of signup/limits.py apply as well).
"""

from __future__ import annotations

import codecs
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import facts
from mailmarketer.audience.models import FactKind, Subscriber
from mailmarketer.delivery.transactional import do_send_transactional
from mailmarketer.lib.datafiles import open_private, private_dir

from .fields import FormError
from .models import Form, MailingList, Submission
from .models_resources import Resource, ResourceDownload, ResourceForm, ResourceGrant

logger = logging.getLogger(__name__)

DEFAULT_LINK_DAYS = 14
MAX_LINK_DAYS = 365
DELIVERY_HOURS = 24
_DOWNLOAD_SALT = "mailmarketer.signup.resource-download"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FileType:
    content_type: str
    extension: str
    label: str


PDF = FileType("application/pdf", "pdf", "PDF")
ZIP = FileType("application/zip", "zip", "ZIP")
EPUB = FileType("application/epub+zip", "epub", "EPUB")
PNG = FileType("image/png", "png", "PNG")
JPEG = FileType("image/jpeg", "jpg", "JPEG")
TEXT = FileType("text/plain; charset=utf-8", "txt", "plain text")
ALLOWED = (PDF, ZIP, EPUB, PNG, JPEG, TEXT)


def sniff(head: bytes) -> FileType | None:
    """The type the first bytes say, among the allowed ones; TEXT only as a candidate (the whole
    file must then decode as UTF-8 without control characters: see _copy)."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        # An EPUB is a ZIP whose first entry is the uncompressed file "mimetype" saying so.
        if head[30:58] == b"mimetypeapplication/epub+zip":
            return EPUB
        return ZIP
    if head and _plain_text(head, final=False):
        return TEXT
    return None


_TEXT_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _plain_text(chunk: bytes, *, final: bool, decoder=None) -> bool:
    decoder = decoder or codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(chunk, final=final)
    except UnicodeDecodeError:
        return False
    return not _TEXT_CONTROL.search(chunk)


def safe_filename(raw: str, file_type: FileType) -> str:
    """A name for Content-Disposition: the uploaded name's last part, letters, digits, dot,
    hyphen and underscore only, at most 80 characters, with the extension of the type found in
    the content (a "report.pdf.html" that is a PDF is offered as "report.pdf.pdf")."""
    base = re.split(r"[\\/]", str(raw or ""))[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80] or "resource"
    return f"{stem}.{file_type.extension}"


def _directory(workspace) -> Path:
    # Each level made 0700 (mkdir's parents=True would give the middle one the umask's mode).
    top = private_dir(Path(settings.DATA_DIR) / "resources")
    return private_dir(top / f"ws-{workspace.pk}")


def stored_path(resource: Resource) -> Path:
    return (
        Path(settings.DATA_DIR) / "resources" / f"ws-{resource.workspace_id}" / resource.stored_name
    )


def _copy(upload, target: Path) -> tuple[FileType, int]:
    """Copies the upload to target (0600), checking its size and type as it goes. Raises
    FormError on "file" (nothing left behind)."""
    limit = settings.RESOURCE_MAX_BYTES
    if getattr(upload, "size", 0) and upload.size > limit:
        raise FormError("file", f"file: at most {limit // (1024 * 1024)} MB")
    size, file_type = 0, None
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open_private(target, "xb") as out:
            for chunk in upload.chunks(_CHUNK):
                if file_type is None:
                    file_type = sniff(chunk[:4096])
                    if file_type is None:
                        raise FormError(
                            "file",
                            "file: this type of file is not accepted (by its content): use "
                            + ", ".join(t.label for t in ALLOWED),
                        )
                size += len(chunk)
                if size > limit:
                    raise FormError("file", f"file: at most {limit // (1024 * 1024)} MB")
                if file_type is TEXT and not _plain_text(chunk, final=False, decoder=decoder):
                    raise FormError("file", "file: not plain UTF-8 text, nor another accepted type")
                out.write(chunk)
        if file_type is None:
            raise FormError("file", "file: the file is empty")
        if file_type is TEXT and not _plain_text(b"", final=True, decoder=decoder):
            raise FormError("file", "file: not plain UTF-8 text, nor another accepted type")
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return file_type, size


def _clean_url(raw: str) -> str:
    url = str(raw or "").strip()
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise FormError("external_url", "external_url: an https:// address without a user name")
    if len(url) > 500:
        raise FormError("external_url", "external_url: at most 500 characters")
    return url


def _clean(resource: Resource, title, link_days) -> None:
    title = str(title or "").strip()
    if not title:
        raise FormError("title", "title: required")
    if len(title) > 200:
        raise FormError("title", "title: at most 200 characters")
    try:
        days = int(link_days)
    except (TypeError, ValueError):
        raise FormError("link_days", "link_days: a whole number of days") from None
    if not 1 <= days <= MAX_LINK_DAYS:
        raise FormError("link_days", f"link_days: from 1 to {MAX_LINK_DAYS} days")
    resource.title, resource.link_days = title, days


def _store(resource: Resource, upload) -> Path:
    """Stores the upload for the resource; returns its path so a failed transaction can remove
    it."""
    name = secrets.token_hex(16) + ".bin"
    target = _directory(resource.workspace) / name
    file_type, size = _copy(upload, target)
    resource.stored_name = name
    resource.filename = safe_filename(getattr(upload, "name", ""), file_type)
    resource.content_type = file_type.content_type
    resource.size = size
    resource.external_url = ""
    return target


def _snapshot(resource: Resource) -> dict:
    return {
        "title": resource.title,
        "filename": resource.filename,
        "size": resource.size,
        "external_url": resource.external_url,
        "link_days": resource.link_days,
    }


def _save_with_file(resource: Resource, upload, write) -> Resource:
    """Stores the file first (a file cannot be rolled back), then the row; a failed write
    removes the new file, a successful one the file it replaced."""
    old_path = stored_path(resource) if resource.stored_name else None
    new_path = _store(resource, upload) if upload is not None else None
    try:
        with transaction.atomic():
            write()
    except BaseException:
        if new_path is not None:
            new_path.unlink(missing_ok=True)
        raise
    if new_path is not None and old_path is not None:
        old_path.unlink(missing_ok=True)
    return resource


def do_create_resource(
    workspace,
    *,
    title: str,
    upload=None,
    external_url: str = "",
    link_days=DEFAULT_LINK_DAYS,
    actor: Actor,
) -> Resource:
    resource = Resource(workspace=workspace)
    _clean(resource, title, link_days)
    if (upload is None) == (not external_url):
        raise FormError("file", "file: upload a file or give an external URL (one of them)")
    if external_url:
        resource.external_url = _clean_url(external_url)

    def write():
        resource.save()
        audit(
            "resource.created",
            actor=actor,
            workspace=workspace,
            obj=resource,
            new=_snapshot(resource),
        )

    return _save_with_file(resource, upload, write)


def do_update_resource(
    resource: Resource,
    *,
    title: str,
    link_days,
    upload=None,
    external_url: str = "",
    actor: Actor,
) -> Resource:
    """New title and link lifetime; a new file or URL replaces the old one (links already
    mailed give the new one)."""
    old = _snapshot(resource)
    _clean(resource, title, link_days)
    if upload is not None and external_url:
        raise FormError("file", "file: upload a file or give an external URL, not both")
    if external_url:
        resource.external_url = _clean_url(external_url)
    old_file = stored_path(resource) if (external_url and resource.stored_name) else None
    if external_url:
        resource.stored_name = resource.filename = resource.content_type = ""
        resource.size = 0

    def write():
        resource.updated_at = now()
        resource.save()
        new = _snapshot(resource)
        changed = sorted(k for k in new if new[k] != old[k])
        if changed:
            audit(
                "resource.updated",
                actor=actor,
                workspace=resource.workspace,
                obj=resource,
                old={k: old[k] for k in changed},
                new={k: new[k] for k in changed},
            )

    _save_with_file(resource, upload, write)
    if old_file is not None:
        old_file.unlink(missing_ok=True)
    return resource


@transaction.atomic
def do_bind_resource(form: Form, resource: Resource | None, *, actor: Actor) -> None:
    """Which resource a `resource` form gives (None: none, and the form has no public page)."""
    if resource is not None and resource.workspace_id != form.workspace_id:
        raise FormError("resource", "no such resource in this workspace", code="not_found")
    current = ResourceForm.objects.filter(form=form).first()
    if resource is None:
        if current is not None:
            current.delete()
    elif current is None:
        ResourceForm.objects.create(workspace=form.workspace, form=form, resource=resource)
    elif current.resource_id != resource.pk:
        current.resource = resource
        current.save(update_fields=["resource"])
    else:
        return
    audit(
        "form.resource_set",
        actor=actor,
        workspace=form.workspace,
        obj=form,
        new={"resource": resource.pk if resource else None},
    )


def resource_of(form: Form) -> Resource | None:
    binding = ResourceForm.objects.filter(form=form).select_related("resource").first()
    return binding.resource if binding else None


# -- links -----------------------------------------------------------------------------------


def make_download_token(grant_id: int) -> str:
    return signing.Signer(salt=_DOWNLOAD_SALT).sign(str(grant_id))


def read_download_token(token: str) -> int | None:
    try:
        value = signing.Signer(salt=_DOWNLOAD_SALT).unsign(str(token or ""))
    except signing.BadSignature:
        return None
    return int(value) if value.isdigit() and len(value) < 19 else None


def download_url(grant: ResourceGrant) -> str:
    return settings.BASE_URL + reverse("resource-download", args=[make_download_token(grant.pk)])


def at_once(form: Form) -> bool:
    """A form whose lists are all single opt-in offers the download on the page after
    submitting; one with a double opt-in list gives it only by mail (to the address's owner)."""
    return not form.lists.filter(optin=MailingList.OptIn.DOUBLE).exists()


LINK_TEXTS = {"en": "Download now", "de": "Jetzt herunterladen"}
MAIL_TEXTS = {
    "en": {
        "subject": "Your download: {title}",
        "body": "Here is the download you asked for: {title}\n\n{url}\n\n"
        "The link works until {until} (UTC). If you did not ask for it, ignore this message.",
    },
    "de": {
        "subject": "Ihr Download: {title}",
        "body": "Hier ist der Download, den Sie angefordert haben: {title}\n\n{url}\n\n"
        "Der Link gilt bis {until} (UTC). Wenn Sie ihn nicht angefordert haben, ignorieren Sie "
        "diese Nachricht.",
    },
}


def _no_braces(value: str) -> str:
    return value.replace("{", "(").replace("}", ")").replace("%", " ")


def _mail(grant: ResourceGrant, form: Form, subscriber: Subscriber) -> bool:
    """The delivery mail, a transactional message through the engine (so it is in the
    ledger). The title and link go in as template values, never into the template's source."""
    words = MAIL_TEXTS.get(form.language, MAIL_TEXTS["en"])
    try:
        with transaction.atomic():
            do_send_transactional(
                form.workspace,
                subscriber,
                actor=Actor.system(f"form {form.slug}"),
                # The subject is a template too: the title's braces cannot start a tag.
                subject=words["subject"].format(title=_no_braces(grant.resource.title)),
                body=words["body"].format(
                    title="{{ data.title }}", url="{{ data.url }}", until="{{ data.until }}"
                ),
                body_format="text",
                data={
                    "title": grant.resource.title,
                    "url": download_url(grant),
                    "until": grant.expires_at.strftime("%Y-%m-%d %H:%M"),
                },
            )
    except ActionError as exc:
        # Suppressed for a bounce or a complaint, or the workspace cannot send: the person
        # gets the same answer; the log tells the operator.
        logger.warning("form %s: no download mail could be queued: %s", form.pk, exc)
        return False
    return True


def give_resource(
    form: Form, submission: Submission, subscriber: Subscriber | None, *, may_mail: bool
) -> ResourceGrant | None:
    """Inside the submission's transaction: the grant of this submission, mailed to the
    subscriber when one may be mailed (at most once per resource and DELIVERY_HOURS for an
    address). Returns the grant, whose link the page shows at once on single opt-in forms."""
    resource = resource_of(form)
    if resource is None:
        return None
    stamp = now()
    if subscriber is not None:
        recent = (
            ResourceGrant.objects.filter(
                subscriber=subscriber,
                resource=resource,
                mailed=True,
                created_at__gt=stamp - timedelta(hours=DELIVERY_HOURS),
                expires_at__gt=stamp,
            )
            .order_by("-pk")
            .first()
        )
        if recent is not None:
            return recent
    grant = ResourceGrant.objects.create(
        workspace=form.workspace,
        resource=resource,
        subscriber=subscriber,
        form=form,
        created_at=stamp,
        expires_at=stamp + timedelta(days=resource.link_days),
    )
    if subscriber is not None and may_mail and _mail(grant, form, subscriber):
        grant.mailed = True
        grant.save(update_fields=["mailed"])
    return grant


# -- downloads -------------------------------------------------------------------------------


class LinkProblem(Exception):
    """A download link that gives nothing: `reason` is "invalid" or "expired"."""

    def __init__(self, reason: str, language: str = "en"):
        super().__init__(reason)
        self.reason = reason
        self.language = language  # the form's, when the link is known


def grant_for_token(token: str) -> ResourceGrant:
    grant_id = read_download_token(token)
    grant = (
        ResourceGrant.objects.select_related("resource", "subscriber", "form")
        .filter(pk=grant_id)
        .first()
        if grant_id is not None
        else None
    )
    if grant is None:
        raise LinkProblem("invalid")
    if grant.expires_at <= now():
        raise LinkProblem("expired", language_of_grant(grant))
    return grant


def language_of_grant(grant: ResourceGrant) -> str:
    return grant.form.language if grant.form is not None else "en"


@transaction.atomic
def do_record_download(grant: ResourceGrant) -> ResourceDownload:
    """One download through a valid link: a row naming who (when the link names someone), what
    and when. Not audited: a download is the person's own doing, kept as a fact like a click."""
    download = ResourceDownload.objects.create(
        workspace_id=grant.workspace_id,
        resource=grant.resource,
        subscriber=grant.subscriber,
    )
    if grant.subscriber_id is not None:
        facts.record_facts(
            [
                facts.Hit(
                    grant.workspace_id,
                    grant.subscriber_id,
                    FactKind.DOWNLOADED,
                    facts.object_key("resource", grant.resource_id),
                    download.downloaded_at,
                )
            ]
        )
    return download


def register_personal_data() -> None:
    """Export and erasure of a person's download links and downloads (signup/apps.py)."""
    from mailmarketer.audience import personal_data

    personal_data.register(
        ResourceDownload,
        section="resource_downloads",
        export=lambda subscriber: personal_data.rows_as_dicts(
            ResourceDownload.objects.filter(subscriber=subscriber).order_by("downloaded_at", "pk"),
            ["resource__title", "downloaded_at"],
        ),
    )
    personal_data.register(
        ResourceGrant,
        section="resource_links",
        export=lambda subscriber: personal_data.rows_as_dicts(
            ResourceGrant.objects.filter(subscriber=subscriber).order_by("created_at", "pk"),
            ["resource__title", "created_at", "expires_at", "mailed"],
        ),
    )
