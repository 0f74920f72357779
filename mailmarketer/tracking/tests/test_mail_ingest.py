"""The email hits' spool and its ingestion: the edge writes no database, the worker stores
batches with one INSERT and one facts call, reports agree after ingestion, and ingestion
stores every spooled hit once whatever stops it (a crash mid-batch, a dead writer's file)."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.timezone import now

from mailmarketer.audience.links import click_token, open_token
from mailmarketer.audience.models import Fact, FactKind
from mailmarketer.campaigns.models import CampaignLink
from mailmarketer.delivery.models import Delivery
from mailmarketer.lib import group_spool
from mailmarketer.tracking import mail, mail_ingest, mail_spool, queries, rollups
from mailmarketer.tracking.models import EmailEvent, MachineReason, RollupCursor
from mailmarketer.tracking.testing import ingest, send_campaign

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


@pytest.fixture
def sent(ws, news, people):
    campaign = send_campaign(ws, [news])
    Delivery.objects.filter(campaign=campaign).update(sent_at=now() - timedelta(minutes=5))
    return campaign


@pytest.fixture
def rows(sent):
    return list(Delivery.objects.filter(campaign=sent).order_by("pk"))


@pytest.fixture
def links(sent):
    return list(CampaignLink.objects.filter(campaign=sent).order_by("position"))


def click(client, row, link, agent=BROWSER, method="get"):
    return getattr(client, method)(f"/t/c/{click_token(row.pk, link.pk)}", HTTP_USER_AGENT=agent)


def record(kind, row, link=None, *, at=None, agent=BROWSER, method="GET") -> dict:
    return {
        "k": kind,
        "d": row.pk,
        "l": link.pk if link else None,
        "t": (at or now()).timestamp(),
        "m": method,
        "u": agent,
        "i": "203.0.113.0",
    }


def write_spool(name: str, lines: list[bytes]) -> None:
    directory = mail_spool.spool_dir()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(b"".join(lines))


def line(rec: dict) -> bytes:
    return json.dumps(rec).encode() + b"\n"


def test_the_edge_answers_without_writing_the_database(client, rows, links):
    click(client, rows[0], links[0])  # the first click of a link reads its URL once
    with CaptureQueriesContext(connection) as queries_run:
        response = click(client, rows[1], links[0])
        pixel = client.get(f"/t/o/{open_token(rows[1].pk)}", HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 302 and pixel.status_code == 200
    assert len(queries_run) == 0
    assert not EmailEvent.objects.exists()
    mail_spool.spool.close()
    (spooled,) = mail_spool.ready_files()
    assert len(spooled.read_bytes().splitlines()) == 3
    ingest()
    assert EmailEvent.objects.count() == 3
    assert not list(mail_spool.spool_dir().iterdir())


def test_it_keeps_no_whole_address_even_in_the_spool(client, rows, links):
    client.get(f"/t/o/{open_token(rows[0].pk)}", REMOTE_ADDR="198.51.100.23")
    mail_spool.spool.close()
    (spooled,) = mail_spool.ready_files()
    assert b"198.51.100.23" not in spooled.read_bytes()
    assert json.loads(spooled.read_bytes())["i"] == "198.51.100.0"


def test_it_stores_a_batch_with_one_insert_and_its_facts(rows, links, people):
    RollupCursor.objects.create(name=rollups.CURSOR)  # made once, by the first batch ever
    write_spool(
        "mail-00000000000000000001-1.jsonl",
        [line(record("c", row, links[n % 2])) for n, row in enumerate(rows) for _ in range(4)],
    )
    with CaptureQueriesContext(connection) as queries_run:
        assert mail_ingest.ingest_all() == 1
    inserts = [q for q in queries_run if 'INSERT INTO "tracking_emailevent"' in q["sql"]]
    assert len(inserts) == 1
    assert EmailEvent.objects.count() == 4 * len(rows)
    write_spool(
        "mail-00000000000000000002-1.jsonl",
        [line(record("c", row, links[n % 2])) for n, row in enumerate(rows) for _ in range(12)],
    )
    with CaptureQueriesContext(connection) as three_times_as_many:
        mail_ingest.ingest_all()
    assert len(three_times_as_many) == len(queries_run)  # statements per batch, not per hit
    fact = Fact.objects.get(subscriber=people[0], kind=FactKind.CLICKED, object_key__startswith="c")
    assert fact.count == 4 + 12
    assert EmailEvent.objects.filter(first_click=True).count() == len(rows)


def test_the_report_agrees_once_the_spool_is_ingested(client, sent, rows, links, monkeypatch):
    click(client, rows[0], links[0])
    click(client, rows[1], links[0])
    client.get(f"/t/o/{open_token(rows[2].pk)}", HTTP_USER_AGENT=BROWSER)
    monkeypatch.setattr(rollups, "LAG_SECONDS", 0)
    while rollups.roll_up_one():
        pass
    assert queries.campaign_report(sent).human.unique_clicks == 0  # still in the spool
    ingest()
    while rollups.roll_up_one():
        pass
    human = queries.campaign_report(sent).human
    assert (human.unique_clicks, human.clicks, human.unique_opens) == (2, 2, 3)


def test_it_flags_machines_from_what_it_knows_at_ingestion(rows, links, sent):
    moment = now()
    Delivery.objects.filter(pk=rows[0].pk).update(sent_at=moment - timedelta(seconds=3))
    write_spool(
        "mail-00000000000000000001-1.jsonl",
        [
            line(record("c", rows[0], links[0], at=moment)),  # 3 s after delivery
            line(record("c", rows[1], links[0], at=moment)),
            line(record("c", rows[1], links[1], at=moment + timedelta(seconds=1))),  # burst
            line(record("c", rows[2], links[0], method="HEAD")),
            line(record("o", rows[2], agent="Mozilla/5.0")),  # Apple's proxy
        ],
    )
    ingest()
    reasons = list(EmailEvent.objects.order_by("id").values_list("machine_reason", flat=True))
    assert sorted(reasons) == sorted(
        [MachineReason.FAST, "", MachineReason.BURST, MachineReason.HEAD, MachineReason.PROXY]
    )


def test_a_crash_mid_batch_stores_nothing_and_the_next_round_everything_once(
    rows, links, monkeypatch
):
    write_spool("mail-00000000000000000001-1.jsonl", [line(record("o", row)) for row in rows] * 3)
    real = mail.store_hits

    def crash(records):
        real(records)
        raise RuntimeError("killed half-way")

    monkeypatch.setattr(mail, "store_hits", crash)
    with pytest.raises(RuntimeError):
        mail_ingest.ingest_mail_one()
    assert not EmailEvent.objects.exists()
    monkeypatch.setattr(mail, "store_hits", real)
    monkeypatch.setattr(mail_ingest, "BATCH", 2)
    assert mail_ingest.ingest_mail_one()  # one batch of two, then "stopped"
    assert EmailEvent.objects.count() == 2
    assert RollupCursor.objects.filter(name__startswith="m:").exists()
    mail_ingest.ingest_all()
    assert EmailEvent.objects.count() == 3 * len(rows)
    assert not RollupCursor.objects.filter(name__startswith="m:").exists()
    assert not list(mail_spool.spool_dir().iterdir())


def test_it_takes_a_dead_writers_file_but_never_a_live_ones(client, rows, links):
    write_spool("mail-00000000000000000001-999999.open", [line(record("o", rows[0]))])
    click(client, rows[1], links[0])  # this process's file, open and locked
    (ready,) = mail_spool.ready_files()
    assert ready.name == "mail-00000000000000000001-999999.jsonl"
    mail_ingest.ingest_all()
    assert EmailEvent.objects.count() == 1
    ingest()  # hands this process's file over first
    assert EmailEvent.objects.count() == 2


def test_it_skips_a_torn_line_and_stores_the_rest(rows):
    write_spool(
        "mail-00000000000000000001-1.open",
        [line(record("o", rows[0])), b'{"k":"o","d":', line(record("o", rows[1]))[:-1]],
    )
    ingest()
    assert EmailEvent.objects.count() == 1  # the second line is torn; the third is whole


def test_it_hands_an_idle_processs_file_over_within_seconds(client, rows, monkeypatch):
    monkeypatch.setattr(group_spool, "ROTATE_SECONDS", 0.2)
    mail_spool.spool.close()
    mail_spool.spool._reset()
    client.get(f"/t/o/{open_token(rows[0].pk)}", HTTP_USER_AGENT=BROWSER)
    deadline = time.monotonic() + 5
    while not list(mail_spool.spool_dir().glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mail_ingest.ingest_all() == 1 and EmailEvent.objects.count() == 1


def test_many_requests_share_one_fsync_and_every_line_is_written(monkeypatch, tmp_path):
    syncs = []
    real = os.fdatasync

    def slow_sync(fd):
        syncs.append(fd)
        time.sleep(0.02)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow_sync)
    spool = mail_spool.GroupSpool()
    threads = [
        threading.Thread(target=lambda n=n: spool.append({"k": "o", "d": n, "t": 0}))
        for n in range(64)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spool.close()
    (path,) = mail_spool.ready_files()
    records, bad = mail_spool.read_records(path.read_bytes())
    assert sorted(r["d"] for r in records) == list(range(64)) and bad == 0
    assert len(syncs) < 32


def test_it_deletes_events_past_retention_but_keeps_the_report(sent, rows, settings, monkeypatch):
    from mailmarketer.tracking import mail_retention

    settings.TRACKING_EMAIL_EVENT_DAYS = 30
    write_spool(
        "mail-00000000000000000001-1.jsonl",
        [
            line(record("o", rows[0], at=now() - timedelta(days=31))),
            line(record("o", rows[1], at=now() - timedelta(days=29))),
        ],
    )
    ingest()
    assert not mail_retention.delete_old_email_events_one.unthrottled()  # not rolled up yet
    monkeypatch.setattr(rollups, "LAG_SECONDS", 0)
    while rollups.roll_up_one():
        pass
    assert mail_retention.delete_old_email_events_one.unthrottled()
    assert not mail_retention.delete_old_email_events_one.unthrottled()
    assert list(EmailEvent.objects.values_list("delivery_id", flat=True)) == [rows[1].pk]
    assert queries.campaign_report(sent).human.unique_opens == 2


def test_the_first_click_of_a_campaign_reads_all_its_links_at_once(client, rows, links):
    assert len(links) == 2
    with CaptureQueriesContext(connection) as first:
        assert click(client, rows[0], links[0]).status_code == 302
    with CaptureQueriesContext(connection) as second:
        response = click(client, rows[0], links[1])  # another link of the same campaign
    assert len(first) == 1 and len(second) == 0
    assert response["Location"] == links[1].url
