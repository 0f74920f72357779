"""One chunk of rows, end to end: validate and normalise each row, find duplicates in the file,
then in bulk (a fixed number of queries per chunk, whatever its size) check suppression and
existing subscribers and write subscribers, memberships and consent records.

What each mode does with a valid row:

Addresses are compared whole and case-insensitively (emails.email_key): `Ann@example.com` and
`ANN@example.com` in one file are one person (the second row a duplicate), and either finds the
subscriber stored under the other. Subscribe mode goes through subscribing.subscribe_people, the
one writer of memberships and consent that every other path uses too.

subscribe  new address: created (source import) and subscribed to the chosen lists, confirmed
           or unconfirmed as the importer chose, with one consent record per membership
           (source: this import; notice: the text the importer states they hold).
           existing subscriber: only memberships are added; the profile is left alone (update
           mode changes profiles). An unconfirmed membership becomes confirmed when the import
           is confirmed. An unsubscribed membership stays unsubscribed and the row is reported:
           an import never resubscribes anyone. A blocklisted subscriber is reported.
update     existing subscriber: the name, first and last name (when their columns are mapped
           and the cells are not empty) and attributes (merge: the file's attributes added or
           replaced, the others kept; overwrite: the file's attributes replace them all, when
           any attribute column is mapped) are set. Unknown addresses are reported as "not
           found", never created: an update is not consent to add someone.
blocklist  existing subscriber: blocklisted, their memberships unsubscribed (reason by_import,
           with a withdrawal in the consent ledger). Unknown address: created blocklisted, so
           a later form or import cannot add them, except when the address is suppressed: then
           it is reported, because storing it again would undo an erasure.

Names: a row with a first or a last name and no full name gets the two joined as the name
shown (models.display_name); a full name is kept whole. A column of JSON objects (listmonk's
`attributes`) adds each object's keys as attributes; a column mapped to a single attribute wins
over a key of the same name.

In every mode a suppressed address is neither added nor subscribed, and empty cells carry no
value (they never blank a stored one). Doing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring_ascii as quote

from mailmarketer.lib.text import one_line_problem

from ..emails import InvalidEmail, email_key, normalise_email, suppression_hash
from ..models import (
    ConsentRecord,
    Import,
    MailingList,
    Subscriber,
    Subscription,
    Suppression,
    display_name,
)
from ..subscribing import CHANGED, Result, Terms, subscribe_people
from .mapping import MAX_ATTRIBUTE_NAME, Mapping, parse_number
from .seen import SeenAddresses
from .store import Consent, Store, json_text

Mode = Import.Mode
SubStatus = Subscription.Status
WITHDRAW = ConsentRecord.Action.WITHDRAW
BY_IMPORT = Subscription.Reason.BY_IMPORT

# Reason codes of the error report and of Import.skipped_reasons, with what people read.
REASONS = {
    "malformed": "malformed row",
    "missing_email": "missing email address",
    "invalid_email": "invalid email address",
    "invalid_value": "invalid value",
    "duplicate": "duplicate in file",
    "suppressed": "suppressed",
    "blocklisted": "blocklisted",
    "unsubscribed": "unsubscribed (kept)",
    "not_found": "not found",
}


@dataclass(slots=True)
class Row:
    line: int
    cells: list[str]
    email: str
    name: str
    attributes: dict
    # Worked out while parsing, in the reading thread, so the writing has less to do:
    key: str  # email_key(email): what the address is compared by
    hashed: str  # suppression_hash(email)
    attributes_json: str  # the attributes as the database stores them
    first_name: str = ""
    last_name: str = ""


@dataclass
class ChunkResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    reported: list[tuple[int, str, str, list[str]]] = field(default_factory=list)

    def report(self, row_or_line, code: str, text: str, cells=None) -> None:
        if isinstance(row_or_line, Row):
            self.reported.append((row_or_line.line, code, text, row_or_line.cells))
        else:
            self.reported.append((row_or_line, code, text, cells))

    @property
    def reasons(self) -> Counter:
        return Counter(code for _, code, _, _ in self.reported)


class Pipeline:
    def __init__(
        self,
        imp: Import,
        *,
        header: list[str],
        mapping: Mapping,
        lists: list[MailingList],
        seen: SeenAddresses,
    ):
        self.imp = imp
        self.width = len(header)
        self.header = header
        self.mapping = mapping
        self.lists = lists
        self.seen = seen
        self.store = Store(imp.workspace_id)
        self.workspace = imp.workspace  # read once: refreshing the import forgets it
        self.source_id = str(imp.pk)
        self.source_label = f"Import: {imp.original_name}"[:200]
        self.terms = Terms(
            ConsentRecord.SourceType.IMPORT,
            BY_IMPORT,
            source_id=self.source_id,
            source_label=self.source_label,
            notice_id=imp.notice_id,
            confirmed=imp.confirmed,
            created_as=Subscriber.Source.IMPORT,
        )

    # -- reading rows (no database) ------------------------------------------------------------

    def parse(self, records: list[tuple[int, list[str]]], result: ChunkResult) -> list[Row]:
        """Valid rows of the chunk, each address first met here; the others reported."""
        width = self.width
        email_column = self.mapping.email
        name_column = self.mapping.name
        first_column = self.mapping.first_name
        last_column = self.mapping.last_name
        json_column = self.mapping.attributes_json
        # Each attribute's JSON key is written once; a row's JSON is then joined from pieces,
        # several times cheaper than json.dumps of its dict (the same text json.dumps writes:
        # the C string quoting json itself uses, and repr of numbers, never infinite).
        attributes = [
            (a.column, a.name, quote(a.name) + ": ", a.type == "number")
            for a in self.mapping.attributes
        ]
        normalise = normalise_email
        keyed = email_key
        hashed = suppression_hash
        rows = []
        for line, cells in records:
            if len(cells) != width and not (len(cells) > width and not any(cells[width:])):
                # Extra cells that are all empty (a delimiter at the end of each line, as some
                # exports write) are harmless; any other difference is a malformed row.
                result.report(
                    line,
                    "malformed",
                    f"malformed row: {len(cells)} columns where the header has {width}",
                    cells,
                )
                continue
            raw = cells[email_column]
            try:
                email = normalise(raw)
            except InvalidEmail as exc:
                if raw.strip():
                    result.report(line, "invalid_email", f"invalid email address: {exc}", cells)
                else:
                    result.report(line, "missing_email", "missing email address", cells)
                continue
            values = {}
            pieces = []
            bad = None
            for column, attribute, key, number in attributes:
                value = cells[column].strip()
                if value:
                    if number:
                        try:
                            value = parse_number(value)
                        except ValueError:
                            bad = f"invalid value: {attribute!r} must be a number, not {value!r}"
                            break
                        pieces.append(key + repr(value))
                    else:
                        pieces.append(key + quote(value))
                    values[attribute] = value
            attributes_text = "{" + ", ".join(pieces) + "}"
            if json_column is not None and not bad and cells[json_column].strip():
                more, bad = _json_attributes(cells[json_column])
                if more:
                    values = {**more, **values}
                    attributes_text = json_text(values)
            if bad:
                result.report(line, "invalid_value", bad, cells)
                continue
            name = cells[name_column].strip()[:200] if name_column is not None else ""
            first = cells[first_column].strip()[:100] if first_column is not None else ""
            last = cells[last_column].strip()[:100] if last_column is not None else ""
            for what, value in (("name", name), ("first name", first), ("last name", last)):
                # A quoted cell may hold a line break; a name is the To header's display name.
                problem = value and one_line_problem(value)
                if problem:
                    bad = f"invalid value: the {what} {problem}"
                    break
            if bad:
                result.report(line, "invalid_value", bad, cells)
                continue
            if first or last:
                name = name or display_name(first, last)
            rows.append(
                Row(
                    line,
                    cells,
                    email,
                    name,
                    values,
                    keyed(email),
                    hashed(email),
                    attributes_text,
                    first,
                    last,
                )
            )
        duplicates = self.seen.duplicates([(row.key, row.line) for row in rows])
        if not duplicates:
            return rows
        unique = []
        for row in rows:
            first = duplicates.get(row.line)
            if first is None:
                unique.append(row)
            else:
                result.report(row, "duplicate", f"duplicate in file (of line {first})")
        return unique

    # -- writing (inside the chunk's transaction) -----------------------------------------------

    def write(self, rows: list[Row], result: ChunkResult, at: datetime) -> None:
        if not rows:
            return
        if self.imp.mode == Mode.UPDATE:
            # Profiles are compared, so they are read through the ORM (JSON as the model
            # reads it); update mode adds no one, so it needs no suppression check.
            existing = {
                values[0]: values[1:]
                for values in Subscriber.objects.filter(
                    workspace_id=self.imp.workspace_id, email_key__in=[r.key for r in rows]
                ).values_list(
                    "email_key", "id", "status", "name", "attributes", "first_name", "last_name"
                )
            }
            self._update(rows, existing, result, at)
            return
        if self.imp.mode == Mode.SUBSCRIBE:
            self._subscribe(rows, result, at)
            return
        suppressed = self.store.suppressed({r.hashed for r in rows})
        existing = self.store.existing([r.key for r in rows])
        self._blocklist(rows, suppressed, existing, result, at)

    @staticmethod
    def _suppressed_text(reason: str) -> str:
        label = Suppression.Reason(reason).label.lower() if reason in Suppression.Reason else reason
        return f"suppressed ({label}): never added or subscribed again"

    def _subscribe(self, rows, result: ChunkResult, at) -> None:
        done = subscribe_people(self.workspace, rows, self.lists, self.terms, at=at)
        result.created += len(done.created)
        if not (done.suppressed or done.blocklisted or done.known):
            return  # the usual chunk of a first import: everyone new
        slugs = {ml.pk: ml.slug for ml in self.lists}
        for position, row in enumerate(rows):
            if position in done.suppressed:
                reason, _ = done.suppressed[position]
                result.report(row, "suppressed", self._suppressed_text(reason))
            elif position in done.blocklisted:
                result.report(row, "blocklisted", "blocklisted subscriber: not subscribed")
            elif position in done.known:
                _, _, by_list = done.known[position]
                kept = [
                    slugs[lid]
                    for lid, (what, _) in by_list.items()
                    if what == Result.UNSUBSCRIBED_KEPT
                ]
                if kept:
                    result.report(
                        row,
                        "unsubscribed",
                        f"unsubscribed from {', '.join(kept)}: kept unsubscribed (an import "
                        "never resubscribes anyone)",
                    )
                if any(what in CHANGED for what, _ in by_list.values()):
                    result.updated += 1
                elif not kept:
                    result.unchanged += 1

    def _update(self, rows, existing, result: ChunkResult, at) -> None:
        overwrite = self.imp.attribute_mode == Import.AttributeMode.OVERWRITE and bool(
            self.mapping.attributes
        )
        changes = []
        name_column = self.mapping.name
        for row in rows:
            current = existing.get(row.key)
            if current is None:
                result.report(
                    row,
                    "not_found",
                    "not found: no subscriber has this address (update changes existing "
                    "subscribers only)",
                )
                continue
            sid, _, name, attributes, first, last = current
            new_first, new_last = row.first_name or first, row.last_name or last
            new_name = row.name or name
            named = name_column is not None and row.cells[name_column].strip()
            if not named and (new_first, new_last) != (first, last):
                # New first or last name and no full name in the file: the name shown is
                # made anew from them.
                new_name = display_name(new_first, new_last, name)
            new_attributes = row.attributes if overwrite else {**attributes, **row.attributes}
            if (new_name, new_attributes, new_first, new_last) != (name, attributes, first, last):
                changes.append((sid, new_name, new_attributes, new_first, new_last))
                result.updated += 1
            else:
                result.unchanged += 1
        self.store.update_profiles(changes, at=at)

    def _blocklist(self, rows, suppressed, existing, result: ChunkResult, at) -> None:
        new, block = [], []
        for row in rows:
            current = existing.get(row.key)
            if current is None:
                reason = suppressed.get(row.hashed) if suppressed else None
                if reason:
                    result.report(row, "suppressed", self._suppressed_text(reason))
                else:
                    new.append(row)
            elif current[1] == Subscriber.Status.BLOCKLISTED:
                result.unchanged += 1
            else:
                block.append(current[0])
        self.store.insert_people(
            [
                (
                    r.email,
                    r.key,
                    r.name,
                    Subscriber.Status.BLOCKLISTED,
                    r.attributes_json,
                    r.first_name,
                    r.last_name,
                )
                for r in new
            ],
            source=Subscriber.Source.IMPORT,
            at=at,
        )
        result.created += len(new)
        if not block:
            return
        Subscriber.objects.filter(pk__in=block).update(
            status=Subscriber.Status.BLOCKLISTED, updated_at=at
        )
        active = Subscription.objects.filter(subscriber_id__in=block).exclude(
            status=SubStatus.UNSUBSCRIBED
        )
        withdrawals = [
            (sid, lid, f"email:{slug}", WITHDRAW, None)
            for sid, lid, slug in active.values_list(
                "subscriber_id", "mailing_list_id", "mailing_list__slug"
            )
        ]
        active.update(
            status=SubStatus.UNSUBSCRIBED,
            status_reason=BY_IMPORT,
            unsubscribed_at=at,
            updated_at=at,
        )
        # A withdrawal shows no notice: the import's notice is about the consent it states.
        self.store.insert_consents(
            withdrawals, consent=Consent(None, self.source_id, self.source_label), at=at
        )
        result.updated += len(block)


def _json_attributes(cell: str) -> tuple[dict, str | None]:
    """The attributes of a cell holding a JSON object (listmonk's export), or a problem."""
    what = "invalid value: the attributes column"
    try:
        value = json.loads(cell)
        # NaN and infinities are not JSON either database stores.
        json.dumps(value, allow_nan=False)
    except ValueError:
        return {}, f'{what} must hold a JSON object, as {{"city": "Oslo"}}'
    if not isinstance(value, dict):
        return {}, f"{what} must hold a JSON object, not {type(value).__name__}"
    if "\x00" in json.dumps(value, ensure_ascii=False):
        return {}, f"{what} must not contain a NUL character"
    for key in value:
        problem = one_line_problem(key) if key.strip() else "is blank"
        if not problem and len(key) > MAX_ATTRIBUTE_NAME:
            problem = f"is longer than {MAX_ATTRIBUTE_NAME} characters"
        if problem:
            return {}, f"invalid value: the attribute name {key[:40]!r} {problem}"
    return value, None
