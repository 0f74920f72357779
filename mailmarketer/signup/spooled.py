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
import logging
import threading
import time
from datetime import datetime
from pathlib import Path

from django.db import DatabaseError, DataError, IntegrityError
from django.utils.timezone import now

from mailmarketer.audience.emails import suppression_hash
from mailmarketer.audience.models import ConsentNotice, MailingList
from mailmarketer.lib import group_spool

from . import altcha, limits
from .actions import Blocked, Visit, do_submit_form
from .fields import Submitted
from .models import Form
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
        keys=[("i" + ip_key, limits.PER_IP), ("e" + email_hash, limits.PER_ADDRESS)],
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


def _store_one(record: dict, forms: _Forms, path: Path) -> None:
    form = forms.form(record)
    if form is None:
        _drop("form_gone", path, record)
        return
    if form.notice.sha256 != record["nh"]:
        _drop("notice_changed", path, record)  # cannot happen: notices are immutable
        return
    lists = forms.chosen(record)
    if record["l"] and not lists:
        _drop("lists_gone", path, record)
        return
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
    solved = None
    if record["ch"]:
        solved = altcha.Solved(
            challenge=record["ch"][0], expires_at=datetime.fromisoformat(record["ch"][1])
        )
    at = datetime.fromisoformat(record["at"])
    try:
        # Its own savepoint (do_submit_form is atomic): a refusal undoes this one only.
        do_submit_form(form, submitted, visit, solved=solved, lists=lists, at=at)
    except altcha.AltchaRefused:
        _drop("altcha_replayed", path, record)
    except Blocked:
        _drop("over_limit", path, record)
    except (IntegrityError, DataError):
        logger.exception("signup spool %s: a submission could not be stored", path.name)
        _drop("refused_by_database", path, record)


def _store_chunk(chunk: bytes, path: Path) -> None:
    records, bad = group_spool.read_records(chunk)
    if bad:
        logger.warning("signup spool %s: %d torn or unreadable lines skipped", path.name, bad)
        dropped["torn"] += bad
    forms = _Forms()
    for record in records:
        if record.get("v") != VERSION:
            _drop("unknown_version", path, record)
            continue
        try:
            _store_one(record, forms, path)
        except DatabaseError:
            raise  # the database is down or refused the batch: the mark stays, retried
        except (KeyError, TypeError, ValueError, AttributeError):
            _drop("unreadable", path, record)
        except Exception:
            # Not the database: this line would fail the same way on every retry and hold up
            # every sign-up behind it. Its savepoint is rolled back; the log has the why.
            logger.exception("signup spool %s: a submission could not be stored", path.name)
            _drop("failed", path, record)


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
