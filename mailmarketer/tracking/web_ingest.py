"""Website hits through the spool: `/t/e` appends each hit to a group-committed spool file
(`web-<ns>-<pid>.open`, the same GroupSpool as the email hits', lib/group_spool.py) and answers
once the line is on disk; the worker duty `ingest_web_one` makes the rows and stores them in
batches.

A line is a raw hit (`raw_record`, "v": 2): the site, the time, the idempotency key, the kind,
the captured text as the snippet sent it (each field capped at 4 KB, the body at 8 KB), the
user agent (capped), the address already as the site keeps it (none, truncated, or whole with
`keep`: a whole address the site does not keep is never written, even here) and the visitor
hash made from the whole one, plus `vt`: the (workspace, person) a genuine visitor token named,
or nothing. The edge does no more (views_web.py): parsing the user agent, the bot list, the
referrer's class, UTM and cutting each field to its column happen here, per batch, where they
cost the answer nothing (`rows_of`). A bot's hit is counted apart here, in the batch's
transaction, and not stored. Lines of the earlier shape (the whole row made in the request, no
"v") are still read.

Whether a visitor token's person is linked (their tracking consent) is decided here too, for
the whole batch in one query: a withdrawal made before the hit is stored wins.

`ingest_web_one` takes the oldest finished file, and in one transaction stores up to BATCH of its
lines past the file's progress mark (lib/group_spool.ingest_spool_file, with web.store_rows:
one multi-row INSERT ... ON CONFLICT DO NOTHING, one record_facts call for the identified
page views, the roll-up marks) and moves the mark (a RollupCursor row `w:<file>`, a byte
offset). Every step holds the lock on one RollupCursor row (LOCK), so two workers never
ingest the same lines; a worker killed anywhere leaves the batch and its mark both committed
or neither. The idempotency key would make a second pass add nothing anyway.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime
from pathlib import Path

from django.db import transaction
from django.db.models import OuterRef, Subquery

from mailmarketer.audience.models import ConsentRecord
from mailmarketer.lib import group_spool

from . import mail_spool, web
from .models import RollupCursor
from .models_web import HitKind, Site

logger = logging.getLogger("mailmarketer.tracking")

PREFIX = "web-"
BATCH = 2_000
LOCK = "web-ingest"

spool = mail_spool.GroupSpool(PREFIX)


RAW = 2  # the "v" of a raw hit's line
KINDS = {"p": HitKind.PAGEVIEW, "o": HitKind.OUTBOUND, "d": HitKind.DOWNLOAD, "e": HitKind.EVENT}
FIELDS = ("u", "t", "r", "g", "n")  # page URL, title, referrer, target, event name
PROPS_JSON_MAX = 1000


def raw_record(site: Site, *, at: datetime, key: str, kind, fields: dict, props, ua: str,
               ip: str, whole: bool, visitor: str) -> dict:  # fmt: skip
    """A raw hit as the spool keeps it (see the module docstring); empty fields left out."""
    record = {"v": RAW, "s": site.pk, "at": at.isoformat(), "key": key}
    record["k"] = kind if kind in KINDS else "p"
    for name in FIELDS:
        if fields.get(name):
            record[name] = fields[name]
    if isinstance(props, dict) and props:
        record["p"] = props
    if ua:
        record["ua"] = ua
    if ip:
        record["ip"], record["iw"] = ip, whole
    record["h"] = visitor
    return record


def append(record: dict, token_ids: tuple[int, int] | None) -> None:
    """Appends one hit durably (synced before this returns); raises OSError when the spool
    cannot take it."""
    if token_ids:
        record = {**record, "vt": list(token_ids)}
    spool.append(record)


def rows_of(records: list[dict], token_ids: list) -> tuple[list[dict], list, Counter]:
    """The rows of raw hits (one query for their sites), the ids of each row's visitor token,
    and the bots counted apart per (site, day). A hit whose site was deleted since is dropped
    (its site's hits went with it)."""
    sites = Site.objects.in_bulk({record["s"] for record in records})
    rows, ids, bots = [], [], Counter()
    for record, token in zip(records, token_ids, strict=True):
        site = sites.get(record["s"])
        if site is None:
            continue
        at = datetime.fromisoformat(record["at"])
        ua = str(record.get("ua", ""))[:1000]
        info = web.agent(ua)
        if info[5]:
            bots[(site, at.date())] += 1
            continue
        kind = KINDS.get(record.get("k"), HitKind.PAGEVIEW)
        path, utm, _host = web.split_url(_text(record, "u"))
        props = record.get("p")
        rows.append(
            web.hit_row(
                site,
                at=at,
                key=str(record["key"]),
                kind=kind,
                path=path,
                utm=utm,
                title=_text(record, "t"),
                referrer=_text(record, "r"),
                target=_text(record, "g") if kind != HitKind.PAGEVIEW else "",
                name=_text(record, "n") if kind == HitKind.EVENT else "",
                props=(
                    json.dumps(props, separators=(",", ":"))[:PROPS_JSON_MAX]
                    if isinstance(props, dict)
                    else ""
                ),
                ua=ua,
                agent_info=info,
                kept=(_text(record, "ip"), bool(record.get("iw"))),
                visitor=_text(record, "h"),
            )
        )
        ids.append(token)
    return rows, ids, bots


def _text(record: dict, name: str) -> str:
    value = record.get(name)
    return value if isinstance(value, str) else ""


def store_records(records: list[dict], token_ids: list) -> int:
    """Stores raw hits in one transaction: their rows (store) and the bots counted apart."""
    rows, ids, bots = rows_of(records, token_ids)
    with transaction.atomic():
        for (site, day), count in bots.items():
            web.add_count(site, day, "bot", count)
        return store(rows, ids)


def store(rows: list[dict], token_ids: list) -> int:
    """Links the consenting people (one query for the batch) and stores the rows."""
    wanted = {tuple(ids) for ids in token_ids if ids}
    allowed = consenting(wanted) if wanted else set()
    for row, ids in zip(rows, token_ids, strict=True):
        row["subscriber_id"] = ids[1] if ids and tuple(ids) in allowed else None
    return web.store_rows(rows)


def consenting(pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The (workspace, person) pairs whose last word on tracking is a grant or confirmation."""
    people = {subscriber for _, subscriber in pairs}
    last = ConsentRecord.objects.filter(
        workspace_id=OuterRef("workspace_id"),
        subscriber_id=OuterRef("subscriber_id"),
        purpose="tracking",
    ).order_by("-at", "-id")
    rows = (
        ConsentRecord.objects.filter(subscriber_id__in=people, purpose="tracking")
        .values_list("workspace_id", "subscriber_id")
        .distinct()
        .annotate(last=Subquery(last.values("action")[:1]))
    )
    good = (ConsentRecord.Action.GRANT, ConsentRecord.Action.CONFIRM)
    return {(w, s) for w, s, action in rows if action in good and (w, s) in pairs}


def _records(chunk: bytes, path: Path) -> tuple[list[dict], list, list[dict], list]:
    """The raw hits of a chunk and their token ids, then the rows of the earlier shape and
    theirs."""
    records, bad = mail_spool.read_records(chunk)
    raws, raw_ids, rows, ids = [], [], [], []
    for record in records:
        token = record.pop("vt", None)
        token = token if isinstance(token, list) and len(token) == 2 else None
        if record.get("v") == RAW:
            if isinstance(record.get("s"), int) and _well_formed(record):
                raws.append(record)
                raw_ids.append(token)
            else:
                bad += 1
            continue
        try:
            record["at"] = datetime.fromisoformat(record["at"])
            missing = [c for c in web.COLUMNS if c not in record]
        except (KeyError, TypeError, ValueError):
            bad += 1
            continue
        if missing:
            bad += 1
            continue
        rows.append(record)
        ids.append(token)
    if bad:
        logger.warning("web spool %s: %d torn or unreadable lines skipped", path, bad)
    return raws, raw_ids, rows, ids


def _well_formed(record: dict) -> bool:
    try:
        datetime.fromisoformat(record["at"])
    except (KeyError, TypeError, ValueError):
        return False
    return isinstance(record.get("key"), str)


def _mark_name(path: Path) -> str:
    return "w:" + path.name.removeprefix(PREFIX).removesuffix(".jsonl")


def _lock() -> None:
    RollupCursor.objects.get_or_create(name=LOCK)
    RollupCursor.objects.select_for_update().get(name=LOCK)


def _store(chunk: bytes, path: Path) -> None:
    raws, raw_ids, rows, ids = _records(chunk, path)
    if raws:
        store_records(raws, raw_ids)
    if rows:
        store(rows, ids)


def ingest_web_one() -> bool:
    """Worker duty: store one batch of spooled website hits; whether there was a file."""
    return group_spool.ingest_spool_file(
        PREFIX,
        lock=_lock,
        mark_model=RollupCursor,
        mark_name=_mark_name,
        store_chunk=_store,
        batch=BATCH,
    )


def ingest_all() -> int:
    """Ingests every finished file (tests, benchmarks, the shell); rounds done."""
    rounds = 0
    while ingest_web_one():
        rounds += 1
    return rounds
