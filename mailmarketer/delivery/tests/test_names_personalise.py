"""Names that personalise, end to end: a Mailchimp-shaped export imported, then a campaign sent
that greets each person by `{{ subscriber.first_name }}`."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from mailmarketer.audience.importing import jobs
from mailmarketer.audience.importing.mapping import mapping_for
from mailmarketer.audience.importing.queries import preview_of
from mailmarketer.delivery import engine, planner
from mailmarketer.delivery.models import SmtpServer
from mailmarketer.delivery.testing.smtpd import ScriptedSmtpServer
from mailmarketer.testing import launch

pytestmark = pytest.mark.django_db

MAILCHIMP = (
    '"Email Address","First Name","Last Name",MEMBER_RATING\n'
    "ann@example.com,Ann,Berg,2\n"
    "bob@example.com,,Brun,1\n"
)


@pytest.fixture(autouse=True)
def _fresh_engine(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    engine.reset_state()
    yield
    engine.reset_state()


def test_an_imported_first_name_personalises_a_campaign(personas, staff, news, tmp_path):
    personas.acme.postal_address = "1 Harbour Road, Bergen"
    personas.acme.save()
    path = tmp_path / "mailchimp.csv"
    path.write_text(MAILCHIMP, encoding="utf-8")
    imp = jobs.do_create_import(
        personas.acme,
        file=path,
        original_name=path.name,
        mode="subscribe",
        lists=[news],
        confirmed=True,
        notice_text="Yes, send me the news.",
        attribute_mode="merge",
        actor=staff,
    )
    mapping = mapping_for(imp.header, preview_of(imp).rows)
    jobs.do_start_import(imp, mapping=mapping, actor=staff, enqueue=False)
    jobs.run_import(imp.pk)

    with ScriptedSmtpServer() as relay:
        SmtpServer.objects.create(
            workspace=personas.acme,
            name="Local relay",
            host="127.0.0.1",
            port=relay.port,
            tls_mode="none",
        )
        launch(
            personas.acme,
            [news],
            subject='Hello {{ subscriber.first_name | default("there") }}',
            body="Dear {{ subscriber.first_name }} {{ subscriber.last_name }}, news.",
        )
        for _ in range(50):
            if not (planner.plan_one() | engine.send_one() | engine.finish_one()):
                break
        received = {}
        for message in relay.messages:
            parsed = BytesParser(policy=policy.default).parsebytes(message.data)
            received[message.rcpt_tos[0]] = parsed

    assert {to: m["Subject"] for to, m in received.items()} == {
        "ann@example.com": "Hello Ann",
        "bob@example.com": "Hello there",
    }
    ann_text = received["ann@example.com"].get_body(("plain",)).get_content()
    assert "Dear Ann Berg, news." in ann_text
    assert received["ann@example.com"]["To"] == "Ann Berg <ann@example.com>"
