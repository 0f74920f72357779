"""The reads of a form submission, two statements whatever the form (docs/forms.md,
"Performance"):

- `form_config`: the form with its workspace, notices, lists and proof-of-work settings. Each
  web process keeps the last one it built per form and, at most every FRESH_SECONDS (so a
  newsletter sign-up, spooled, mostly touches no database at all), checks it with one joined
  query that returns every column those objects were built from (form, workspace,
  protection, lists, the notices' hashes): any change to any of them (a staff edit, a list's
  opt-in, the workspace's privacy settings) gives different rows, and the objects are built
  again. Notices are immutable (a new text is a new row the form points at), so their hashes
  stand for their words. Nothing another process needs is kept here: an entry is used at
  most FRESH_SECONDS after it was last checked (longer only while the database cannot be
  reached), then rebuilt if anything changed.
- `submit_state`: what decides the submission for one address: its suppression, its
  subscriber and that subscriber's memberships of the form's lists, and the submissions
  counted by the per-IP and per-address limits, in one statement (left joins from a
  one-row base, two counted subqueries over their own indexes).

The cached objects are shared by the threads of a process: read them, never change them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.db import InterfaceError, OperationalError, connection

from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.models import (
    ConsentNotice,
    MailingList,
    Subscriber,
    Subscription,
    Suppression,
)
from mailmarketer.audience.subscribing import Known

from . import altcha, queries
from .models import Form, Submission
from .models_altcha import FormProtection

logger = logging.getLogger(__name__)

# Forms whose objects a process keeps; past it the cache starts again (a process serves a
# workspace's handful of forms; this only bounds a flood of distinct slugs, which are 404s
# and never cached anyway).
MAX_CACHED = 500


@dataclass(frozen=True)
class FormConfig:
    form: Form
    lists: list[MailingList]  # the form's lists, by name (what the page offers)
    protection: altcha.Protection

    def chosen(self, list_ids) -> list[MailingList]:
        """The form's lists among these ids, by id (what queries.form_lists returns)."""
        wanted = set(list_ids)
        return sorted((m for m in self.lists if m.pk in wanted), key=lambda m: m.pk)


# How long a checked entry is used without a new check: a staff edit reaches a web process
# (other than the one that made it, which forgets its entries at once) within this time.
FRESH_SECONDS = 2.0

_cache: dict[tuple[str, str], tuple[list[tuple], FormConfig, float]] = {}
_lock = threading.Lock()


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _fingerprint_sql() -> str:
    through = Form.lists.through
    return (
        f"SELECT f.*, w.*, p.*, n.sha256, t.sha256, l.* "  # noqa: S608 - identifiers from the models
        f"FROM {_table(Form)} f "
        f"JOIN {_table(Workspace)} w ON w.id = f.workspace_id "
        f"JOIN {_table(ConsentNotice)} n ON n.id = f.notice_id "
        f"LEFT JOIN {_table(ConsentNotice)} t ON t.id = f.tracking_notice_id "
        f"LEFT JOIN {_table(FormProtection)} p ON p.workspace_id = w.id "
        f"LEFT JOIN {_table(through)} fl ON fl.form_id = f.id "
        f"LEFT JOIN {_table(MailingList)} l ON l.id = fl.mailinglist_id "
        "WHERE w.slug = %s AND f.slug = %s ORDER BY l.name, l.id"
    )


def _digest_sql() -> str:
    """PostgreSQL: the same rows, as one digest of their text. The server hashes the row
    values (text forms of every column, in the same order) instead of the web process
    decoding some sixty columns per post: a tenth of a sign-up's CPU in the web process
    (profiled). None when the form is not found (no rows: the aggregate is NULL)."""
    inner = _fingerprint_sql().replace(
        "SELECT f.*, w.*, p.*, n.sha256, t.sha256, l.* ",
        "SELECT md5(string_agg(ROW(f.*, w.*, p.*, n.sha256, t.sha256, l.*)::text, ',' "
        "ORDER BY l.name, l.id)) ",
    )
    return inner.removesuffix(" ORDER BY l.name, l.id")


