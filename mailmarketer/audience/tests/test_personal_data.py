"""Export and erasure cover every table: checked against the model registry, so a table added
later that references a subscriber fails these tests until it is registered."""

import json

from django.apps import apps
from django.core.mail import EmailMessage
from django.db import connection, models

from mailmarketer.audience import actions, personal_data
from mailmarketer.audience.actions import ConsentSource, Reason
from mailmarketer.audience.importing import files
from mailmarketer.audience.models import Import, Subscriber
from mailmarketer.lib import outbox
from mailmarketer.lib.outbox import OutboxBackend

from .import_helpers import report, run


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


# -- files ---------------------------------------------------------------------------------------


def files_naming(root, needle: bytes) -> list[str]:
    """Every file under `root` whose bytes hold the needle, lower-cased."""
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and needle in path.read_bytes().lower()
    ]


def test_it_knows_every_kind_of_file_that_can_name_a_person():
    # A new kind of file holding people's data registers its erasure, and is added to the
    # erasure test below.
    assert set(personal_data.FILES) == {"import error reports", "outbox"}


def test_it_erases_the_person_from_every_registered_file(
    personas, staff, news, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.DATA_DIR = tmp_path / "data"
    sub = make_person(personas, staff, news)
    # An import whose report names her: her row twice in the file (the second is skipped as
    # a duplicate) beside someone else's invalid row, which must stay.
    csv = tmp_path / "people.csv"
    csv.write_text(
        "email,name\nzelda.unique@example.com,Zelda\nzelda.unique@example.com,Zelda again\n"
        "not-an-address,Other Person\n"
    )
    imp = run(personas.acme, csv)
    assert [row[0] for row in report(imp)] == ["3", "4"]
    # Mail to her in the workspace's outbox, and mail to someone else.
    scope = outbox.workspace_scope(personas.acme.pk)
    for to in ("Zelda.Unique@example.com", "someone@example.com"):
        message = EmailMessage("Your receipt", f"Hello {to}", "shop@acme.test", [to])
        message.outbox_scope = scope
        OutboxBackend().send_messages([message])
    roots = [settings.DATA_DIR, settings.OUTBOX_DIR]
    assert all(files_naming(root, b"zelda.unique") for root in roots)

    with django_capture_on_commit_callbacks(execute=True):
        actions.do_erase_subscriber(sub, actor=staff)

    for root in roots:
        assert files_naming(root, b"zelda") == [], root
    assert [row[:3] for row in report(imp)] == [
        ["4", "invalid email address: An email address must have an @-sign.", "not-an-address"]
    ]
    imp.refresh_from_db()
    assert imp.report_size == files.report_path(imp.pk).stat().st_size  # what a resume cuts to
    (left,) = outbox.list_messages(viewer=None)[0]
    assert left.to == "someone@example.com"


def test_it_leaves_a_going_imports_report_to_the_retention(
    personas, staff, news, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.DATA_DIR = tmp_path / "data"
    sub = make_person(personas, staff, news)
    csv = tmp_path / "people.csv"
    csv.write_text("email\nzelda.unique@example.com\nzelda.unique@example.com\n")
    imp = run(personas.acme, csv)
    Import.objects.filter(pk=imp.pk).update(status=Import.Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        actions.do_erase_subscriber(sub, actor=staff)
    # Its job may still be appending to the report: not rewritten under it.
    assert files_naming(settings.DATA_DIR, b"zelda")
