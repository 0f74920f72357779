"""The local outbox: with no MM_SMTP_URL, every message is written to `var/outbox/` as an .eml
file, so a newcomer sees every message the system sends without configuring a relay.

Files are named `<UTC timestamp>-<random>.eml` and written atomically (temporary file, then
rename), so a reader never sees half a message; 0600 in 0700 directories (lib/datafiles.py).
The Outbox page reads them back.

The outbox is scoped like everything else: mail sent on behalf of a workspace (invitations, later
campaigns) goes to `ws-<workspace id>/` and is shown only in that workspace; mail to one staff
member that belongs to no workspace (password resets) goes to `system/` and is shown only to the
person it was sent to. A message carries its scope as an attribute of the Django message object
(`outbox_scope`), never as a header, so nothing about it leaks when a real relay is configured.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

from .datafiles import open_private, private_dir

_NAME_OK = set("0123456789abcdefghijklmnopqrstuvwxyzT-.")


def outbox_dir() -> Path:
    return Path(settings.OUTBOX_DIR)


SYSTEM_SCOPE = "system"


def workspace_scope(workspace_id: int) -> str:
    return f"ws-{int(workspace_id)}"


@dataclass(frozen=True)
class Viewer:
    """Who is reading: the outbox of this workspace, plus system mail addressed to this email."""

    workspace_id: int
    email: str


def write_message(raw: bytes, scope: str = SYSTEM_SCOPE) -> str:
    """Store one message; returns its id (the file name without .eml)."""
    private_dir(outbox_dir())
    directory = private_dir(outbox_dir() / scope)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    message_id = f"{stamp}-{secrets.token_hex(4)}"
    tmp = directory / f".{message_id}.tmp"
    with open_private(tmp, "xb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.rename(directory / f"{message_id}.eml")
    return message_id


class OutboxBackend(BaseEmailBackend):
    """Django email backend writing each message to the outbox."""

    def send_messages(self, email_messages):
        count = 0
        for message in email_messages:
            scope = getattr(message, "outbox_scope", SYSTEM_SCOPE)
            write_message(message.message().as_bytes(linesep="\r\n"), scope)
            count += 1
        return count


@dataclass
class OutboxEntry:
    id: str
    to: str
    subject: str
    sent_at: datetime
    size: int


def _parse(path: Path) -> EmailMessage:
    with path.open("rb") as fh:
        return BytesParser(policy=policy.default).parse(fh)


def _addressed_to(path: Path, email: str) -> bool:
    try:
        message = _parse(path)
    except OSError:
        return False
    return any(
        address.addr_spec.lower() == email.lower()
        for address in getattr(message.get("To"), "addresses", ())
    )


def _visible_paths(viewer: Viewer | None) -> list[Path]:
    """Every message the viewer may see, newest first (None: an operator sees everything)."""
    root = outbox_dir()
    if not root.is_dir():
        return []
    if viewer is None:
        paths = list(root.glob("*/*.eml"))
    else:
        paths = list((root / workspace_scope(viewer.workspace_id)).glob("*.eml"))
        paths += [
            path
            for path in (root / SYSTEM_SCOPE).glob("*.eml")
            if _addressed_to(path, viewer.email)
        ]
    return sorted(paths, key=lambda path: path.name, reverse=True)


def list_messages(
    limit: int = 200, offset: int = 0, viewer: Viewer | None = None
) -> tuple[list[OutboxEntry], int]:
    """Newest first, with the total count."""
    paths = _visible_paths(viewer)
    entries = []
    for path in paths[offset : offset + limit]:
        try:
            message = _parse(path)
            size = path.stat().st_size
        except OSError:
            continue  # removed meanwhile
        entries.append(
            OutboxEntry(
                id=path.name[:-4],
                to=str(message.get("To", "")),
                subject=str(message.get("Subject", "")),
                sent_at=datetime.strptime(path.name[:22], "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC),
                size=size,
            )
        )
    return entries, len(paths)


def get_message(message_id: str, viewer: Viewer | None = None) -> EmailMessage | None:
    # The id comes from a URL: accept only the shape we generate, so no path can be smuggled in.
    if not message_id or not set(message_id) <= _NAME_OK or message_id.startswith("."):
        return None
    root = outbox_dir()
    name = f"{message_id}.eml"
    if viewer is None:
        candidates = list(root.glob(f"*/{name}")) if root.is_dir() else []
    else:
        candidates = [root / workspace_scope(viewer.workspace_id) / name]
        system = root / SYSTEM_SCOPE / name
        if system.is_file() and _addressed_to(system, viewer.email):
            candidates.append(system)
    for path in candidates:
        if path.is_file():
            return _parse(path)
    return None


def message_parts(message: EmailMessage) -> tuple[str | None, str | None]:
    """(text, html) bodies of a message."""
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    text = text_part.get_content() if text_part is not None else None
    html = html_part.get_content() if html_part is not None else None
    return text, html


def _names(message: EmailMessage, needle: str) -> bool:
    """Whether the message names the address (lower-cased `needle`) in a header or a text part,
    as decoded: an encoded header or a quoted-printable body hides it from a byte search."""
    texts = [str(value) for value in message.values()]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            try:
                texts.append(part.get_content())
            except (LookupError, ValueError):  # an unknown charset: the raw payload then
                texts.append(str(part.get_payload()))
    return any(needle in text.lower() for text in texts)


def remove_messages_naming(scope: str, address: str) -> int:
    """Erasure reaching the outbox: deletes every message of the scope (a workspace's mail)
    that names the address, as recipient or anywhere in its text; returns how many. Reads each
    message of the scope: the outbox is what an installation without a relay keeps, not a
    mail store."""
    directory = outbox_dir() / scope
    if not directory.is_dir():
        return 0
    needle = address.lower()
    removed = 0
    for path in directory.glob("*.eml"):
        try:
            message = _parse(path)
        except OSError:
            continue  # removed meanwhile
        if _names(message, needle):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def count_messages(viewer: Viewer | None = None) -> int:
    return len(_visible_paths(viewer))
