"""`importlogs`: real-shaped Apache and nginx lines, gzip, bad lines, bots, static assets,
idempotent re-imports, and the same stored shape as the snippet's hits."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mailmarketer.tracking import logs
from mailmarketer.tracking.logs import FormatError, Importer, compile_format, parse_time
from mailmarketer.tracking.models_web import RollupDue, WebHit
from mailmarketer.tracking.testing_web import make_site

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36"
)
APACHE = [
    # Apache combined, IPv4, a search referrer, UTM parameters
    f'203.0.113.5 - - [10/Oct/2026:13:55:36 -0700] "GET /pricing?utm_source=news&utm_campaign=fall HTTP/1.1" 200 2326 "https://www.google.com/search?q=x" "{CHROME}"',  # noqa: E501
    # IPv6, an authenticated user, a 404
    f'2001:db8::1 - frank [10/Oct/2026:13:55:37 -0700] "GET /missing HTTP/1.1" 404 209 "-" "{CHROME}"',  # noqa: E501
    # Apache escapes a quote inside the user agent as \"
    r'198.51.100.7 - - [10/Oct/2026:13:55:38 -0700] "GET /blog/a HTTP/2.0" 200 512 "https://t.co/x" "Mozilla/5.0 \"quoted\" (Windows NT 10.0) Firefox/120.0"',  # noqa: E501
    # a static asset and a bot
    f'203.0.113.5 - - [10/Oct/2026:13:55:39 -0700] "GET /static/app.css HTTP/1.1" 200 99 "-" "{CHROME}"',  # noqa: E501
    '66.249.66.1 - - [10/Oct/2026:13:55:40 -0700] "GET / HTTP/1.1" 200 1000 "-" "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"',  # noqa: E501
    # a download
    f'203.0.113.5 - - [10/Oct/2026:13:55:41 -0700] "GET /files/guide.pdf HTTP/1.1" 200 99999 "-" "{CHROME}"',  # noqa: E501
    # broken lines: cut short, a binary request (TLS to a plain port), not a log line
    '203.0.113.5 - - [10/Oct/2026:13:55:42 -0700] "GET /cut',
    r'203.0.113.9 - - [10/Oct/2026:13:55:43 -0700] "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" 400 157 "-" "-"',  # noqa: E501
    "this is not a log line",
    # nginx escapes a quote as \x22; XSS in the referrer and path is stored as text
    r'192.0.2.44 - - [10/Oct/2026:13:55:44 +0000] "GET /<script>alert(1)</script> HTTP/1.1" 200 10 "https://evil.example/\x22><img src=x onerror=alert(1)>" "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) Safari/605.1.15 Version/17.1"',  # noqa: E501
]


@pytest.fixture
def site(personas):
    return make_site(personas.acme)


def write(tmp_path, name, lines, compress=False):
    path = tmp_path / name
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def test_it_imports_real_shaped_apache_lines_and_counts_the_rest_apart(tmp_path, site):
    totals = Importer(site).run([write(tmp_path, "access.log", APACHE)])
    assert totals.summary() == {
        "lines": 10,
        "valid": 7,
        "stored": 5,
        "duplicates": 0,
        "bots": 1,
        "static": 1,
        "bad": 3,
        "not_found": 1,
        "unique_paths": 7,
    }
    assert [n for _, n in totals.bad_lines] == [7, 8, 9]
    hits = {h.path: h for h in WebHit.objects.all()}
    pricing = hits["/pricing"]
    assert pricing.at == datetime(2026, 10, 10, 20, 55, 36, tzinfo=UTC)
    assert (pricing.source, pricing.kind, pricing.status, pricing.ip) == (
        "log",
        "pageview",
        200,
        "203.0.113.0",
    )
    assert (pricing.utm_source, pricing.utm_campaign, pricing.referrer_class) == (
        "news",
        "fall",
        "campaign",
    )
    assert (pricing.browser, pricing.browser_version, pricing.os) == ("Chrome", "119", "Linux")
    assert hits["/missing"].ip == "2001:db8::" and hits["/missing"].status == 404
    assert hits["/blog/a"].browser == "Firefox" and hits["/blog/a"].referrer_class == "social"
    assert hits["/files/guide.pdf"].kind == "download"
    evil = hits["/<script>alert(1)</script>"]
    assert evil.referrer.startswith('https://evil.example/"><img')
    assert RollupDue.objects.filter(site=site).exists()


def test_it_adds_nothing_twice_on_a_reimport_or_an_overlapping_rotated_file(tmp_path, site):
    first = write(tmp_path, "access.log.1", APACHE[:3])
    Importer(site).run([first])
    # The rotated file overlaps the previous one by a line, and is gzipped.
    second = write(tmp_path, "access.log.2.gz", APACHE[2:6], compress=True)
    totals = Importer(site).run([first, second])
    assert (totals.stored, totals.duplicates) == (1, 4)
    assert WebHit.objects.count() == 4


def test_it_keeps_two_equal_hits_of_the_same_second(tmp_path, site):
    Importer(site).run([write(tmp_path, "a.log", [APACHE[0], APACHE[0]])])
    assert WebHit.objects.count() == 2
    Importer(site).run([write(tmp_path, "b.log", [APACHE[0], APACHE[0], APACHE[0]])])
    assert WebHit.objects.count() == 3


def test_it_reads_common_nginx_json_and_log_format_strings(tmp_path, site):
    common = '10.0.0.1 - - [01/Nov/2026:00:00:01 +0100] "GET /common HTTP/1.0" 200 5'
    Importer(site, "common").run([write(tmp_path, "c.log", [common])])
    record = {
        "time_iso8601": "2026-11-01T00:00:02+00:00",
        "remote_addr": "10.0.0.2",
        "request": "GET /json?a=1 HTTP/1.1",
        "status": "200",
        "http_referer": "",
        "http_user_agent": CHROME,
    }
    Importer(site, "nginx-json").run([write(tmp_path, "j.log", [json.dumps(record), "{bad"])])
    fmt = '$remote_addr [$time_local] "$request" $status "$http_user_agent" rt=$request_time'
    custom = f'10.0.0.3 [01/Nov/2026:00:00:03 +0000] "POST /custom HTTP/1.1" 201 "{CHROME}" rt=0.01'
    Importer(site, fmt).run([write(tmp_path, "n.log", [custom])])
    assert set(WebHit.objects.values_list("path", flat=True)) == {"/common", "/json", "/custom"}


def test_it_refuses_an_unknown_format():
    with pytest.raises(FormatError):
        compile_format("apache-ish")
    with pytest.raises(FormatError):
        compile_format("$remote_addr $status")


def test_it_parses_apache_times_to_utc_and_refuses_nonsense():
    assert parse_time("10/Oct/2026:13:55:36 -0700", False) == datetime(
        2026, 10, 10, 20, 55, 36, tzinfo=UTC
    )
    assert parse_time("32/Foo/2026:99:00:00 +0000", False) is None
    assert parse_time("2026-10-10T10:00:00", True) is None  # no zone: ambiguous


def test_it_runs_as_a_command_with_a_summary(tmp_path, site):
    out = io.StringIO()
    path = write(tmp_path, "access.log", APACHE)
    call_command(
        "importlogs", str(path), "--site", site.domain, "--quiet", "--no-overlap", stdout=out
    )
    text = out.getvalue()
    assert "5 stored" in text and "3 bad lines" in text and "access.log:7" in text
    with pytest.raises(CommandError, match="no such site"):
        call_command("importlogs", str(path), "--site", "nope.test", "--quiet")


@pytest.mark.django_db(transaction=True)
def test_it_writes_the_same_rows_from_a_second_thread(tmp_path, acme, monkeypatch):
    monkeypatch.setattr(logs, "BATCH_LINES", 2)  # several batches through the writer thread
    site = make_site(acme)
    log = write(tmp_path, "access.log", APACHE)
    totals = Importer(site, overlap=True).run([log])
    assert (totals.stored, totals.duplicates, totals.bad) == (5, 0, 3)
    assert WebHit.objects.filter(site=site).count() == 5
    assert Importer(site, overlap=True).run([log]).duplicates == 5


def test_its_inserts_are_seen_by_whoever_watches_the_statements(tmp_path, site):
    """On SQLite the INSERTs skip Django's placeholder rewriting unless something watches the
    statements (an execute_wrapper, a debug cursor): then they go through Django's cursor, so
    the watcher sees them, and the rows stored are the same."""
    from django.db import connection

    seen = []

    def watch(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        totals = Importer(site).run([write(tmp_path, "access.log", APACHE)])
    assert totals.stored == 5
    assert sum("INSERT INTO tracking_webhit" in sql for sql in seen) == 1
    assert WebHit.objects.filter(site=site).count() == 5
    again = Importer(site).run([write(tmp_path, "again.log", APACHE)])
    assert (again.stored, again.duplicates) == (0, 5)
