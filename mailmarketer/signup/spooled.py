"""Sign-ups through the spool (docs/forms.md, "Stored by the worker"): a newsletter form's
answer never depends on the database (the same thanks whoever the address is: no
enumeration), so the edge does every check it can without the database, appends the whole
submission to a group-committed spool file (lib/group_spool.py, `signup-` files) and answers
once the line is on disk; the worker duty `ingest_signup_one` stores it a moment later through
the same `actions.do_submit_form` as every other submission.

The edge (`accept`, called by views_public._submit after the form's checks): the form, its
lists and notices come from the per-process cache (queries_submit.form_config); the origin, the
token, the honeypot, the fields and the ALTCHA solution are checked as on the transactional
path; a per-process memory refuses a challenge this process has seen spent and counts
submissions per IP and per address (a first, cheap line: the authoritative limits are counted
in the database at ingestion). Then one line: the form, the notice version and its words' hash
as shown, the person's fields, the lists, the page, the IP's keyed hash (the IP and user agent
only when the workspace keeps them), the time, and the solved challenge.

The worker (`ingest_signup_one`): in one transaction, under the lock row, up to BATCH lines
past the file's mark, each in a savepoint through do_submit_form with the time it was sent:
the challenge is spent there (a replay, whichever process answered it, is dropped and
counted), the per-IP and per-address limits are counted (over them: dropped and counted), the
subscriber, subscriptions, consent records, submission and audit row are written, and double
opt-in confirmation mails are queued under the list-bombing limits. The mark moves in the
same transaction: a worker killed anywhere stores each line once.
"""

from __future__ import annotations

import collections
import copy
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db import DatabaseError, DataError, IntegrityError, connection
from django.db.models import Count
from django.utils.timezone import now

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience.actions import ConsentSource
from mailmarketer.audience.emails import email_key, suppression_hash
from mailmarketer.audience.models import (
    ConsentNotice,
    ConsentRecord,
    MailingList,
    Subscriber,
    Subscription,
    Suppression,
)
from mailmarketer.audience.subscribing import (
    NewPerson,
    Person,
    plain_profile,
    subscribe_new_people,
)
from mailmarketer.lib import group_spool

from . import altcha, limits
from .actions import (
    AUDIT_COLUMNS,
    SUBMISSION_COLUMNS,
    Blocked,
    Visit,
    _name_parts,
    do_submit_form,
)
from .fields import Submitted
from .models import Form, Submission
from .models_spool import SpoolMark

logger = logging.getLogger("mailmarketer.signup")

PREFIX = "signup-"
BATCH = 500
LOCK = "lock"
VERSION = 1

spool = group_spool.GroupSpool(PREFIX)

# What ingestion dropped, by reason, in this process (the log says each one too).
dropped: collections.Counter = collections.Counter()


def takes(form: Form) -> bool:
    """Whether a submission of this form goes through the spool: newsletter forms, whose
    answer is the same whatever the database holds. Webinars (seats), resources (a download
    link at once) and evaluation requests stay on the transactional path."""
    return form.kind == Form.Kind.NEWSLETTER


class _Memory:
    """This process's first line against floods and replays; bounded, never authoritative."""

    MAX_KEYS = 100_000

    def __init__(self):
        self.lock = threading.Lock()
        self.spent: dict[str, float] = {}  # challenge -> its expiry (unix time)
        self.seen: dict[str, collections.deque] = {}

    def forget(self) -> None:
        with self.lock:
            self.spent.clear()
            self.seen.clear()

    def check(self, *, challenge: str | None, expires: float, keys: list[tuple[str, int]]):
        """Raises AltchaRefused for a challenge spent here, Blocked over a limit; else counts
        the submission."""
        clock = time.time()
        with self.lock:
            if challenge is not None and challenge in self.spent:
                raise altcha.AltchaRefused("altcha_used")
            window = limits.WINDOW.total_seconds()
            for key, limit in keys:
                stamps = self.seen.get(key)
                if stamps is None:
                    continue
                while stamps and stamps[0] <= clock - window:
                    stamps.popleft()
                if len(stamps) >= limit:
                    raise Blocked("too_many")
            if len(self.seen) >= self.MAX_KEYS:
                self.seen.clear()
            if len(self.spent) >= self.MAX_KEYS:
                self.spent = {c: e for c, e in self.spent.items() if e > clock}
                if len(self.spent) >= self.MAX_KEYS:
                    self.spent.clear()
            for key, _ in keys:
                self.seen.setdefault(key, collections.deque()).append(clock)
            if challenge is not None:
                self.spent[challenge] = expires


