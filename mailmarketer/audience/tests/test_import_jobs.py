"""The import job end to end (importing/jobs.py and pipeline.py), called the way the worker calls
it: what it adds, what it refuses and reports, idempotence, suppression, resumption, progress."""

from __future__ import annotations

import csv
import io
import itertools
import os
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.importing import files, jobs, pipeline
from mailmarketer.audience.importing.mapping import Attribute, Mapping, MappingError, mapping_for
from mailmarketer.audience.importing.queries import import_progress
from mailmarketer.audience.importing.reading import UnreadableFile
from mailmarketer.audience.importing.store import Store
from mailmarketer.audience.models import (
    ConsentRecord,
    Import,
    Subscriber,
    Subscription,
    Suppression,
)

from .import_helpers import (  # import_data_dir: autouse, every file under tmp_path
    NOTICE,
    gzipped,
    import_data_dir,  # noqa: F401
    report,
    run,
    start,
    write,
    zipped,
)

Status = Import.Status


def csv_text(rows) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def snapshot() -> dict:
    """Every audience row a repeated import could touch, as plain values."""
    return {
        model.__name__: sorted(model.objects.values_list(), key=str)
        for model in (Subscriber, Subscription, ConsentRecord, Suppression)
    }


# -- subscribing -------------------------------------------------------------------------------


def test_it_adds_and_subscribes_with_the_notice_the_importer_holds(personas, news, tmp_path):
    path = write(tmp_path, "people.csv", "Email,Name,City\nAnn@Example.COM,Ann,Oslo\n")

    imp = run(personas.acme, path)

    assert (imp.status, imp.rows_done, imp.rows_created, imp.rows_skipped) == (
        Status.FINISHED,
        1,
        1,
        0,
    )
    sub = Subscriber.objects.get(workspace=personas.acme)
    assert (sub.email, sub.name, sub.attributes, sub.source) == (
        "Ann@example.com",
        "Ann",
        {"City": "Oslo"},
        "import",
    )
    membership = Subscription.objects.get(subscriber=sub)
    assert (membership.mailing_list, membership.status, membership.status_reason) == (
        news,
        "confirmed",
        "by_import",
    )
    record = ConsentRecord.objects.get(subscriber=sub)
    assert (record.purpose, record.action, record.source_type, record.source_id) == (
        "email:news",
        "grant",
        "import",
        str(imp.pk),
    )
    assert record.source_label == "Import: people.csv"
    assert record.notice.text == NOTICE and record.notice.name == "Import: people.csv"
    assert record.confirmed_at == membership.confirmed_at is not None


def test_it_imports_as_unconfirmed_without_a_notice(personas, news, webinars, tmp_path):
    path = write(tmp_path, "people.csv", "email\na@example.com\n")

    imp = run(personas.acme, path, lists=["news", "webinars"], confirmed=False, notice_text="")

    assert imp.notice is None
    statuses = set(Subscription.objects.values_list("mailing_list__slug", "status"))
    assert statuses == {("news", "unconfirmed"), ("webinars", "unconfirmed")}
    records = ConsentRecord.objects.all()
    assert len(records) == 2
    assert all(r.notice is None and r.confirmed_at is None for r in records)


def test_it_needs_the_notice_to_import_as_confirmed(personas, news, tmp_path):
    path = write(tmp_path, "people.csv", "email\na@example.com\n")

    with pytest.raises(ActionError) as info:
        start(personas.acme, path, confirmed=True, notice_text="   ")

    assert info.value.code == "notice_required"
    assert str(info.value) == (
        "importing people as confirmed needs the text of the consent notice they agreed to, "
        "which is kept with each of their consent records"
    )
    assert not Import.objects.exists()


def test_it_needs_a_list_of_this_workspace_to_subscribe_to(personas, news, tmp_path, staff):
    path = write(tmp_path, "people.csv", "email\na@example.com\n")
    theirs = actions.do_create_list(personas.evil, name="Evil", slug="evil-news", actor=staff)

    with pytest.raises(ActionError, match="choose at least one list to subscribe people to"):
        start(personas.acme, path, lists=[])
    with pytest.raises(ActionError, match="there is no list 'evil-news' in this workspace"):
        start(personas.acme, path, lists=["evil-news"])
    with pytest.raises(ActionError, match=f"there is no list '{theirs.pk}' in this workspace"):
        start(personas.acme, path, lists=[str(theirs.pk)])

    assert not Import.objects.exists()
    assert not files.import_dir(1).parent.exists()


