"""The local outbox: with no MM_SMTP_URL, every message is written to `var/outbox/` as an .eml
file, so a newcomer sees every message the system sends without configuring a relay.

Files are named `<UTC timestamp>-<random>.eml` and written atomically (temporary file, then
rename), so a reader never sees half a message. The Outbox page reads them back.
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

_NAME_OK = set("0123456789abcdefghijklmnopqrstuvwxyzT-.")


def outbox_dir() -> Path:
    return Path(settings.OUTBOX_DIR)


def write_message(raw: bytes) -> str:
    """Store one message; returns its id (the file name without .eml)."""
    directory = outbox_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    message_id = f"{stamp}-{secrets.token_hex(4)}"
    tmp = directory / f".{message_id}.tmp"
    with tmp.open("wb") as fh:
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
            write_message(message.message().as_bytes(linesep="\r\n"))
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


def list_messages(limit: int = 200, offset: int = 0) -> tuple[list[OutboxEntry], int]:
    """Newest first, with the total count."""
    directory = outbox_dir()
    if not directory.is_dir():
        return [], 0
    names = sorted((p.name for p in directory.glob("*.eml")), reverse=True)
    entries = []
    for name in names[offset : offset + limit]:
        path = directory / name
        try:
            message = _parse(path)
            size = path.stat().st_size
        except OSError:
            continue  # removed meanwhile
        entries.append(
            OutboxEntry(
                id=name[:-4],
                to=str(message.get("To", "")),
                subject=str(message.get("Subject", "")),
                sent_at=datetime.strptime(name[:22], "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC),
                size=size,
            )
        )
    return entries, len(names)


def get_message(message_id: str) -> EmailMessage | None:
    # The id comes from a URL: accept only the shape we generate, so no path can be smuggled in.
    if not message_id or not set(message_id) <= _NAME_OK or message_id.startswith("."):
        return None
    path = outbox_dir() / f"{message_id}.eml"
    if not path.is_file():
        return None
    return _parse(path)


def message_parts(message: EmailMessage) -> tuple[str | None, str | None]:
    """(text, html) bodies of a message."""
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    text = text_part.get_content() if text_part is not None else None
    html = html_part.get_content() if html_part is not None else None
    return text, html


def count_messages() -> int:
    directory = outbox_dir()
    return sum(1 for _ in directory.glob("*.eml")) if directory.is_dir() else 0