def form_config(workspace_slug: str, form_slug: str) -> FormConfig | None:
    """The form's objects, checked against the database by one query at most every
    FRESH_SECONDS; None for no such form. When the check cannot reach the database, the
    objects last built are used (a newsletter sign-up is then still answered and spooled)."""
    key = (workspace_slug, form_slug)
    cached = _cache.get(key)
    if cached is not None and time.monotonic() - cached[2] < FRESH_SECONDS:
        return cached[1]
    postgres = connection.vendor == "postgresql"
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                _digest_sql() if postgres else _fingerprint_sql(), [workspace_slug, form_slug]
            )
            rows = cursor.fetchall()
    except (OperationalError, InterfaceError):
        if cached is None:
            raise
        logger.warning(
            "form %s/%s: the database is unreachable: its cached objects serve",
            workspace_slug,
            form_slug,
        )
        return cached[1]
    if not rows or rows == [(None,)]:
        return None
    if cached is not None and cached[0] == rows:
        with _lock:
            _cache[key] = (rows, cached[1], time.monotonic())
        return cached[1]
    form = queries.public_form(workspace_slug, form_slug)
    if form is None:  # deleted between the two reads
        return None
    config = FormConfig(
        form=form,
        lists=queries.offered_lists(form),
        protection=altcha.protection_for(form.workspace),
    )
    # Built after the rows were read: if it is newer than them, the next request's rows differ
    # and it is built again; it is never older than what it is kept under.
    with _lock:
        if len(_cache) >= MAX_CACHED:
            _cache.clear()
        _cache[key] = (rows, config, time.monotonic())
    return config


def forget_forms(*args, **kwargs) -> None:
    """Empties this process's cache: after any change to what it is built from made in this
    process (signal receivers, signup/apps.py), and for tests that start cold."""
    with _lock:
        _cache.clear()


@dataclass(frozen=True)
class SubmitState:
    known: Known
    from_ip: int = 0  # accepted submissions from the IP within the limits' window
    for_address: int = 0  # ... and for the address
    name: str = ""  # the subscriber's name and attributes, when there is one
    attributes: dict = field(default_factory=dict)


def submit_state(
    workspace_id: int,
    *,
    email_key: str,
    email_hash: str,
    ip_key: str,
    since,
    list_ids: list[int],
) -> SubmitState:
    """What decides one submission, in one statement (see the module docstring)."""
    since = connection.ops.adapt_datetimefield_value(since)
    marks = ", ".join(["%s"] * len(list_ids)) or "NULL"
    sql = (
        "SELECT sup.reason, s.id, s.status, s.uuid, s.name, s.attributes, "  # noqa: S608 - identifiers from the models
        "m.mailing_list_id, m.status, "
        f"(SELECT COUNT(*) FROM {_table(Submission)} WHERE workspace_id = %s AND ip_key = %s "
        "AND created_at >= %s), "
        f"(SELECT COUNT(*) FROM {_table(Submission)} WHERE workspace_id = %s "
        "AND email_hash = %s AND created_at >= %s) "
        "FROM (SELECT 1 AS one) base "
        f"LEFT JOIN {_table(Suppression)} sup ON sup.workspace_id = %s AND sup.email_hash = %s "
        f"LEFT JOIN {_table(Subscriber)} s ON s.workspace_id = %s AND s.email_key = %s "
        f"LEFT JOIN {_table(Subscription)} m ON m.subscriber_id = s.id "
        f"AND m.mailing_list_id IN ({marks})"
    )
    params = [
        workspace_id,
        ip_key,
        since,
        workspace_id,
        email_hash,
        since,
        workspace_id,
        email_hash,
        workspace_id,
        email_key,
        *list_ids,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    first = rows[0]
    reason, sid, status, uid, name, attributes = first[:6]
    memberships = {row[6]: row[7] for row in rows if row[6] is not None}
    if uid is not None and not isinstance(uid, uuid.UUID):
        uid = uuid.UUID(uid)
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    return SubmitState(
        known=Known(
            subscriber_id=sid,
            status=status or "",
            uuid=uid,
            suppressed=reason,
            memberships=memberships,
        ),
        from_ip=first[8],
        for_address=first[9],
        name=name or "",
        attributes=attributes or {},
    )
