"""/t/e and /t/mm.js: what a hit stores, what it refuses, and that garbage never hurts.

/t/e spools; the worker stores. `post_hit` here posts a hit and then runs the worker's
ingestion (as a worker would a moment later), so each test checks what ends up stored."""

from __future__ import annotations

import gzip
import json

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mailmarketer.audience import actions as audience
from mailmarketer.audience.links import (
    landing_url_with_visitor_token,
    read_visitor_token,
    visitor_token,
)
from mailmarketer.audience.models import ConsentRecord, Fact
from mailmarketer.testing import SETUP
from mailmarketer.tracking import queries_web, spool, views_web, web, web_ingest
from mailmarketer.tracking.models_web import IpMode, RollupDue, WebCounter, WebHit
from mailmarketer.tracking.testing_web import (
    CHROME,
    GOOGLEBOT,
    IPHONE,
    grant_tracking,
    ingest,
    make_site,
)
from mailmarketer.tracking.testing_web import post_hit as post_only


def post_hit(client, site, **kwargs):
    """Posts a hit, then the worker ingests the spool."""
    response = post_only(client, site, **kwargs)
    ingest()
    return response


@pytest.fixture(autouse=True)
def _fresh(settings, tmp_path):
    queries_web.forget_sites()
    views_web.flood.counts.clear()
    views_web._counts.clear()
    settings.TRACKING_SPOOL_DIR = tmp_path / "spool"


@pytest.fixture
def site(personas):
    return make_site(personas.acme)


@pytest.fixture
def client():
    return Client()


def test_it_stores_a_page_view_with_what_the_browser_and_url_tell(client, site):
    response = post_hit(
        client,
        site,
        u="https://acme.test/pricing?utm_source=news&utm_medium=email&utm_campaign=autumn&x=1",
        r="https://www.google.com/search?q=secret+words",
        t="Pricing",
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "https://acme.test"
    hit = WebHit.objects.get()
    assert (hit.workspace_id, hit.site_id, hit.kind, hit.path) == (
        site.workspace_id,
        site.pk,
        "pageview",
        "/pricing",
    )
    assert hit.title == "Pricing"
    # The referring page's query (a search term) is not kept; its class comes from the UTM.
    assert hit.referrer == "https://www.google.com/search"
    assert hit.referrer_host == "www.google.com"
    assert hit.referrer_class == "email"
    assert (hit.utm_source, hit.utm_medium, hit.utm_campaign) == ("news", "email", "autumn")
    assert (hit.browser, hit.browser_version, hit.os, hit.device) == (
        "Chrome",
        "120",
        "Windows",
        "desktop",
    )
    assert hit.ip == "203.0.113.0"  # truncated to the /24 by default
    assert len(hit.visitor) == 16 and hit.subscriber_id is None
    assert RollupDue.objects.filter(site=site, day=hit.at.date()).exists()


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("", "direct"),
        ("https://www.bing.com/search", "search"),
        ("https://duckduckgo.com/", "search"),
        ("https://t.co/abc", "social"),
        ("https://www.linkedin.com/feed/", "social"),
        ("https://mail.google.com/mail/u/0/", "email"),
        ("https://acme.test/blog", "internal"),
        ("https://example.org/a-post", "other"),
        ("javascript:alert(1)", "direct"),
    ],
)
def test_it_classes_referrers(client, site, referrer, expected):
    post_hit(client, site, r=referrer)
    assert WebHit.objects.get().referrer_class == expected


def test_it_gives_the_same_visitor_hash_the_same_day_and_tells_devices_apart(client, site):
    post_hit(client, site)
    post_hit(client, site, u="https://acme.test/b")
    post_hit(client, site, ua=IPHONE)
    first, second, phone = WebHit.objects.order_by("id")
    assert first.visitor == second.visitor != phone.visitor
    assert phone.device == "mobile" and phone.os == "iOS"


def test_it_stores_outbound_clicks_downloads_and_custom_events(client, site):
    post_hit(client, site, k="o", g="https://other.example/x")
    post_hit(client, site, k="d", g="https://acme.test/files/guide.pdf")
    post_hit(client, site, k="e", n="signup", p={"plan": "pro"})
    outbound, download, event = WebHit.objects.order_by("id")
    assert (outbound.kind, outbound.target) == ("outbound", "https://other.example/x")
    assert (download.kind, download.target) == ("download", "https://acme.test/files/guide.pdf")
    assert (event.kind, event.name, json.loads(event.props)) == ("event", "signup", {"plan": "pro"})


