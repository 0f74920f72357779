"""First and last names in imports: the headers recognised (English, German, Mailchimp's and
listmonk's exports), the name shown made from them, and listmonk's JSON attributes column."""

from __future__ import annotations

import pytest

from mailmarketer.audience import actions
from mailmarketer.audience.importing.forms import MappingForm
from mailmarketer.audience.importing.mapping import Mapping, MappingError, guess_mapping
from mailmarketer.audience.models import Import, Subscriber

from .import_helpers import import_data_dir, report, run, write  # noqa: F401

pytestmark = pytest.mark.django_db

# The first columns of a Mailchimp audience export, as Mailchimp names them.
MAILCHIMP = (
    '"Email Address","First Name","Last Name",Address,"Phone Number",MEMBER_RATING,OPTIN_TIME\n'
    "ann@example.com,Ann,Berg,,,2,2024-01-02 10:00:00\n"
    'bob@example.com,Bob,"",,,1,2024-01-03 10:00:00\n'
    'cleo@example.com,"",Nakamura,,,1,2024-01-03 10:00:00\n'
)


def people(workspace) -> dict[str, tuple[str, str, str]]:
    return {
        s.email: (s.first_name, s.last_name, s.name)
        for s in Subscriber.objects.filter(workspace=workspace)
    }


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (["Email Address", "First Name", "Last Name"], (0, None, 1, 2)),
        (["E-Mail", "Vorname", "Nachname"], (0, None, 1, 2)),
        (["E-Mail-Adresse", "Name", "Ort"], (0, 1, None, None)),
        (["email", "first_name", "last_name"], (0, None, 1, 2)),
        (["Email", "firstname", "surname"], (0, None, 1, 2)),
        (["mail", "Given Name", "Family Name"], (0, None, 1, 2)),
        (["uuid", "email", "name", "attributes"], (1, 2, None, None)),
    ],
)
def test_it_recognises_the_common_header_names(header, expected):
    mapping = guess_mapping(header, [])
    assert (mapping.email, mapping.name, mapping.first_name, mapping.last_name) == expected
    named = {a.name for a in mapping.attributes}
    assert not named & {"First Name", "Vorname", "first_name", "surname", "Nachname"}


def test_it_takes_listmonks_attributes_column_as_json():
    mapping = guess_mapping(["uuid", "email", "name", "attributes", "status"], [])
    assert mapping.attributes_json == 3
    assert [a.name for a in mapping.attributes] == ["uuid", "status"]


def test_it_imports_a_mailchimp_export_with_first_and_last_names(personas, news, tmp_path):
    imp = run(personas.acme, write(tmp_path, "mailchimp.csv", MAILCHIMP))

    assert (imp.status, imp.rows_created, imp.rows_skipped) == (Import.Status.FINISHED, 3, 0)
    assert people(personas.acme) == {
        "ann@example.com": ("Ann", "Berg", "Ann Berg"),
        "bob@example.com": ("Bob", "", "Bob"),
        "cleo@example.com": ("", "Nakamura", "Nakamura"),
    }
    ann = Subscriber.objects.get(email="ann@example.com")
    assert ann.attributes == {"MEMBER_RATING": "2", "OPTIN_TIME": "2024-01-02 10:00:00"}


def test_it_keeps_a_full_name_whole_beside_first_and_last(personas, news, tmp_path):
    path = write(
        tmp_path,
        "people.csv",
        "E-Mail;Name;Vorname;Nachname\n"
        "ann@example.com;Dr. Ann Berg;Ann;Berg\n"
        "bob@example.com;;Bob;Brun\n"
        "cleo@example.com;Cleo N.;;\n",
    )
    run(personas.acme, path)

    assert people(personas.acme) == {
        "ann@example.com": ("Ann", "Berg", "Dr. Ann Berg"),
        "bob@example.com": ("Bob", "Brun", "Bob Brun"),
        "cleo@example.com": ("", "", "Cleo N."),
    }


def test_it_imports_a_listmonk_export_with_its_json_attributes(personas, news, tmp_path):
    path = write(
        tmp_path,
        "listmonk.csv",
        "uuid,email,name,attributes,status,created_at,updated_at\n"
        '5f0c,ann@example.com,Ann Berg,"{""city"": ""Oslo"", ""age"": 31}",enabled,x,y\n'
        "6a1d,bob@example.com,Bob,{},enabled,x,y\n"
        '7b2e,cleo@example.com,Cleo,"[1, 2]",enabled,x,y\n',
    )
    imp = run(personas.acme, path)

    ann = Subscriber.objects.get(email="ann@example.com")
    assert ann.name == "Ann Berg"
    assert (ann.attributes["city"], ann.attributes["age"]) == ("Oslo", 31)
    assert "attributes" not in ann.attributes
    assert Subscriber.objects.get(email="bob@example.com").name == "Bob"
    assert imp.rows_created == 2
    (line, reason, *_) = report(imp)[0]
    assert line == "4" and "JSON object" in reason


def test_it_updates_first_and_last_names_and_the_name_shown(personas, news, staff, tmp_path):
    actions.do_create_subscriber(
        personas.acme, email="ann@example.com", first_name="Ann", last_name="Berg", actor=staff
    )
    actions.do_create_subscriber(personas.acme, email="bob@example.com", name="Bob", actor=staff)
    path = write(
        tmp_path,
        "update.csv",
        "Email,Last Name\nann@example.com,Lind\nbob@example.com,\n",
    )
    imp = run(personas.acme, path, mode="update")

    assert (imp.rows_updated, imp.rows_unchanged) == (1, 1)
    assert people(personas.acme) == {
        "ann@example.com": ("Ann", "Lind", "Ann Lind"),
        "bob@example.com": ("", "", "Bob"),
    }


def test_it_refuses_one_column_for_two_roles():
    with pytest.raises(MappingError, match="the first name and the last name must be different"):
        Mapping(email=0, first_name=1, last_name=1).validated(["email", "x"])


def test_the_mapping_page_offers_first_and_last_name():
    header = ["Email Address", "First Name", "Last Name"]
    form = MappingForm(
        data={"role_0": "email", "role_1": "first_name", "role_2": "first_name"},
        header=header,
        mapping=guess_mapping(header, []),
    )
    assert form.is_valid()
    with pytest.raises(Exception, match="only one column can hold the first name"):
        form.mapping()
    initial = MappingForm(header=header, mapping=guess_mapping(header, []))
    assert [initial[f"role_{i}"].initial for i in range(3)] == ["email", "first_name", "last_name"]