memory = _Memory()


def accept(
    form: Form,
    submitted: Submitted,
    visit: Visit,
    *,
    solved: altcha.Solved | None,
    lists: list[MailingList],
) -> None:
    """Spools one checked submission (synced before this returns). Raises Blocked or
    AltchaRefused (nothing spooled), OSError when the spool cannot take it."""
    email_hash = suppression_hash(submitted.email)
    ip_key = limits.ip_key(visit.ip)
    memory.check(
        challenge=solved.challenge if solved else None,
        expires=solved.expires_at.timestamp() if solved else 0,
        # Per workspace, as the limits are counted in the database.
        keys=[
            (f"i{form.workspace_id}:{ip_key}", limits.PER_IP),
            (f"e{form.workspace_id}:{email_hash}", limits.PER_ADDRESS),
        ],
    )
    keep = form.workspace.consent_store_ip
    record = {
        "v": VERSION,
        "ws": form.workspace_id,
        "f": form.pk,
        "n": form.notice_id,
        "nh": form.notice.sha256,
        "tn": form.tracking_notice_id if submitted.tracking else None,
        "e": submitted.email,
        "nm": submitted.name,
        "a": submitted.attributes,
        "l": [m.pk for m in lists],
        "tr": bool(submitted.tracking),
        "pu": submitted.page_url,
        "via": visit.via,
        "ik": ip_key,
        "ip": visit.ip if keep else None,
        "ua": visit.user_agent[:400] if keep else "",
        "rf": visit.referrer[:500],
        "at": now().isoformat(),
        "ch": [solved.challenge, solved.expires_at.isoformat()] if solved else None,
    }
    spool.append(record)


# -- the worker's side -------------------------------------------------------------------------


def _lock() -> None:
    SpoolMark.objects.get_or_create(name=LOCK)
    SpoolMark.objects.select_for_update().get(name=LOCK)


def _mark_name(path: Path) -> str:
    return "s:" + path.name.removeprefix(PREFIX).removesuffix(".jsonl")


class _Forms:
    """The forms, notices and lists a batch names, each read once."""

    def __init__(self):
        self.forms: dict[int, Form | None] = {}
        self.notices: dict[int, ConsentNotice | None] = {}
        self.lists: dict[int, MailingList | None] = {}

    def form(self, record: dict) -> Form | None:
        """The form as the person saw it: its notice (and tracking notice) the versions the
        page showed, even if the form points at newer words by now."""
        form_id = record["f"]
        if form_id not in self.forms:
            self.forms[form_id] = (
                Form.objects.filter(pk=form_id, workspace_id=record["ws"])
                .select_related("workspace", "notice", "tracking_notice")
                .first()
            )
        form = self.forms[form_id]
        if form is None:
            return None
        notice, tracking = record["n"], record.get("tn")
        if form.notice_id == notice and (tracking is None or form.tracking_notice_id == tracking):
            return form
        shown = copy.copy(form)
        shown.notice = self.notice(notice, form.workspace_id)
        if shown.notice is None:
            return None
        if tracking is not None:
            shown.tracking_notice = self.notice(tracking, form.workspace_id)
        return shown

    def notice(self, notice_id: int, workspace_id: int) -> ConsentNotice | None:
        if notice_id not in self.notices:
            self.notices[notice_id] = ConsentNotice.objects.filter(
                pk=notice_id, workspace_id=workspace_id
            ).first()
        return self.notices[notice_id]

    def chosen(self, record: dict) -> list[MailingList]:
        missing = [i for i in record["l"] if i not in self.lists]
        if missing:
            found = {m.pk: m for m in MailingList.objects.filter(pk__in=missing)}
            for list_id in missing:
                self.lists[list_id] = found.get(list_id)
        return [
            m
            for m in (self.lists[i] for i in sorted(record["l"]))
            if m is not None and m.workspace_id == record["ws"]
        ]