def test_it_stores_nothing_from_an_origin_the_site_does_not_allow(client, site):
    response = post_hit(client, site, origin="https://evil.test")
    assert response.status_code == 204
    assert "Access-Control-Allow-Origin" not in response
    assert not WebHit.objects.exists()
    assert WebCounter.objects.get(site=site, name="refused").count == 1


@pytest.mark.parametrize("header", [{"HTTP_DNT": "1"}, {"HTTP_SEC_GPC": "1"}])
def test_it_stores_nothing_when_the_browser_asks_not_to_be_tracked(client, site, header):
    assert post_hit(client, site, headers=header).status_code == 204
    assert not WebHit.objects.exists()


def test_it_counts_bots_apart(client, site):
    post_hit(client, site, ua=GOOGLEBOT)
    post_hit(client, site, ua="")
    assert not WebHit.objects.exists()
    assert WebCounter.objects.get(site=site, name="bot").count == 2


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1,2,3]",
        b'{"s": 12}',
        b'{"s": "nope"}',
        b"\xff\xfe\x00garbage",
        b'{"s": null, "u": {"a": 1}}',
        b"x" * 20000,
    ],
)
def test_it_answers_garbage_with_204_and_stores_nothing(client, site, body):
    response = client.post(
        "/t/e", data=body, content_type="text/plain", HTTP_ORIGIN="https://acme.test"
    )
    ingest()
    assert response.status_code == 204
    assert not WebHit.objects.exists()


def test_it_cuts_every_captured_field_and_drops_control_characters(client, site):
    huge = "<script>alert(1)</script>" + "a" * 1500
    post_hit(
        client,
        site,
        u="https://acme.test/" + huge + "?utm_campaign=" + "c" * 500,
        r="https://ref.example/" + huge,
        t="Title\x00with NUL" + huge,
        k="e",
        n="n" * 500,
        p={"k": "v" * 1500},
        ua=CHROME + "x" * 5000,
    )
    hit = WebHit.objects.get()
    assert len(hit.path) <= 1024 and hit.path.startswith("/<script>")
    assert len(hit.referrer) <= 1024 and len(hit.title) <= 300 and "\x00" not in hit.title
    assert len(hit.utm_campaign) == 100 and len(hit.name) == 100 and len(hit.props) <= 1000


def test_it_limits_a_flood_from_one_address_without_affecting_others(client, site, settings):
    settings.TRACKING_IP_HITS_PER_MINUTE = 3
    for _ in range(6):
        post_hit(client, site, ip="198.51.100.9")
    post_hit(client, site, ip="192.0.2.1")
    assert WebHit.objects.filter(ip="198.51.100.0").count() == 3
    assert WebHit.objects.filter(ip="192.0.2.0").count() == 1
    assert WebCounter.objects.get(site=site, name="flood").count == 3


def test_it_keeps_the_ip_as_the_site_says(client, personas):
    none = make_site(personas.acme, "none.test", ip_mode=IpMode.NONE)
    keep = make_site(personas.acme, "keep.test", ip_mode=IpMode.KEEP)
    post_hit(client, none, origin="https://none.test", ip="2001:db8:1234:5678::1")
    post_hit(client, keep, origin="https://keep.test", ip="2001:db8:1234:5678::1")
    assert WebHit.objects.get(site=none).ip == ""
    kept = WebHit.objects.get(site=keep)
    assert (kept.ip, kept.ip_whole) == ("2001:db8:1234:5678::1", True)
    assert web.truncate_ip("2001:db8:1234:5678::1") == "2001:db8:1234::"


def test_it_links_a_consenting_person_and_records_visited_facts(client, site, personas):
    person = audience.do_create_subscriber(personas.acme, email="p@example.com", actor=SETUP)
    grant_tracking(person)
    post_hit(
        client, site, u="https://acme.test/pricing", v=visitor_token(site.workspace_id, person.pk)
    )
    hit = WebHit.objects.get()
    assert hit.subscriber_id == person.pk
    keys = set(
        Fact.objects.filter(subscriber=person, kind="visited").values_list("object_key", flat=True)
    )
    assert keys == {f"site:{site.pk}", f"path:{site.pk}:/pricing"}


