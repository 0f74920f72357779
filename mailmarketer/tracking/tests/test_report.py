"""Roll-ups and the website report: visits, bounces, durations and tops computed from hits; the
report and the API read them (never hits), compare with the previous range, show captured text
escaped, and show another workspace nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from mailmarketer.testing import url
from mailmarketer.tracking import rollup, web
from mailmarketer.tracking.models_web import RollupDue, WebHit, WebRollup
from mailmarketer.tracking.testing_web import CHROME, IPHONE, make_site

DAY = date(2026, 11, 2)
XSS = '"><script>document.title="pwned"</script><img src=x onerror=alert(1)>'


def at(hour, minute=0, day=DAY):
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def site(personas):
    return make_site(personas.acme)


def hit(site, when, path="/", *, ip="203.0.113.5", ua=CHROME, **fields):
    row = web.hit_row(
        site, at=when, key=f"{when.isoformat()}{path}{ip}{fields}"[:32], path=path, ip=ip, ua=ua,
        salt="fixed", **fields,
    )  # fmt: skip
    row["key"] = web.hashlib.sha256(repr(sorted(row.items())).encode()).hexdigest()[:32]
    return row


def visits_of_two_people(site):
    return [
        # person A: a visit of three page views (entry /, exit /pricing), an outbound click,
        # then a second visit an hour later that bounces
        hit(site, at(9, 0), "/", referrer="https://www.google.com/"),
        hit(site, at(9, 2), "/blog"),
        hit(site, at(9, 5), "/pricing"),
        hit(site, at(9, 6), "/pricing", kind="outbound", target="https://partner.example/"),
        hit(site, at(10, 30), "/blog"),
        # person B, on a phone, arrives from a campaign and bounces; a 404 from a log is no view
        hit(
            site,
            at(12, 0),
            "/",
            ip="198.51.100.1",
            ua=IPHONE,
            utm={"utm_source": "news", "utm_campaign": "fall"},
        ),
        hit(site, at(12, 1), "/nope", ip="198.51.100.1", ua=IPHONE, status=404),
    ]


def test_it_rolls_a_day_up_into_visits_bounces_durations_and_tops(site):
    web.store_rows(visits_of_two_people(site))
    rollup.rebuild_day(site, DAY)
    total = WebRollup.objects.get(site=site, period="day", dimension="total")
    assert (total.hits, total.pageviews, total.visitors, total.visits, total.bounces) == (
        7, 5, 2, 3, 2,
    )  # fmt: skip
    assert total.duration == 6 * 60 + 60  # A's first visit 9:00-9:06, B's 12:00-12:01
    hours = WebRollup.objects.filter(site=site, period="hour").order_by("start")
    assert [h.start.hour for h in hours] == [9, 10, 12]

    def values(dimension, metric):
        rows = WebRollup.objects.filter(site=site, dimension=dimension)
        return {r.value: getattr(r, metric) for r in rows}

    assert values("page", "pageviews") == {"/": 2, "/blog": 2, "/pricing": 1}
    assert values("entry", "visits") == {"/": 2, "/blog": 1}
    assert values("exit", "visits") == {"/pricing": 1, "/blog": 1, "/": 1}
    assert values("outbound", "hits") == {"https://partner.example/": 1}
    assert values("refclass", "visits") == {"search": 1, "direct": 1, "campaign": 1}
    assert values("referrer", "visits") == {"www.google.com": 1}
    assert values("utm_campaign", "visits") == {"fall": 1}
    assert values("device", "pageviews") == {"desktop": 4, "mobile": 1}
    assert values("browser", "pageviews") == {"Chrome 120": 4, "Mobile Safari 17.1": 1}


def test_it_rebuilds_a_day_to_the_same_counts(site):
    web.store_rows(visits_of_two_people(site))
    rollup.rebuild_day(site, DAY)
    first = sorted(WebRollup.objects.values_list("dimension", "value", "hits", "visits"))
    rollup.rebuild_day(site, DAY)
    assert sorted(WebRollup.objects.values_list("dimension", "value", "hits", "visits")) == first


def test_its_duty_rebuilds_due_days_and_waits_for_a_busy_one(site, settings):
    web.store_rows(visits_of_two_people(site))
    assert RollupDue.objects.filter(site=site, day=DAY).exists()
    settings.TRACKING_ROLLUP_DELAY = 3600
    assert rollup.rollup_one() is False
    settings.TRACKING_ROLLUP_DELAY = 0
    assert rollup.rollup_one() is True
    assert rollup.rollup_one() is False
    assert WebRollup.objects.filter(site=site, dimension="total", period="day").exists()


def test_the_report_compares_with_the_previous_range_and_escapes_captured_text(carol_client, site):
    rows = visits_of_two_people(site)
    rows.append(hit(site, at(8, 0), "/" + XSS, referrer="https://x.example/" + XSS, title=XSS))
    rows.append(hit(site, at(8, 1, DAY - timedelta(days=1)), "/", ip="192.0.2.9"))
    rows.append(hit(site, at(8, 2), "/", kind="event", name=XSS, ua=CHROME.replace("Chrome", XSS)))
    web.store_rows(rows)
    rollup.rebuild_day(site, DAY)
    rollup.rebuild_day(site, DAY - timedelta(days=1))
    response = carol_client.get(
        url("site-report", site_id=site.pk), {"from": DAY.isoformat(), "to": DAY.isoformat()}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "<script>document.title" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;document.title" in page
    figures = {row[0]: row[1:] for row in response.context["figures"]}
    assert figures["Page views"][:2] == (6, 1)  # this day, and the day before
    assert [p["start"].hour for p in response.context["series"]] == [8, 9, 10, 12]


def test_the_report_reads_roll_ups_not_hits(carol_client, site):
    web.store_rows(visits_of_two_people(site))
    rollup.rebuild_day(site, DAY)
    WebHit.objects.all().delete()  # what remains is what the report reads
    response = carol_client.get(
        url("site-report", site_id=site.pk), {"from": "2026-11-02", "to": "2026-11-02"}
    )
    figures = {row[0]: row[1] for row in response.context["figures"]}
    assert figures["Visitors"] == 2 and figures["Bounce rate"] == 66.7


@pytest.mark.parametrize(
    "params", [{"from": "yesterday"}, {"from": "2026-11-05", "to": "2026-11-01"}, {"to": "x" * 500}]
)
def test_the_report_answers_bad_ranges_with_a_message_not_an_error(carol_client, site, params):
    response = carol_client.get(url("site-report", site_id=site.pk), params)
    assert response.status_code == 200
    assert response.context["error"]