def _drop(reason: str, path: Path, record: dict) -> None:
    dropped[reason] += 1
    logger.warning(
        "signup spool %s: a submission to form %s dropped: %s", path.name, record.get("f"), reason
    )


@dataclass
class _Item:
    """One spooled sign-up, read back: what do_submit_form takes."""

    record: dict
    form: Form
    lists: list[MailingList]
    submitted: Submitted
    visit: Visit
    at: datetime
    challenge: tuple[str, datetime] | None
    email_key: str = ""
    email_hash: str = ""


def _item(record: dict, forms: _Forms, path: Path) -> _Item | None:
    form = forms.form(record)
    if form is None:
        _drop("form_gone", path, record)
        return None
    if form.notice.sha256 != record["nh"]:
        _drop("notice_changed", path, record)  # cannot happen: notices are immutable
        return None
    lists = forms.chosen(record)
    if record["l"] and not lists:
        _drop("lists_gone", path, record)
        return None
    submitted = Submitted(
        email=record["e"],
        name=record["nm"],
        attributes=record["a"],
        lists=[m.pk for m in lists],
        page_url=record["pu"],
        tracking=bool(record["tr"]) and form.tracking_notice_id is not None,
    )
    visit = Visit(
        via=record["via"],
        ip=record["ip"],
        user_agent=record["ua"],
        referrer=record["rf"],
        ip_key=record["ik"],
    )
    challenge = None
    if record["ch"]:
        challenge = (str(record["ch"][0]), datetime.fromisoformat(record["ch"][1]))
    item = _Item(
        record, form, lists, submitted, visit, datetime.fromisoformat(record["at"]), challenge
    )
    item.email_key, item.email_hash = email_key(submitted.email), suppression_hash(submitted.email)
    return item


def _spend(items: list[_Item], path: Path) -> list[_Item]:
    """Spends every challenge of the batch in one statement; the sign-ups whose challenge was
    spent before (by any process) or earlier in this batch are dropped."""
    seen: set[str] = set()
    rows = []
    for item in items:
        if item.challenge and item.challenge[0] not in seen:
            seen.add(item.challenge[0])
            rows.append((item.form.workspace_id, *item.challenge, now()))
    spent: set[str] = set()
    if rows:
        marks = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO signup_solvedchallenge (workspace_id, challenge, expires_at, "  # noqa: S608 - marks only
                f"created_at) VALUES {marks} ON CONFLICT (challenge) DO NOTHING "
                "RETURNING challenge",
                [
                    connection.ops.adapt_datetimefield_value(v) if isinstance(v, datetime) else v
                    for row in rows
                    for v in row
                ],
            )
            spent = {c for (c,) in cursor.fetchall()}
    kept = []
    for item in items:
        if item.challenge is None:
            kept.append(item)
        elif item.challenge[0] in spent:
            spent.discard(item.challenge[0])  # good for this one sign-up only
            kept.append(item)
        else:
            _drop("altcha_replayed", path, item.record)
    return kept


def _fast(item: _Item) -> bool:
    """A sign-up subscribe_new_people can store, if its address is new: a newsletter form's,
    to single opt-in lists only, with a profile stored as typed."""
    return (
        item.form.kind == Form.Kind.NEWSLETTER
        and bool(item.lists)
        and all(m.optin == MailingList.OptIn.SINGLE for m in item.lists)
        and plain_profile(_person(item))
    )


def _person(item: _Item) -> Person:
    submitted = item.submitted
    return Person.of(
        submitted.email,
        submitted.name.strip(),
        submitted.attributes,
        **_name_parts(submitted.attributes),
    )