def test_it_keeps_hits_anonymous_without_consent_or_with_a_bad_token(client, site, personas):
    person = audience.do_create_subscriber(personas.acme, email="p@example.com", actor=SETUP)
    token = visitor_token(site.workspace_id, person.pk)
    post_hit(client, site, v=token)  # no consent yet
    grant_tracking(person)
    grant_tracking(person, ConsentRecord.Action.WITHDRAW)
    post_hit(client, site, v=token)  # withdrawn
    grant_tracking(person)
    post_hit(client, site, v=token[:-1] + ("A" if token[-1] != "A" else "B"))  # altered
    post_hit(client, site, v=visitor_token(personas.evil.pk, person.pk))  # other workspace
    assert WebHit.objects.count() == 4
    assert not WebHit.objects.exclude(subscriber=None).exists()
    assert not Fact.objects.exists()


def test_it_makes_landing_urls_with_a_token_only_the_reader_accepts():
    url = landing_url_with_visitor_token("https://acme.test/p?a=1&mm_vt=old#top", 3, 42)
    assert url.startswith("https://acme.test/p?a=1&mm_vt=") and url.endswith("#top")
    token = url.split("mm_vt=")[1].split("#")[0]
    assert read_visitor_token(token) == (3, 42)
    assert read_visitor_token("3.42.forged") is None
    assert read_visitor_token("x" * 500) is None