def test_it_confirms_unconfirmed_members_when_imported_as_confirmed(
    personas, staff, webinars, tmp_path
):
    sub = actions.do_create_subscriber(personas.acme, email="a@example.com", actor=staff)
    actions.do_subscribe(sub, [webinars], actor=staff, reason=Reason.BY_ADMIN)  # double opt-in
    path = write(tmp_path, "people.csv", "email\na@example.com\n")

    imp = run(personas.acme, path, lists=["webinars"])

    membership = Subscription.objects.get(subscriber=sub)
    assert (membership.status, membership.status_reason) == ("confirmed", "by_import")
    assert (imp.rows_created, imp.rows_updated) == (0, 1)
    assert list(
        ConsentRecord.objects.filter(subscriber=sub).values_list("source_type", "notice__text")
    ) == [("admin", None), ("import", NOTICE)]


def test_it_changes_nothing_when_the_same_file_is_imported_again(
    personas, staff, news, webinars, tmp_path
):
    existing = actions.do_create_subscriber(personas.acme, email="old@example.com", actor=staff)
    actions.do_subscribe(existing, [news], actor=staff, reason=Reason.BY_ADMIN)
    text = csv_text(
        [
            ["email", "name", "plan"],
            ["a@example.com", "Ann", "pro"],
            ["old@example.com", "Old", "free"],
            ["b@example.com", "", ""],
            ["not-an-address", "X", "pro"],
            ["a@example.com", "Ann again", "team"],
        ]
    )
    path = write(tmp_path, "people.csv", text)

    first = run(personas.acme, path, lists=["news", "webinars"])
    after_first = snapshot()
    second = run(personas.acme, path, lists=["news", "webinars"])

    assert (first.rows_created, first.rows_updated, first.rows_unchanged) == (2, 1, 0)
    assert (second.rows_created, second.rows_updated, second.rows_unchanged) == (0, 0, 3)
    assert snapshot() == after_first  # not a row added, not a field (or timestamp) changed
    assert (
        report(second)
        == report(first)
        == [
            [
                "5",
                "invalid email address: An email address must have an @-sign.",
                "not-an-address",
                "X",
                "pro",
            ],
            ["6", "duplicate in file (of line 2)", "a@example.com", "Ann again", "team"],
        ]
    )


