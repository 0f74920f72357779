"""The bounce mailbox: a workspace's IMAP folder that bounces and complaints are delivered to,
read by the worker.

`poll_one()` (a worker duty) claims the mailbox polled longest ago (not within
BOUNCE_IMAP_INTERVAL_S) with a compare-and-set on its poll time, so two workers never read one
mailbox at once, and `poll(mailbox)` reads up to BATCH messages of its folder:
- each message is applied (apply.do_process_bounce with the mailbox's workspace: a token of
  another workspace is refused) and committed before it is moved to `move_to` (created when
  missing) or deleted, so a crash between the two reads it again next time, and the digest
  makes that a no-op;
- TLS verifies the server's certificate against the system's store (or MM_BOUNCE_IMAP_CA_FILE)
  unless the staff turned verification off; a server without STARTTLS when it was asked for is
  an error, never a fallback to clear text;
- what went wrong (login refused, certificate not trusted, server unreachable) is kept on the
  mailbox for the staff (`last_error`), never raised out of the worker.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import ssl
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils.timezone import now

from .apply import do_process_bounce
from .models import Bounce, BounceMailbox

logger = logging.getLogger(__name__)

BATCH = 100
TIMEOUT_S = 20
_UID = re.compile(rb"UID (\d+)")


class MailboxError(Exception):
    pass


def _quoted(folder: str) -> str:
    if any(c in folder for c in "\r\n\0") or len(folder) > 200:
        raise MailboxError(f"invalid folder name {folder!r}")
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _context(mailbox: BounceMailbox) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.BOUNCE_IMAP_CA_FILE or None)
    if not mailbox.verify_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(mailbox: BounceMailbox) -> imaplib.IMAP4:
    try:
        if mailbox.tls_mode == BounceMailbox.TlsMode.IMPLICIT:
            imap = imaplib.IMAP4_SSL(
                mailbox.host, mailbox.port, ssl_context=_context(mailbox), timeout=TIMEOUT_S
            )
        else:
            imap = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=TIMEOUT_S)
            if mailbox.tls_mode == BounceMailbox.TlsMode.STARTTLS:
                if "STARTTLS" not in imap.capabilities:
                    imap.shutdown()
                    raise MailboxError("the server does not offer STARTTLS")
                imap.starttls(ssl_context=_context(mailbox))
        imap.login(mailbox.username, mailbox.password)
    except ssl.SSLCertVerificationError as exc:
        raise MailboxError(
            f"TLS certificate of {mailbox.host} not trusted: {exc.verify_message}"
        ) from None
    except ssl.SSLError as exc:
        raise MailboxError(f"TLS failed: {exc.reason or exc}") from None
    except imaplib.IMAP4.error as exc:
        raise MailboxError(f"login refused: {_text(exc)}") from None
    except (TimeoutError, OSError) as exc:
        raise MailboxError(f"cannot connect to {mailbox.host}:{mailbox.port}: {exc}") from None
    return imap


def poll(mailbox: BounceMailbox) -> int:
    """Apply up to BATCH messages of the mailbox's folder; returns how many were processed."""
    imap = connect(mailbox)
    try:
        status, _ = imap.select(_quoted(mailbox.folder))
        if status != "OK":
            raise MailboxError(f"no folder {mailbox.folder!r}")
        status, data = imap.uid("SEARCH", None, "ALL")
        if status != "OK":
            raise MailboxError("the server refused to list the folder")
        uids = (data[0] or b"").split()[:BATCH]
        if uids and mailbox.after == BounceMailbox.After.MOVE:
            imap.create(_quoted(mailbox.move_to))  # "already exists" is fine
        can_move = b"MOVE" in b" ".join(c.encode() for c in imap.capabilities)
        done = 0
        for uid in uids:
            status, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((p[1] for p in parts or [] if isinstance(p, tuple)), None)
            if status != "OK" or raw is None:
                continue
            do_process_bounce(raw, channel=Bounce.Channel.IMAP, workspace=mailbox.workspace)
            _dispose(imap, uid, mailbox, can_move)
            done += 1
        if mailbox.after == BounceMailbox.After.DELETE or not can_move:
            imap.expunge()
        return done
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()


def _dispose(imap, uid: bytes, mailbox: BounceMailbox, can_move: bool) -> None:
    if mailbox.after == BounceMailbox.After.MOVE:
        if can_move:
            status, _ = imap.uid("MOVE", uid, _quoted(mailbox.move_to))
            if status == "OK":
                return
        status, _ = imap.uid("COPY", uid, _quoted(mailbox.move_to))
        if status != "OK":
            raise MailboxError(f"cannot copy to {mailbox.move_to!r}")
    imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")


def poll_one() -> bool:
    """Worker duty: poll the enabled mailbox that waited longest, if one is due."""
    due = now() - timedelta(seconds=settings.BOUNCE_IMAP_INTERVAL_S)
    candidate = (
        BounceMailbox.objects.filter(enabled=True)
        .filter(Q(last_polled_at__isnull=True) | Q(last_polled_at__lt=due))
        .order_by("last_polled_at", "id")
        .select_related("workspace")
        .first()
    )
    if candidate is None:
        return False
    stamp = now()
    claimed = BounceMailbox.objects.filter(
        pk=candidate.pk, last_polled_at=candidate.last_polled_at
    ).update(last_polled_at=stamp)
    if not claimed:
        return True  # another worker got there first
    error, count = "", 0
    try:
        count = poll(candidate)
    except MailboxError as exc:
        error = str(exc)
    except (imaplib.IMAP4.error, OSError) as exc:
        error = f"the server broke off: {_text(exc)}"
    # A full batch means more is waiting: due again at once rather than in an interval.
    BounceMailbox.objects.filter(pk=candidate.pk).update(
        last_error=error[:500],
        last_count=count,
        last_polled_at=stamp - timedelta(seconds=settings.BOUNCE_IMAP_INTERVAL_S)
        if count >= BATCH
        else stamp,
    )
    if error:
        logger.warning("bounce mailbox %s: %s", candidate.pk, error)
    return True


def _text(exc) -> str:
    value = exc.args[0] if exc.args else exc
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value).split())[:300]