def test_it_serves_a_small_cacheable_snippet(client):
    response = client.get("/t/mm.js", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert len(response.content) < 2048
    assert "max-age=86400" in response["Cache-Control"]
    assert b"sendBeacon" in gzip.decompress(response.content)
    again = client.get("/t/mm.js", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304


# -- the spool: nothing written to the database in the request, nothing lost ----------------


def test_the_edge_writes_no_database_and_stores_only_once_ingested(client, site, settings):
    post_hit(client, site)  # the site and the day's salt are known to this process now
    WebHit.objects.all().delete()
    with CaptureQueriesContext(connection) as queries:
        for n in range(5):
            assert post_only(client, site, u=f"https://acme.test/{n}").status_code == 204
    assert len(queries) == 0
    assert not WebHit.objects.exists()
    web_ingest.spool.close()
    [spooled] = mail_ingest_files()
    assert oct(spooled.stat().st_mode & 0o777) == "0o600"
    assert b"203.0.113.77" not in spooled.read_bytes()  # only the kept (truncated) address
    assert web_ingest.ingest_all() == 1
    assert sorted(WebHit.objects.values_list("path", flat=True)) == ["/0", "/1", "/2", "/3", "/4"]
    assert not mail_ingest_files()


def mail_ingest_files():
    from mailmarketer.tracking import mail_spool

    return mail_spool.ready_files(web_ingest.PREFIX)


def test_a_flood_costs_no_database_write_per_hit(client, site, settings):
    settings.TRACKING_IP_HITS_PER_MINUTE = 1
    post_hit(client, site, ip="198.51.100.9")
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            post_only(client, site, ip="198.51.100.9")
    assert len(queries) == 0
    ingest()
    assert WebCounter.objects.get(site=site, name="flood").count == 20
    assert WebHit.objects.count() == 1


def test_one_batch_is_one_insert_whatever_its_size(client, site, personas):
    person = audience.do_create_subscriber(personas.acme, email="p@example.com", actor=SETUP)
    grant_tracking(person)
    token = visitor_token(site.workspace_id, person.pk)

    def statements(hits: int) -> int:
        for n in range(hits):
            post_only(client, site, u=f"https://acme.test/{hits}/{n}", v=token)
        web_ingest.spool.close()
        with CaptureQueriesContext(connection) as queries:
            web_ingest.ingest_all()
        inserts = [q for q in queries if q["sql"].startswith("INSERT INTO tracking_webhit")]
        assert len(inserts) == 1
        return len(queries)

    statements(1)  # the first round makes the lock's row
    assert statements(3) == statements(9)
    assert WebHit.objects.filter(subscriber=person).count() == 13
    assert Fact.objects.filter(subscriber=person, kind="visited").count() == 1 + 13


def test_consent_withdrawn_before_the_hit_is_stored_keeps_it_anonymous(client, site, personas):
    person = audience.do_create_subscriber(personas.acme, email="p@example.com", actor=SETUP)
    grant_tracking(person)
    post_only(client, site, v=visitor_token(site.workspace_id, person.pk))
    grant_tracking(person, ConsentRecord.Action.WITHDRAW)
    ingest()
    assert WebHit.objects.get().subscriber_id is None
    assert not Fact.objects.exists()


def test_a_worker_killed_mid_batch_stores_nothing_then_everything_once(client, site, monkeypatch):
    for n in range(5):
        post_only(client, site, u=f"https://acme.test/{n}", i=f"id{n}")
    web_ingest.spool.close()
    [spooled] = mail_ingest_files()
    copy = spooled.read_bytes()
    real = web_ingest.RollupCursor.save

    def killed(self, *args, **kwargs):
        if self.name.startswith("w:"):
            raise OperationalError("the worker died here")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(web_ingest.RollupCursor, "save", killed)
    with pytest.raises(OperationalError):
        web_ingest.ingest_web_one()
    assert not WebHit.objects.exists()  # the batch went with its mark
    monkeypatch.setattr(web_ingest.RollupCursor, "save", real)
    monkeypatch.setattr(web_ingest, "BATCH", 2)
    assert web_ingest.ingest_all() == 3
    # The same lines again (a file replayed after its mark was lost), with a torn last line.
    (spooled.parent / "web-00000000000000000001-1.jsonl").write_bytes(copy + b'{"torn')
    assert web_ingest.ingest_all() == 3
    assert sorted(WebHit.objects.values_list("path", flat=True)) == ["/0", "/1", "/2", "/3", "/4"]


def test_it_takes_hits_while_the_database_is_down_and_stores_them_once_it_is_back(
    client, site, monkeypatch
):
    post_hit(client, site)  # the site is known to this process now
    down = OperationalError("the database is down")

    def fail(*args, **kwargs):
        raise down

    monkeypatch.setattr(web, "_salts", {})
    monkeypatch.setattr(web.VisitorSalt.objects, "bulk_create", fail)
    monkeypatch.setattr(queries_web.Site.objects, "filter", fail)
    monkeypatch.setattr(web, "store_rows", fail)
    assert post_only(client, site, u="https://acme.test/while-down").status_code == 204
    web_ingest.spool.close()
    with pytest.raises(OperationalError):
        web_ingest.ingest_web_one()
    monkeypatch.undo()
    ingest()
    assert sorted(WebHit.objects.values_list("path", flat=True)) == ["/", "/while-down"]


def test_it_stores_in_the_request_when_the_spool_refuses(client, site, monkeypatch):
    def full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(web_ingest.spool, "append", full)
    assert post_only(client, site, u="https://acme.test/direct").status_code == 204
    assert WebHit.objects.get().path == "/direct"


def test_it_answers_503_only_when_neither_the_spool_nor_the_database_keeps_the_hit(
    client, site, monkeypatch
):
    monkeypatch.setattr(web, "store_rows", lambda rows: (_ for _ in ()).throw(OperationalError()))
    monkeypatch.setattr(web_ingest.spool, "append", lambda r: (_ for _ in ()).throw(OSError()))
    assert post_hit(client, site).status_code == 503


def test_it_answers_503_when_the_database_is_down_and_the_site_unknown(client, site, monkeypatch):
    def fail(*args, **kwargs):
        raise OperationalError("the database is down")

    monkeypatch.setattr(queries_web.Site.objects, "filter", fail)
    assert post_only(client, site).status_code == 503
    web_ingest.spool.close()
    assert not mail_ingest_files()


def test_old_fallback_spool_files_are_still_replayed_once(site):
    row = web.hit_row(site, at=timezone.now(), key="k1", path="/old", ip="203.0.113.1", ua=CHROME)
    directory = spool.spool_dir()
    directory.mkdir(parents=True)
    line = json.dumps(spool._plain(row)) + "\n"
    (directory / "hits-1.jsonl").write_text(line)
    assert spool.replay_spool_one() is True
    (directory / "hits-2.jsonl.replaying").write_text(line + '{"torn')
    assert spool.replay_spool_one() is True
    assert spool.replay_spool_one() is False
    assert list(WebHit.objects.values_list("path", flat=True)) == ["/old"]


@pytest.mark.parametrize(
    ("ip", "kept"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("255.255.255.255", "255.255.255.0"),
        ("0.0.0.0", "0.0.0.0"),  # noqa: S104 (an address to cut, not one to bind)
        ("256.1.1.1", ""),
        ("01.2.3.4", ""),
        ("1.2.3", ""),
        ("1.2.3.4.5", ""),
        (" 1.2.3.4\n", "1.2.3.0"),  # spaces and brackets are stripped, as ever
        ("\uff11.2.3.4", ""),
        ("::ffff:198.51.100.7", "198.51.100.0"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::"),
        ("not an address", ""),
    ],
)
def test_it_cuts_addresses_to_their_network_and_nothing_else(ip, kept):
    assert web.truncate_ip(ip) == kept


# -- the edge decides little; the worker does the rest --------------------------------------


def spooled_lines() -> list[dict]:
    web_ingest.spool.close()
    return [
        json.loads(line)
        for path in mail_ingest_files()
        for line in path.read_bytes().splitlines()
        if line
    ]


def test_the_edge_spools_the_hit_as_it_came_and_parses_no_user_agent(client, site, monkeypatch):
    def no_parsing(ua):
        raise AssertionError("the user agent is parsed at ingestion, not in the request")

    monkeypatch.setattr(web, "agent", no_parsing)
    post_only(client, site, u="https://acme.test/p?utm_source=news", r="https://t.co/x")
    (line,) = spooled_lines()
    assert (line["u"], line["r"], line["ua"]) == (
        "https://acme.test/p?utm_source=news",
        "https://t.co/x",
        CHROME,
    )
    assert line["ip"] == "203.0.113.0" and "203.0.113.77" not in json.dumps(line)
    assert "browser" not in line and "referrer_class" not in line
    monkeypatch.undo()
    ingest()
    hit = WebHit.objects.get()
    assert (hit.path, hit.utm_source, hit.referrer_class, hit.browser) == (
        "/p",
        "news",
        "campaign",  # a UTM tag outranks the referrer
        "Chrome",
    )


def test_no_address_reaches_the_spool_when_the_site_keeps_none(client, personas):
    none = make_site(personas.acme, "none.test", ip_mode=IpMode.NONE)
    post_only(client, none, origin="https://none.test", ip="198.51.100.23")
    (line,) = spooled_lines()
    assert "ip" not in line and "198.51.100" not in json.dumps(line)
    assert len(line["h"]) == 16  # the visitor hash, made from the whole address here


def test_bots_are_counted_with_the_batch_that_drops_them(client, site, monkeypatch):
    post_only(client, site, ua=GOOGLEBOT)
    post_only(client, site)
    web_ingest.spool.close()
    real = web_ingest.store

    def fails(*args):
        raise OperationalError("the worker died here")

    monkeypatch.setattr(web_ingest, "store", fails)
    with pytest.raises(OperationalError):
        web_ingest.ingest_web_one()
    assert not WebCounter.objects.exists()  # the count went with the batch
    monkeypatch.setattr(web_ingest, "store", real)
    ingest()
    assert WebCounter.objects.get(site=site, name="bot").count == 1
    assert WebHit.objects.count() == 1


def test_hits_of_a_site_deleted_before_ingestion_are_dropped(client, personas):
    gone = make_site(personas.acme, "gone.test")
    kept = make_site(personas.acme, "kept.test")
    post_only(client, gone, origin="https://gone.test")
    post_only(client, kept, origin="https://kept.test")
    gone.delete()
    ingest()
    assert list(WebHit.objects.values_list("site_id", flat=True)) == [kept.pk]


def test_lines_of_the_earlier_shape_are_still_stored(site):
    row = web.hit_row(site, at=timezone.now(), key="k1", path="/old", ip="203.0.113.1", ua=CHROME)
    record = {k: (v.isoformat() if k == "at" else v) for k, v in row.items()}
    directory = web_ingest.group_spool.spool_dir()
    directory.mkdir(parents=True)
    (directory / "web-00000000000000000001-1.jsonl").write_text(json.dumps(record) + "\n")
    ingest()
    assert list(WebHit.objects.values_list("path", flat=True)) == ["/old"]