def _store_new(items: list[_Item], path: Path) -> list[_Item]:
    """Stores the new addresses' sign-ups of the batch set-based (a fixed number of statements
    whatever their number); returns the others, for the general path one by one."""
    candidates, rest, taken = [], [], set()
    for item in items:
        key = (item.form.workspace_id, item.email_key)
        if _fast(item) and key not in taken:
            taken.add(key)
            candidates.append(item)
        else:
            rest.append(item)
    if not candidates:
        return rest
    workspaces = {i.form.workspace_id for i in candidates}
    known = set(
        Subscriber.objects.filter(
            workspace_id__in=workspaces, email_key__in=[i.email_key for i in candidates]
        ).values_list("workspace_id", "email_key")
    )
    suppressed = set(
        Suppression.objects.filter(
            workspace_id__in=workspaces, email_hash__in=[i.email_hash for i in candidates]
        ).values_list("workspace_id", "email_hash")
    )
    new = []
    for item in candidates:
        ws = item.form.workspace_id
        if (ws, item.email_key) in known or (ws, item.email_hash) in suppressed:
            rest.append(item)
        else:
            new.append(item)
    new = _within_limits(new, path)
    for workspace_id in sorted({i.form.workspace_id for i in new}):
        mine = [i for i in new if i.form.workspace_id == workspace_id]
        workspace = mine[0].form.workspace
        created = subscribe_new_people(
            workspace,
            [
                NewPerson(
                    _person(item),
                    item.lists,
                    _source(item).terms(
                        reason=Subscription.Reason.BY_SUBSCRIBER,
                        notice_id=item.form.notice_id,
                        created_as=Subscriber.Source.FORM,
                    ),
                    item.at,
                    item.form.tracking_notice_id if item.submitted.tracking else None,
                )
                for item in mine
            ],
        )
        stored = [i for i in mine if i.email_key in created]
        rest.extend(i for i in mine if i.email_key not in created)  # created meanwhile
        _insert_submissions(stored, created)
    return rest


def _source(item: _Item) -> ConsentSource:
    return ConsentSource(
        type=ConsentRecord.SourceType.FORM,
        id=str(item.form.pk),
        label=f"Form: {item.form.name}",
        ip=item.visit.ip,
        user_agent=item.visit.user_agent,
    )


def _within_limits(items: list[_Item], path: Path) -> list[_Item]:
    """The per-IP and per-address limits, counted in the database (two statements for the
    batch) and along the batch; the sign-ups over them are dropped."""
    if not items:
        return []
    since = min(i.at for i in items) - limits.WINDOW
    workspaces = {i.form.workspace_id for i in items}
    recent = Submission.objects.filter(workspace_id__in=workspaces, created_at__gte=since)
    by_ip = collections.Counter(
        {
            (w, k): n
            for w, k, n in recent.filter(ip_key__in={i.visit.ip_key for i in items})
            .values_list("workspace_id", "ip_key")
            .annotate(n=Count("id"))
        }
    )
    by_address = collections.Counter(
        {
            (w, h): n
            for w, h, n in recent.filter(email_hash__in={i.email_hash for i in items})
            .values_list("workspace_id", "email_hash")
            .annotate(n=Count("id"))
        }
    )
    kept = []
    for item in items:
        ip, address = (
            (item.form.workspace_id, item.visit.ip_key),
            (item.form.workspace_id, item.email_hash),
        )
        if limits.over(by_ip[ip], by_address[address]):
            _drop("over_limit", path, item.record)
            continue
        by_ip[ip] += 1
        by_address[address] += 1
        kept.append(item)
    return kept