def test_it_keeps_unsubscribed_members_unsubscribed(personas, staff, news, webinars, tmp_path):
    sub = actions.do_create_subscriber(personas.acme, email="a@example.com", actor=staff)
    actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_unsubscribe(sub, [news], actor=staff, reason=Reason.BY_SUBSCRIBER)
    gone = actions.do_create_subscriber(personas.acme, email="b@example.com", actor=staff)
    actions.do_subscribe(gone, [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_unsubscribe(gone, [news], actor=staff, reason=Reason.BY_SUBSCRIBER)
    records = ConsentRecord.objects.count()
    path = write(tmp_path, "people.csv", "email\na@example.com\nb@example.com\n")

    only_news = run(personas.acme, path, lists=["news"])
    both = run(personas.acme, path, lists=["news", "webinars"])

    assert set(Subscription.objects.filter(mailing_list=news).values_list("status", flat=True)) == {
        "unsubscribed"
    }
    kept = "unsubscribed from news: kept unsubscribed (an import never resubscribes anyone)"
    assert report(only_news) == [["2", kept, "a@example.com"], ["3", kept, "b@example.com"]]
    assert (only_news.rows_skipped, only_news.rows_updated, only_news.rows_unchanged) == (2, 0, 0)
    # Subscribed to the other list, still reported for the one kept.
    assert report(both) == report(only_news)
    assert (both.rows_updated, both.rows_skipped) == (2, 2)
    assert ConsentRecord.objects.count() == records + 2  # the two webinars grants only
    assert both.skipped_reasons == {"unsubscribed": 2}


def test_it_skips_and_reports_blocklisted_subscribers(personas, staff, news, tmp_path):
    sub = actions.do_create_subscriber(personas.acme, email="a@example.com", actor=staff)
    actions.do_blocklist_subscriber(sub, actor=staff)
    path = write(tmp_path, "people.csv", "email\na@example.com\n")

    imp = run(personas.acme, path)

    assert not Subscription.objects.exists()
    assert report(imp) == [["2", "blocklisted subscriber: not subscribed", "a@example.com"]]


# -- suppression: never re-added by an import -------------------------------------------------

_counter = itertools.count()
local_parts = st.from_regex(r"[a-z][a-z0-9.]{0,10}[a-z0-9]", fullmatch=True).filter(
    lambda s: ".." not in s
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.lists(
        st.tuples(local_parts, st.sampled_from(["suppressed", "erased", "unsub_all", "free"])),
        min_size=1,
        max_size=6,
        unique_by=lambda p: p[0],
    ),
    shout=st.booleans(),
)
def test_it_never_adds_or_subscribes_a_suppressed_or_erased_address(
    personas, staff, news, tmp_path, people, shout
):
    run_id = next(_counter)
    addresses = {}
    for local, fate in people:
        email = f"{local}.{run_id}@example.com"
        addresses[email] = fate
        if fate == "suppressed":
            actions.do_add_suppression(personas.acme, email=email.upper(), actor=staff)
        elif fate in ("erased", "unsub_all"):
            sub = actions.do_create_subscriber(personas.acme, email=email, actor=staff)
            actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_ADMIN)
            if fate == "erased":
                actions.do_erase_subscriber(sub, actor=staff)
            else:
                actions.do_unsubscribe(
                    sub, actor=staff, reason=Reason.BY_SUBSCRIBER, suppress_all=True
                )
    # The file may spell them differently: the suppression hash ignores case.
    rows = [[e.upper() if shout else e] for e in addresses]
    path = write(tmp_path, f"people-{run_id}.csv", csv_text([["email"], *rows]))

    imp = run(personas.acme, path)

    expected = {"suppressed": "added by staff", "erased": "erased at the person's request"}
    expected["unsub_all"] = "unsubscribed from everything"
    reported = {r[2].lower(): r[1] for r in report(imp)}
    for email, fate in addresses.items():
        stored = Subscriber.objects.filter(workspace=personas.acme, email__iexact=email).first()
        if fate == "free":
            assert stored is not None and email.lower() not in reported
            continue
        assert reported[email.lower()] == (
            f"suppressed ({expected[fate]}): never added or subscribed again"
        )
        if fate == "unsub_all":
            assert set(stored.subscriptions.values_list("status", flat=True)) == {"unsubscribed"}
        else:
            assert stored is None


# -- update and blocklist modes ------------------------------------------------------------------


def test_it_updates_existing_subscribers_and_reports_unknown_ones(personas, staff, tmp_path):
    ann = actions.do_create_subscriber(
        personas.acme,
        email="ann@example.com",
        name="Ann",
        attributes={"plan": "free", "city": "Oslo"},
        actor=staff,
    )
    bob = actions.do_create_subscriber(
        personas.acme, email="bob@example.com", name="Bob", attributes={"plan": "free"}, actor=staff
    )
    path = write(
        tmp_path,
        "update.csv",
        "email,name,plan,score\nann@example.com,,pro,42\nbob@example.com,Robert,,\n"
        "nobody@example.com,No One,pro,1\n",
    )
    mapping = Mapping(0, 1, (Attribute(2, "plan"), Attribute(3, "score", "number")))

    merged = run(personas.acme, path, mode="update", mapping=mapping)
    ann.refresh_from_db()
    bob.refresh_from_db()

    assert (ann.name, ann.attributes) == ("Ann", {"plan": "pro", "city": "Oslo", "score": 42})
    assert (bob.name, bob.attributes) == ("Robert", {"plan": "free"})
    assert (merged.rows_updated, merged.rows_created) == (2, 0)
    assert report(merged) == [
        [
            "4",
            "not found: no subscriber has this address (update changes existing subscribers only)",
            "nobody@example.com",
            "No One",
            "pro",
            "1",
        ]
    ]
    assert Subscriber.objects.count() == 2

    overwritten = run(
        personas.acme, path, mode="update", attribute_mode="overwrite", mapping=mapping
    )
    ann.refresh_from_db()
    bob.refresh_from_db()
    assert ann.attributes == {"plan": "pro", "score": 42}
    assert bob.attributes == {}  # the file has no value for Bob: overwritten with nothing
    assert (overwritten.rows_updated, overwritten.rows_unchanged) == (2, 0)


def test_it_accepts_empty_cells_past_the_last_column(personas, news, tmp_path):
    path = write(tmp_path, "t.csv", "email,name\na@example.com,Ann,,\nb@example.com,Bob,x\n")

    imp = run(personas.acme, path)

    assert list(Subscriber.objects.values_list("name", flat=True)) == ["Ann"]
    assert report(imp) == [
        ["3", "malformed row: 3 columns where the header has 2", "b@example.com", "Bob", "x"]
    ]


def test_it_reports_a_number_column_that_holds_no_number(personas, news, tmp_path):
    path = write(tmp_path, "n.csv", "email,age\na@example.com,42\nb@example.com,forty\n")

    imp = run(personas.acme, path, mapping=Mapping(0, None, (Attribute(1, "age", "number"),)))

    assert Subscriber.objects.get().attributes == {"age": 42}
    assert report(imp) == [
        ["3", "invalid value: 'age' must be a number, not 'forty'", "b@example.com", "forty"]
    ]


def test_it_reports_a_number_too_large_to_store(personas, news, tmp_path):
    # float("1e999") is infinity, which JSON (and PostgreSQL's jsonb) cannot hold: one such
    # cell must cost its row, not the chunk of rows around it.
    path = write(
        tmp_path,
        "n.csv",
        "email,score\na@example.com,1e999\nb@example.com,-1e400\nc@example.com,2.5e3\n",
    )

    imp = run(personas.acme, path, mapping=Mapping(0, None, (Attribute(1, "score", "number"),)))

    assert imp.status == "finished"
    assert list(Subscriber.objects.values_list("email", "attributes")) == [
        ("c@example.com", {"score": 2500.0})
    ]
    assert [row[:2] for row in report(imp)] == [
        ["2", "invalid value: 'score' must be a number, not '1e999'"],
        ["3", "invalid value: 'score' must be a number, not '-1e400'"],
    ]


def test_attributes_are_stored_exactly_as_written(personas, news, tmp_path):
    awkward = [
        'say "hi"',
        "back\\slash",
        "tab\there",
        "ünïcødé ✓ 😀",
        "</script>",
        "=1+2",
        "line\u2028sep",
    ]
    lines = "".join(
        f'p{i}@example.com,"{text.replace(chr(34), chr(34) * 2)}",{i - 3}\n'
        for i, text in enumerate(awkward)
    )
    path = write(tmp_path, "a.csv", "email,note,n\n" + lines)
    mapping = Mapping(0, None, (Attribute(1, "note"), Attribute(2, "n", "number")))

    imp = run(personas.acme, path, mapping=mapping)

    assert imp.rows_created == len(awkward)
    stored = dict(Subscriber.objects.values_list("email", "attributes"))
    assert stored == {
        f"p{i}@example.com": {"note": text, "n": i - 3} for i, text in enumerate(awkward)
    }


def test_it_blocklists_addresses(personas, staff, news, tmp_path):
    member = actions.do_create_subscriber(personas.acme, email="member@example.com", actor=staff)
    actions.do_subscribe(member, [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_add_suppression(personas.acme, email="erased@example.com", actor=staff)
    path = write(
        tmp_path,
        "block.csv",
        "email\nmember@example.com\nnew@example.com\nerased@example.com\n",
    )

    imp = run(personas.acme, path, mode="blocklist")
    again = run(personas.acme, path, mode="blocklist")

    member.refresh_from_db()
    assert member.status == "blocklisted"
    membership = Subscription.objects.get(subscriber=member)
    assert (membership.status, membership.status_reason) == ("unsubscribed", "by_import")
    withdrawal = ConsentRecord.objects.get(subscriber=member, action="withdraw")
    assert (withdrawal.source_type, withdrawal.source_id) == ("import", str(imp.pk))
    new = Subscriber.objects.get(email="new@example.com")
    assert (new.status, new.source, new.subscriptions.count()) == ("blocklisted", "import", 0)
    assert not Subscriber.objects.filter(email="erased@example.com").exists()
    assert report(imp) == [
        [
            "4",
            "suppressed (added by staff): never added or subscribed again",
            "erased@example.com",
        ]
    ]
    assert (imp.rows_created, imp.rows_updated) == (1, 1)
    assert (again.rows_created, again.rows_updated, again.rows_unchanged) == (0, 0, 2)


# -- file formats, end to end -----------------------------------------------------------------


PEOPLE = "email,name\nann@example.com,Ann\nbob@example.com,Bob\n"


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: gzipped(tmp, "people.csv.gz", PEOPLE),
        lambda tmp: zipped(tmp, "people.zip", {"people.csv": PEOPLE}),
        lambda tmp: write(tmp, "people.csv", PEOPLE.replace(",", ";")),
        lambda tmp: write(tmp, "people.tsv", PEOPLE.replace(",", "\t")),
        lambda tmp: write(tmp, "people.csv", "\ufeff" + PEOPLE),
    ],
    ids=["gzip", "zip", "semicolon", "tab", "bom"],
)
def test_it_imports_every_supported_format(personas, news, tmp_path, make):
    imp = run(personas.acme, make(tmp_path))

    assert imp.status == Status.FINISHED
    assert sorted(Subscriber.objects.values_list("email", "name")) == [
        ("ann@example.com", "Ann"),
        ("bob@example.com", "Bob"),
    ]


def test_it_imports_a_latin1_file(personas, news, tmp_path):
    path = write(
        tmp_path, "latin1.csv", "email;name\nm@example.com;Müller\nz@example.com;Zoë\n", "cp1252"
    )

    imp = run(personas.acme, path)

    assert (imp.encoding, imp.delimiter) == ("cp1252", ";")
    assert sorted(Subscriber.objects.values_list("name", flat=True)) == ["Müller", "Zoë"]


def test_it_reports_the_line_a_record_starts_on_after_quoted_newlines(personas, news, tmp_path):
    text = (
        "email,note\n"
        'a@example.com,"first\nsecond\nthird"\n'  # lines 2-4
        'broken,"also\r\nlong"\n'  # lines 5-6
        "b@example.com,ok\n"  # line 7
        "b@example.com,again\n"  # line 8
    )
    imp = run(personas.acme, write(tmp_path, "quotes.csv", text))

    assert Subscriber.objects.get(email="a@example.com").attributes == {
        "note": "first\nsecond\nthird"
    }
    assert report(imp) == [
        [
            "5",
            "invalid email address: An email address must have an @-sign.",
            "broken",
            "also\r\nlong",
        ],
        ["8", "duplicate in file (of line 7)", "b@example.com", "again"],
    ]


def test_it_reports_ten_thousand_bad_rows_and_imports_every_good_one(personas, news, tmp_path):
    rows, expected, line, good = [["email", "name", "score"]], [], 2, 0
    lines = {}
    for i in range(20000):
        # Some records span two lines (rows refused for their address: a name with a line
        # break would be refused for itself).
        name = f"Name\n{i}" if i % 1000 == 1 else f"Name {i}"
        kind = i % 10
        if kind % 2 == 0:
            cells = [f"good{i}@example.com", name, str(i)]
            good += 1
            lines[cells[0]] = line
        elif kind == 1:
            cells = [f"bad{i}.example.com", name, str(i)]
            expected.append(
                [str(line), "invalid email address: An email address must have an @-sign.", *cells]
            )
        elif kind == 3:
            cells = ["", name, str(i)]
            expected.append([str(line), "missing email address", *cells])
        elif kind == 5:
            cells = [f"short{i}@example.com", name]
            expected.append([str(line), "malformed row: 2 columns where the header has 3", *cells])
        elif kind == 7:
            cells = [f"good{i - 1}@example.com", name, str(i)]
            first = lines[cells[0]]
            expected.append([str(line), f"duplicate in file (of line {first})", *cells])
        else:
            cells = [f'=HYPERLINK("x")@{i}', name, str(i)]
            shown = [f"'{cells[0]}", name, str(i)]
            expected.append(
                [
                    str(line),
                    "invalid email address: The email address contains invalid characters "
                    "before the @-sign: '\"', '(', ')'.",
                    *shown,
                ]
            )
        rows.append(cells)
        line += name.count("\n") + 1
    path = write(tmp_path, "mixed.csv", csv_text(rows))

    imp = run(personas.acme, path, chunk_rows=3000)

    assert imp.status == Status.FINISHED
    assert Subscriber.objects.count() == good == 10000
    assert (imp.rows_done, imp.rows_created, imp.rows_skipped) == (20000, 10000, 10000)
    assert report(imp) == expected
    assert imp.skipped_reasons == {
        "invalid_email": 4000,
        "missing_email": 2000,
        "malformed": 2000,
        "duplicate": 2000,
    }


# -- files that cannot be read: one error, nothing imported -----------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"email\x00,name\n", "it contains NUL bytes"),
        (b"ann@example.com,Ann\n", "line 1 holds an email address, not column names"),
        (b"", "the file is empty"),
        (b"email,name\n", "the file has a line of column names but no rows below it"),
    ],
)
def test_it_refuses_an_unreadable_file_when_it_is_uploaded(
    personas, news, tmp_path, content, message
):
    path = write(tmp_path, "bad.csv", content)

    with pytest.raises(UnreadableFile, match=message):
        start(personas.acme, path)

    assert not Import.objects.exists()
    assert not any(files.import_dir(1).parent.glob("*/*"))


