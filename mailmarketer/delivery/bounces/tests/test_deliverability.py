import pytest

from mailmarketer.delivery.bounces import deliverability, testing
from mailmarketer.delivery.bounces.apply import do_process_bounce
from mailmarketer.delivery.models import Delivery, DkimKey
from mailmarketer.testing import SETUP, add_people, launch, ledger_rows


@pytest.fixture
def sent(ws, news):
    people = add_people(ws, [news], 20, SETUP, prefix="d")
    rows = ledger_rows(
        launch(ws, [news], from_email="news@acme.test"), people, [Delivery.Status.SENT] * 20
    )
    do_process_bounce(
        testing.dsn(rows[0].subscriber.email, token=testing.token_for(rows[0])), channel="smtp"
    )
    do_process_bounce(
        testing.arf(rows[1].subscriber.email, token=testing.token_for(rows[1])), channel="smtp"
    )
    return rows


def test_it_computes_rates_per_campaign_and_sending_domain_with_gmails_thresholds(ws, sent):
    [(campaign, rates)] = deliverability.campaign_rates(ws)
    assert (rates.delivered, rates.bounced, rates.complaints) == (20, 1, 1)
    assert rates.bounce_rate == 0.05 and rates.bounce_level == "alarm"
    assert rates.complaint_rate == 0.05 and rates.complaint_level == "alarm"
    assert deliverability.level(0.0009, 0.001, 0.003) == "ok"
    assert deliverability.level(0.001, 0.001, 0.003) == "warn"
    assert deliverability.level(0.003, 0.001, 0.003) == "alarm"
    [domain] = deliverability.sending_domain_rates(ws, [(campaign, rates)])
    assert domain.label == "acme.test" and domain.delivered == 20
    [recipients] = deliverability.recipient_domains(ws)
    assert recipients == {
        "recipient_domain": "example.com",
        "hard": 1,
        "soft": 0,
        "complaints": 1,
        "total": 2,
    }


def test_it_shows_the_page_with_warnings_to_campaign_viewers(carol_client, sent, personas):
    html = carol_client.get("/app/acme/deliverability/").content.decode()
    assert "Autumn news" in html and "over Gmail" in html and "example.com" in html
    assert "d0@example.com" not in html
    from mailmarketer.testing import client_for, make_member, make_user

    support = make_user("sue@acme.test")
    make_member(personas.acme, support, "support")
    assert client_for(support).get("/app/acme/deliverability/").status_code == 403


def test_it_checks_the_dns_records_with_a_stub_resolver(ws, monkeypatch):
    DkimKey.objects.create(
        workspace=ws,
        domain="acme.test",
        selector="mm2026",
        private_key="x",
        public_key="-----BEGIN PUBLIC KEY-----\nABC\nDEF\n-----END PUBLIC KEY-----",
    )
    zone = {
        "acme.test": ["v=spf1 include:_spf.relay.example -all", "google-site-verification=x"],
        "mm2026._domainkey.acme.test": ["v=DKIM1; k=rsa; p=OTHER"],
    }
    records = deliverability.check(
        deliverability.records_for(ws), resolve=lambda n: zone.get(n, [])
    )
    status = {r.kind: (r.status, r.advice) for r in records}
    assert status["SPF"] == ("ok", "")
    assert status["DKIM"] == ("wrong", "the published key is not this key")
    assert status["DMARC"] == ("missing", "publish a DMARC policy")
    zone["mm2026._domainkey.acme.test"] = ["v=DKIM1; k=rsa; p=ABCDEF"]
    zone["_dmarc.acme.test"] = ["v=DMARC1; p=none; rua=mailto:dmarc@acme.test"]
    zone["acme.test"] = ["v=spf1 +all"]
    records = deliverability.check(
        deliverability.records_for(ws), resolve=lambda n: zone.get(n, [])
    )
    status = {r.kind: r.status for r in records}
    assert status == {"SPF": "wrong", "DKIM": "ok", "DMARC": "ok"}


def test_it_checks_now_only_on_post_and_never_leaves_the_machine_in_tests(
    alice_client, ws, monkeypatch
):
    asked = []
    monkeypatch.setattr(deliverability, "resolve_txt", lambda name: asked.append(name) or [])
    assert "Check now" in alice_client.get("/app/acme/deliverability/").content.decode()
    assert asked == []
    html = alice_client.post("/app/acme/deliverability/").content.decode()
    assert "_dmarc.acme.test" in asked and "Missing" in html


def test_it_gives_the_top_recipient_domains_their_rates_over_what_was_delivered_there(
    ws, sent, news
):
    from mailmarketer.audience import actions as audience

    others = [
        audience.do_create_subscriber(ws, email=f"o{i}@other.example", actor=SETUP)
        for i in range(5)
    ]
    ledger_rows(launch(ws, [news], name="Other"), others, [Delivery.Status.SENT] * 5)
    do_process_bounce(
        testing.dsn(others[0].email, status="4.2.2", nonce="x"), channel="smtp"
    )  # unmatched: no workspace, not counted
    [example] = deliverability.recipient_domain_rates(ws)
    assert (example.label, example.delivered, example.bounced, example.complaints) == (
        "example.com",
        20,
        1,
        1,
    )
    assert example.bounce_level == "alarm" and example.complaint_level == "alarm"


def test_it_draws_the_reports_per_day_with_the_shared_chart_and_its_table(carol_client, sent):
    chart = deliverability.daily_chart(sent[0].workspace)
    assert len(chart.points) == deliverability.DAYS
    assert [sum(v) for v in chart.series.values()] == [1, 0, 1]
    html = carol_client.get("/app/acme/deliverability/").content.decode()
    assert 'data-chart="deliverability-daily-data"' in html
    assert "uplot.iife.min.js" in html and "Reports per day (UTC) (table)" in html