def _insert_submissions(items: list[_Item], created: dict) -> None:
    """The submissions and their audit rows `form.submitted`, one statement each."""
    if not items:
        return
    postgres = connection.vendor == "postgresql"
    qn = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    rows, audits = [], []
    for item in items:
        subscriber_id, uid = created[item.email_key]
        keep = item.form.workspace.consent_store_ip
        stamp = adapt(item.at)
        tracking = bool(item.submitted.tracking)
        value = {
            "workspace_id": item.form.workspace_id,
            "form_id": item.form.pk,
            "subscriber_id": subscriber_id,
            "notice_id": item.form.notice_id,
            "email_hash": item.email_hash,
            "ip_key": item.visit.ip_key,
            "ip": item.visit.ip if keep else None,
            "user_agent": item.visit.user_agent[:400] if keep else "",
            "page_url": item.submitted.page_url[:500],
            "referrer": item.visit.referrer[:500],
            "name": "",
            "via": item.visit.via,
            "tracking": tracking,
            "outcome": Submission.Outcome.SUBSCRIBED,
            "created_at": stamp,
        }
        rows.append([value[c] for c in SUBMISSION_COLUMNS])
        new = {
            "subscriber": str(uid),
            "outcome": str(Submission.Outcome.SUBSCRIBED),
            "via": item.visit.via,
            "created": True,
            "lists": [m.slug for m in item.lists],
            **({"tracking_consent": "grant"} if tracking else {}),
        }
        audits.append(
            [
                stamp,
                item.form.workspace_id,
                Actor.system(f"form {item.form.slug}").label[:200],
                "form.submitted",
                item.form._meta.model_name,
                str(item.form.pk),
                str(item.form)[:200],
                json.dumps(new),
            ]
        )
    for model, columns, values, casts in (
        (Submission, SUBMISSION_COLUMNS, rows, {"ip": "inet"}),
        (AuditEvent, AUDIT_COLUMNS, audits, {"new": "jsonb"}),
    ):
        mark = ", ".join(
            f"CAST(%s AS {casts[c]})" if postgres and c in casts else "%s" for c in columns
        )
        sql = (
            f"INSERT INTO {qn(model._meta.db_table)} "  # noqa: S608 - identifiers from the models
            f"({', '.join(map(qn, columns))}) VALUES {', '.join([f'({mark})'] * len(values))}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [v for row in values for v in row])


def _store_one(item: _Item, path: Path) -> None:
    """The general path for one sign-up (its challenge already spent by _spend)."""
    try:
        # Its own savepoint (do_submit_form is atomic): a refusal undoes this one only.
        do_submit_form(
            item.form, item.submitted, item.visit, solved=None, lists=item.lists, at=item.at
        )
    except altcha.AltchaRefused:
        _drop("altcha_replayed", path, item.record)
    except Blocked:
        _drop("over_limit", path, item.record)
    except (IntegrityError, DataError):
        logger.exception("signup spool %s: a submission could not be stored", path.name)
        _drop("refused_by_database", path, item.record)


def _store_chunk(chunk: bytes, path: Path) -> None:
    records, bad = group_spool.read_records(chunk)
    if bad:
        logger.warning("signup spool %s: %d torn or unreadable lines skipped", path.name, bad)
        dropped["torn"] += bad
    forms = _Forms()
    items = []
    for record in records:
        if record.get("v") != VERSION:
            _drop("unknown_version", path, record)
            continue
        try:
            item = _item(record, forms, path)
        except DatabaseError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            _drop("unreadable", path, record)
            continue
        if item is not None:
            items.append(item)
    items = _spend(items, path)
    for item in _store_new(items, path):
        try:
            _store_one(item, path)
        except DatabaseError:
            raise  # the database is down or refused the batch: the mark stays, retried
        except Exception:
            # Not the database: this line would fail the same way on every retry and hold up
            # every sign-up behind it. Its savepoint is rolled back; the log has the why.
            logger.exception("signup spool %s: a submission could not be stored", path.name)
            _drop("failed", path, item.record)


def ingest_signup_one() -> bool:
    """Worker duty: store one batch of spooled sign-ups; whether there was a file."""
    return group_spool.ingest_spool_file(
        PREFIX,
        lock=_lock,
        mark_model=SpoolMark,
        mark_field="offset",
        mark_name=_mark_name,
        store_chunk=_store_chunk,
        batch=BATCH,
    )


def ingest_all() -> int:
    """Hands this process's open file over and ingests every finished one (tests, the
    benchmark, the shell); rounds done."""
    spool.close()
    rounds = 0
    while ingest_signup_one():
        rounds += 1
    return rounds