def test_it_fails_a_file_damaged_past_its_start_and_imports_nothing(personas, news, tmp_path):
    rows = "".join(f"user{i}@example.com,Name {i}\n" for i in range(50000))
    whole = gzipped(tmp_path, "whole.csv.gz", "email,name\n" + rows)
    cut = write(tmp_path, "cut.csv.gz", whole.read_bytes()[: whole.stat().st_size // 2])

    imp = run(personas.acme, cut)

    assert imp.status == Status.FAILED
    assert imp.error == (
        "the gzip file is damaged or cut short (Compressed file ended before the "
        "end-of-stream marker was reached)"
    )
    assert not Subscriber.objects.exists() and imp.rows_done == 0
    finished = AuditEvent.objects.get(event="import.finished")
    assert finished.new["status"] == "failed" and finished.new["rows"] == 0


def test_it_needs_an_email_column(personas, news, tmp_path):
    path = write(tmp_path, "no-email.csv", "name,city\nAnn,Oslo\nBob,Rome\n")

    with pytest.raises(MappingError) as info:
        start(personas.acme, path)

    assert str(info.value) == (
        "no email column: none of the columns ('name', 'city') is named like one or holds "
        "email addresses; say which it is (--email-column on the command line)"
    )
    imp = Import.objects.get()
    assert imp.status == Status.DRAFT  # nothing started: the page asks for the column
    with pytest.raises(MappingError, match="choose the column that holds the email addresses"):
        jobs.do_start_import(imp, mapping=Mapping(None, 0), actor=Actor.system("test"))


def test_it_finds_the_email_column_by_its_contents(personas, news, tmp_path):
    path = write(tmp_path, "odd.csv", "Kontakt,Wer\nann@example.com,Ann\n")

    imp = run(personas.acme, path)

    assert imp.mapping["email"] == 0
    assert Subscriber.objects.get().attributes == {"Wer": "Ann"}


# -- the job ---------------------------------------------------------------------------------------


def test_it_reports_progress_chunk_by_chunk(personas, news, tmp_path, monkeypatch):
    text = csv_text([["email"], *([f"p{i}@example.com"] for i in range(450))])
    imp = start(personas.acme, write(tmp_path, "p.csv", text))
    assert import_progress(imp)["rows_total"] == 450 and not imp.rows_total_exact
    seen = []
    real_check = jobs.check_whole_file

    def check_whole_file(*args):
        # What the UI and the API read while the job reads the whole file first.
        p = import_progress(Import.objects.get(pk=imp.pk))
        seen.append((p["phase"], p["rows_done"], p["rows_total"], p["rows_total_exact"]))
        return real_check(*args)

    def progress(current):
        p = import_progress(current)
        seen.append((p["phase"], p["rows_done"], p["rows_total"], p["rows_total_exact"]))

    monkeypatch.setattr(jobs, "check_whole_file", check_whole_file)
    done = jobs.run_import(imp.pk, chunk_rows=100, on_progress=progress)

    assert seen == [
        ("checking", 0, 450, False),
        ("running", 0, 450, True),
        ("running", 100, 450, True),
        ("running", 200, 450, True),
        ("running", 300, 450, True),
        ("running", 400, 450, True),
        ("running", 450, 450, True),
        ("finished", 450, 450, True),
    ]
    final = import_progress(done)
    assert (final["percent"], final["created"], final["eta_seconds"]) == (100.0, 450, None)
    assert final["rate"] > 0 and final["has_error_report"] is False
    assert final["started_at"] <= final["finished_at"]


def test_it_runs_as_a_background_task(personas, news, tmp_path, django_capture_on_commit_callbacks):
    from mailmarketer.lib.worker import run_task_one

    imp = start_queued = jobs.do_create_import(
        personas.acme,
        file=write(tmp_path, "p.csv", "email\na@example.com\n"),
        original_name="p.csv",
        lists=["news"],
        actor=Actor.system("test"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        jobs.do_start_import(start_queued, mapping=Mapping(0), actor=Actor.system("test"))
    imp.refresh_from_db()
    assert imp.status == Status.QUEUED and imp.task_id

    assert run_task_one() is True

    imp.refresh_from_db()
    assert imp.status == Status.FINISHED and Subscriber.objects.count() == 1


def test_it_resumes_after_a_crash_where_it_stopped(personas, news, tmp_path, monkeypatch):
    rows = [["email"], *([f"p{i}@example.com"] for i in range(500))]
    rows.insert(402, ["p7@example.com"])  # line 403: a duplicate of line 9, before the crash
    rows.append(["bad"])
    path = write(tmp_path, "p.csv", csv_text(rows))
    real_write = pipeline.Pipeline.write
    calls = itertools.count(1)

    def crash_on_third_chunk(self, *args):
        if next(calls) == 3:
            raise RuntimeError("the database went away")
        return real_write(self, *args)

    monkeypatch.setattr(pipeline.Pipeline, "write", crash_on_third_chunk)
    crashed = run(personas.acme, path, chunk_rows=100)

    assert crashed.status == Status.FAILED
    assert crashed.error == (
        "the import stopped on an unexpected error (RuntimeError) after 200 rows; those are "
        "imported, and resuming goes on from there"
    )
    assert Subscriber.objects.count() == 200 and files.source_path(crashed.pk).exists()

    jobs.do_resume_import(crashed, actor=Actor.system("test"), enqueue=False)
    resumed = jobs.run_import(crashed.pk, chunk_rows=100)

    assert resumed.status == Status.FINISHED
    assert Subscriber.objects.count() == 500
    assert (resumed.rows_done, resumed.rows_created, resumed.rows_skipped) == (502, 500, 2)
    assert report(resumed) == [
        ["403", "duplicate in file (of line 9)", "p7@example.com"],
        ["503", "invalid email address: An email address must have an @-sign.", "bad"],
    ]
    assert not files.source_path(crashed.pk).exists()


def test_it_stops_between_chunks_when_cancelled(personas, news, tmp_path):
    text = csv_text([["email"], *([f"p{i}@example.com"] for i in range(300))])
    imp = start(personas.acme, write(tmp_path, "p.csv", text))

    def cancel_after_first_chunk(current):
        if current.rows_done == 100 and current.status == Status.RUNNING:
            jobs.do_cancel_import(current, actor=Actor.system("test"))

    done = jobs.run_import(imp.pk, chunk_rows=100, on_progress=cancel_after_first_chunk)

    assert (done.status, done.rows_done, Subscriber.objects.count()) == (Status.CANCELLED, 100, 100)
    assert not files.source_path(imp.pk).exists()
    cancelled = AuditEvent.objects.get(event="import.cancelled")
    assert cancelled.new["rows"] == 100
    with pytest.raises(Conflict):
        jobs.do_resume_import(done, actor=Actor.system("test"))


def test_it_does_the_chunk_again_when_someone_adds_an_address_meanwhile(
    personas, staff, news, tmp_path, monkeypatch
):
    actions.do_create_subscriber(personas.acme, email="race@example.com", actor=staff)
    real_existing = Store.existing
    calls = itertools.count(1)

    def blind_first_time(self, emails):
        # The first look misses the subscriber, as if a form added them right after it.
        return {} if next(calls) == 1 else real_existing(self, emails)

    monkeypatch.setattr(Store, "existing", blind_first_time)
    path = write(tmp_path, "p.csv", "email\nnew@example.com\nrace@example.com\n")

    imp = run(personas.acme, path)

    assert imp.status == Status.FINISHED
    assert (imp.rows_created, imp.rows_updated) == (1, 1)
    assert Subscriber.objects.filter(email="race@example.com").count() == 1
    assert Subscription.objects.count() == 2


def test_it_audits_creation_and_end_with_counts_only(personas, news, tmp_path):
    path = write(tmp_path, "secret.csv", "email,name\nsecret.person@example.com,Secret Person\n")

    imp = run(personas.acme, path)

    events = AuditEvent.objects.filter(object_type="import").order_by("id")
    assert [(e.event, e.object_id) for e in events] == [
        ("import.created", str(imp.pk)),
        ("import.finished", str(imp.pk)),
    ]
    created, finished = events
    assert created.new["lists"] == ["news"] and created.new["confirmed"] is True
    assert finished.new == {
        "status": "finished",
        "rows": 1,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "skipped_reasons": {},
    }
    text = " ".join(f"{e.object_repr} {e.old} {e.new}" for e in AuditEvent.objects.all())
    assert "secret" not in text.lower() and "@" not in text


def test_it_keeps_the_report_but_not_the_upload_after_the_end(
    personas, news, tmp_path, django_capture_on_commit_callbacks
):
    imp = run(personas.acme, write(tmp_path, "p.csv", "email\nbad\n"))

    assert not files.source_path(imp.pk).exists()
    assert files.report_path(imp.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        jobs.do_delete_import(imp, actor=Actor.system("test"))

    assert not files.import_dir(imp.pk).exists() and not Import.objects.exists()


def test_it_never_runs_an_import_twice(personas, news, tmp_path):
    imp = run(personas.acme, write(tmp_path, "p.csv", "email\na@example.com\n"))

    again = jobs.run_import(imp.pk)

    assert again.status == Status.FINISHED
    assert AuditEvent.objects.filter(event="import.finished").count() == 1


def test_it_names_columns_for_the_command_line(personas, news, tmp_path):
    header = ["E-Mail", "Full name", "Mail"]

    assert mapping_for(header, []) == Mapping(0, 1, (Attribute(2, "Mail"),))
    assert mapping_for(header, [], email="3", name="e-mail") == Mapping(
        2, 0, (Attribute(1, "Full name"),)
    )
    with pytest.raises(MappingError) as info:
        mapping_for(header, [], email="Address")
    assert str(info.value) == (
        "no email column 'Address': the file's columns are 'E-Mail', 'Full name', 'Mail'"
    )


def test_it_stops_a_runner_that_lost_the_import(personas, news, tmp_path):
    text = csv_text([["email"], *([f"p{i}@example.com"] for i in range(300))])
    imp = start(personas.acme, write(tmp_path, "p.csv", text))

    def taken_over(current):
        if current.rows_done == 100 and current.status == Status.RUNNING:
            # Resumed elsewhere as if this runner had stalled: the import is no longer ours.
            Import.objects.filter(pk=current.pk).update(updated_at=timezone.now())

    done = jobs.run_import(imp.pk, chunk_rows=100, on_progress=taken_over)

    assert (done.status, done.rows_done, Subscriber.objects.count()) == (Status.RUNNING, 100, 100)
    assert not AuditEvent.objects.filter(event="import.finished").exists()


def test_it_deletes_uploads_never_started(
    personas, news, tmp_path, django_capture_on_commit_callbacks
):
    old = jobs.do_create_import(
        personas.acme,
        file=write(tmp_path, "old.csv", "email\na@example.com\n"),
        original_name="old.csv",
        lists=[news],
        actor=Actor.system("test"),
    )
    fresh = jobs.do_create_import(
        personas.acme,
        file=write(tmp_path, "fresh.csv", "email\nb@example.com\n"),
        original_name="fresh.csv",
        lists=[news],
        actor=Actor.system("test"),
    )
    Import.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - jobs.DRAFT_MAX_AGE - timedelta(minutes=1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.purge_abandoned_one() is True
    assert jobs.purge_abandoned_one() is False

    assert list(Import.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert not files.import_dir(old.pk).exists() and files.source_path(fresh.pk).exists()
    assert AuditEvent.objects.get(event="import.deleted").actor_label == "import clean-up"


def test_it_expires_the_files_that_hold_peoples_rows_after_the_retention(
    personas, news, tmp_path, monkeypatch
):
    text = "email\nold@example.com\nold@example.com\n"
    old = run(personas.acme, write(tmp_path, "old.csv", text))
    recent = run(personas.acme, write(tmp_path, "recent.csv", text))
    failed = start(personas.acme, write(tmp_path, "failed.csv", text))
    going = start(personas.acme, write(tmp_path, "going.csv", text))
    eight_days_ago = timezone.now() - timedelta(days=8)
    Import.objects.filter(pk=old.pk).update(finished_at=eight_days_ago)
    Import.objects.filter(pk=recent.pk).update(finished_at=timezone.now() - timedelta(days=6))
    Import.objects.filter(pk=failed.pk).update(status=Status.FAILED, finished_at=eight_days_ago)
    assert files.report_path(old.pk).exists() and files.source_path(failed.pk).exists()
    monkeypatch.setattr(jobs, "_next_sweep", 0.0)
    hour = iter([1000.0, 1000.0, 2000.0, 4601.0, 4601.0])

    assert jobs.expire_import_files_one(clock=lambda: next(hour)) is True
    assert jobs.expire_import_files_one(clock=lambda: next(hour)) is False  # within the hour
    assert jobs.expire_import_files_one(clock=lambda: next(hour)) is False  # nothing left

    assert not files.report_path(old.pk).exists()
    assert not files.source_path(failed.pk).exists()  # it can no longer be resumed
    assert files.report_path(recent.pk).exists()
    assert files.source_path(going.pk).exists()  # queued: its job still needs it
    assert Import.objects.filter(pk=old.pk).exists()  # the record of the import stays


def test_it_keeps_the_import_files_to_the_service_user(personas, news, tmp_path):
    previous = os.umask(0o022)  # the usual one, which would give 0644 and 0755
    try:
        queued = start(personas.acme, write(tmp_path, "q.csv", "email\nann@example.com\n"))
        done = run(personas.acme, write(tmp_path, "d.csv", "email\nx@a.test\nx@a.test\n"))
    finally:
        os.umask(previous)
    modes = {
        path: oct(path.stat().st_mode & 0o777)
        for path in (
            files.import_dir(queued.pk).parent,
            files.import_dir(queued.pk),
            files.source_path(queued.pk),
            files.import_dir(done.pk),
            files.report_path(done.pk),
        )
    }
    assert set(modes.values()) == {"0o700", "0o600"}
    assert {path for path, m in modes.items() if m == "0o600"} == {
        files.source_path(queued.pk),
        files.report_path(done.pk),
    }


def test_it_keeps_no_query_log_across_chunks(personas, news, tmp_path, settings):
    from django.db import connection, reset_queries

    settings.DEBUG = True  # Django logs every query then, as under `make run`
    text = csv_text([["email"], *([f"p{i}@example.com"] for i in range(1000))])
    reset_queries()

    run(personas.acme, write(tmp_path, "p.csv", text), chunk_rows=100)

    # One chunk's queries and the end's, not the ten chunks'.
    assert len(connection.queries) < 25


def test_it_reports_a_name_with_a_line_break_as_invalid_with_its_line(personas, news, tmp_path):
    # A quoted cell may span lines; as a name it would be the To header's display name.
    text = csv_text([["email", "name"], ["ann@example.com", "Ann\nBcc: v@evil.example"]])
    text += csv_text([["bob@example.com", "Bob"]])
    path = write(tmp_path, "people.csv", text)

    imp = run(personas.acme, path)

    assert imp.status == Status.FINISHED
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["bob@example.com"]
    [row] = report(imp)
    assert row[0] == "2"
    assert "the name must be one line without control characters" in row[1]
    assert "a line break (LF)" in row[1]


def test_it_refuses_an_attribute_name_with_a_control_character():
    with pytest.raises(MappingError, match="must be one line"):
        Mapping(email=0, attributes=(Attribute(1, "ci\rty", "text"),)).validated(["e", "c"])
