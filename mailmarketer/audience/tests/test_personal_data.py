"""Export and erasure cover every table: checked against the model registry, so a table added
later that references a subscriber fails these tests until it is registered."""

import json

from django.apps import apps
from django.db import connection, models

from mailmarketer.audience import actions, personal_data
from mailmarketer.audience.actions import ConsentSource, Reason
from mailmarketer.audience.models import Subscriber


def models_referencing_subscribers():
    found = {Subscriber._meta.label}
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, models.ForeignKey) and field.related_model is Subscriber:
                found.add(model._meta.label)
    return found


def test_it_registers_every_model_that_references_a_subscriber():
    missing = models_referencing_subscribers() - set(personal_data.REGISTRY)
    assert not missing, f"register these in audience/personal_data.py: {sorted(missing)}"


def make_person(personas, staff, news):
    sub = actions.do_create_subscriber(
        personas.acme,
        email="Zelda.Unique@example.com",
        name="Zelda Uniquename",
        attributes={"city": "Trondheim-Unique"},
        actor=staff,
    )
    notice = actions.notice_for_text(personas.acme, "Form", "Yes, mail me.")
    source = ConsentSource("form", "1", "Form", ip="203.0.113.77", user_agent="UniqueBrowser/1.0")
    actions.do_subscribe(
        sub, [news], actor=staff, reason=Reason.BY_SUBSCRIBER, source=source, notice=notice
    )
    actions.do_update_subscriber(sub, attributes={"plan": "pro"}, actor=staff)
    return sub


def test_it_exports_every_registered_section(personas, staff, news):
    sub = make_person(personas, staff, news)
    document = actions.do_export_personal_data(sub, actor=staff)
    sections = {holder.section for holder in personal_data.REGISTRY.values()}
    assert sections <= set(document)
    assert document["profile"]["email"] == "Zelda.Unique@example.com"
    assert document["profile"]["attributes"] == {"city": "Trondheim-Unique", "plan": "pro"}
    assert document["subscriptions"][0]["mailing_list__slug"] == "news"
    assert document["consent"][0]["notice__text"] == "Yes, mail me."
    assert document["consent"][0]["ip"] == "203.0.113.77"
    json.dumps(document)  # plain JSON, no models or dates left


def text_of_every_table() -> str:
    """All rows of all tables as text, to search for anything naming the person."""
    dump = []
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - table names from models
            dump.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(dump)


def test_it_erases_every_row_naming_the_person(personas, staff, news):
    sub = make_person(personas, staff, news)
    uuid = str(sub.uuid)
    before = text_of_every_table()
    assert "Zelda.Unique" in before and "203.0.113.77" in before
    actions.do_erase_subscriber(sub, actor=staff)
    after = text_of_every_table()
    for needle in (
        "Zelda",
        "zelda",
        "Uniquename",
        "Trondheim-Unique",
        "203.0.113.77",
        "UniqueBrowser",
    ):
        assert needle not in after, needle
    # The audit log keeps the fact of the erasure, by uuid only.
    assert uuid in after
