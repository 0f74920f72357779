"""Building forms: the actions' checks, and the staff pages (list, builder, page, preview,
delete) with who may see and change what."""

from __future__ import annotations

import pytest
from django.test import Client

from mailmarketer.accounts.actions import Conflict
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience.models import ConsentNotice, ConsentRecord
from mailmarketer.signup.actions import FormError, do_create_form, do_update_form
from mailmarketer.signup.models import Form
from mailmarketer.testing import FORM_NOTICE as NOTICE

from .support import post

pytestmark = pytest.mark.django_db


def make(workspace, default_lists, actor, **changes):
    fields = {
        "name": "F",
        "slug": "f",
        "title": "F",
        "lists": default_lists,
        "notice_text": "Yes.",
        "actor": actor,
        **changes,
    }
    return do_create_form(workspace, **fields)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"redirect_url": "https://evil.test/x"}, "redirect_url"),
        ({"redirect_url": "javascript:alert(1)"}, "redirect_url"),
        ({"allowed_origins": ["https://a.test/path"]}, "allowed_origins"),
        ({"allowed_origins": ["ftp://a.test"]}, "allowed_origins"),
        ({"fields": [{"key": "email"}]}, "fields"),
        ({"fields": [{"key": "x", "type": "choice"}]}, "fields"),
        ({"fields": [{"key": "Bad Key"}]}, "fields"),
        ({"fields": [{"key": "a"}, {"key": "a"}]}, "fields"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"notice_text": "   "}, "notice_text"),
        ({"lists": []}, "lists"),
    ],
)
def test_it_names_the_setting_it_refuses(personas, news, staff, changes, field):
    with pytest.raises(FormError) as refused:
        make(personas.acme, [news], staff, **changes)
    assert refused.value.field == field
    assert not Form.objects.exists()


def test_it_allows_a_redirect_to_an_allowed_origin(personas, news, staff):
    form = make(
        personas.acme,
        [news],
        staff,
        allowed_origins=["https://WWW.Acme.test"],
        redirect_url="https://www.acme.test/thanks",
    )
    assert form.allowed_origins == ["https://www.acme.test"]


def test_it_refuses_another_workspaces_list_and_a_taken_slug(personas, news, staff):
    from mailmarketer.audience.actions import do_create_list

    theirs = do_create_list(personas.evil, name="T", slug="t", actor=staff)
    with pytest.raises(FormError):
        make(personas.acme, [theirs], staff)
    make(personas.acme, [news], staff)
    with pytest.raises(Conflict):
        make(personas.acme, [news], staff)


def test_it_makes_a_new_notice_version_and_old_records_keep_theirs(newsletter, staff):
    post(newsletter)
    first = newsletter.notice
    do_update_form(newsletter, {}, notice_text=NOTICE + " Updated.", actor=staff)
    newsletter.refresh_from_db()
    assert (first.version, newsletter.notice.version) == (1, 2)
    assert set(ConsentRecord.objects.values_list("notice_id", flat=True)) == {first.pk}
    assert ConsentNotice.objects.get(pk=first.pk).text == NOTICE
    event = AuditEvent.objects.filter(event="form.updated").last()
    assert event.new == {"notice": newsletter.notice_id}


# -- staff pages -----------------------------------------------------------------------------

BUILDER = {
    "name": "Spring",
    "slug": "spring",
    "kind": "newsletter",
    "title": "Spring news",
    "language": "en",
    "list_mode": "choice",
    "notice_text": "Send me spring news.",
    "builtin_name": "optional",
    "builtin_first_name": "off",
    "builtin_last_name": "off",
    "builtin_company": "required",
    "builtin_job_title": "off",
    "builtin_phone": "off",
    "builtin_country": "off",
    "custom_fields": "team_size | number | Team size | optional\nplan | choice | Plan | required"
    " | | Free; Pro",
}


def test_it_builds_a_form_from_the_builder(bob_client, personas, news, weekly):
    response = bob_client.post("/app/acme/forms/new/", {**BUILDER, "lists": [news.pk, weekly.pk]})
    assert response.status_code == 302, response.content.decode()
    form = Form.objects.get(slug="spring")
    assert form.fields == [
        {
            "key": "name",
            "type": "builtin",
            "label": "",
            "required": False,
            "help": "",
            "choices": [],
        },
        {
            "key": "company",
            "type": "builtin",
            "label": "",
            "required": True,
            "help": "",
            "choices": [],
        },
        {
            "key": "team_size",
            "type": "number",
            "label": "Team size",
            "required": False,
            "help": "",
            "choices": [],
        },
        {
            "key": "plan",
            "type": "choice",
            "label": "Plan",
            "required": True,
            "help": "",
            "choices": ["Free", "Pro"],
        },
    ]
    assert form.notice.text == "Send me spring news."
    page = bob_client.get(response["Location"]).content.decode()
    assert "Copy embed code" in page and "form_token" in page


def test_it_refuses_a_webinar_form_without_its_event_and_keeps_what_was_typed(bob_client, news):
    response = bob_client.post(
        "/app/acme/forms/new/", {**BUILDER, "kind": "webinar", "lists": [news.pk]}
    )
    assert response.status_code == 400
    assert "a webinar form needs its event" in response.content.decode()
    assert 'value="Spring news"' in response.content.decode()
    assert not Form.objects.exists()


def test_it_names_the_custom_field_line_it_cannot_read(bob_client, news):
    response = bob_client.post(
        "/app/acme/forms/new/", {**BUILDER, "custom_fields": "oops", "lists": [news.pk]}
    )
    assert response.status_code == 400
    assert "line 1" in response.content.decode()


def test_it_edits_a_form_in_the_builder(bob_client, newsletter, news):
    page = bob_client.get(f"/app/acme/forms/{newsletter.pk}/edit/")
    assert page.status_code == 200 and "company | " not in page.content.decode()
    response = bob_client.post(
        f"/app/acme/forms/{newsletter.pk}/edit/",
        {**BUILDER, "slug": "newsletter", "lists": [news.pk], "list_mode": "fixed"},
    )
    assert response.status_code == 302
    newsletter.refresh_from_db()
    assert newsletter.title == "Spring news"


def test_it_previews_the_real_page(carol_client, newsletter):
    preview = carol_client.get(f"/app/acme/forms/{newsletter.pk}/preview/")
    public = Client().get("/f/acme/newsletter")
    assert preview.status_code == 200
    strip = lambda r: r.content.decode().split('name="form_token"')[0]  # noqa: E731
    assert strip(preview) == strip(public)


def test_it_lets_the_analyst_look_but_not_change(carol_client, newsletter):
    assert carol_client.get("/app/acme/forms/").status_code == 200
    assert carol_client.get(f"/app/acme/forms/{newsletter.pk}/").status_code == 200
    assert carol_client.get("/app/acme/forms/new/").status_code == 403
    assert carol_client.post(f"/app/acme/forms/{newsletter.pk}/delete/").status_code == 403
    assert Form.objects.exists()


def test_it_shows_another_workspace_nothing(mallory_client, newsletter):
    assert mallory_client.get("/app/acme/forms/").status_code == 404
    assert mallory_client.get(f"/app/evil/forms/{newsletter.pk}/").status_code == 404


def test_it_counts_views_and_submissions_per_day_on_the_forms_page(alice_client, newsletter):
    for _ in range(4):
        Client().get("/f/acme/newsletter")
    Client().head("/f/acme/newsletter")
    alice_client.get(f"/app/acme/forms/{newsletter.pk}/preview/")  # staff looking: not a view
    post(newsletter)
    post(newsletter, {"email": "bo@example.com", "company": "B", "consent": "1"})
    listing = alice_client.get("/app/acme/forms/").content.decode()
    assert ">Newsletter</a>" in listing
    page = alice_client.get(f"/app/acme/forms/{newsletter.pk}/").content.decode()
    assert "Submissions, last 30 days: 2" in page
    assert "Views of the hosted page: 4 · submissions per view: 50.0%" in page


def test_it_deletes_a_form_on_post_only(alice_client, newsletter):
    assert alice_client.get(f"/app/acme/forms/{newsletter.pk}/delete/").status_code == 200
    assert Form.objects.exists()
    assert alice_client.post(f"/app/acme/forms/{newsletter.pk}/delete/").status_code == 302
    assert not Form.objects.exists()


def test_it_refuses_double_opt_in_lists_without_a_sender_address(personas, weekly, staff):
    personas.acme.sender_email = ""
    personas.acme.save()
    with pytest.raises(FormError, match="sender address") as refused:
        make(personas.acme, [weekly], staff)
    assert refused.value.field == "lists"


# -- welcome messages ------------------------------------------------------------------------

WELCOME = {"subject": "Welcome, {{ subscriber.first_name }}", "body": "Glad you are here."}


def test_it_sends_the_lists_welcome_message_once_the_person_confirms(
    alice_client, newsletter, weekly, personas
):
    from .support import confirm_path, run_engine, sent_messages

    response = alice_client.post(f"/app/acme/forms/welcome/{weekly.pk}/", WELCOME)
    assert response.status_code == 302
    post(newsletter)
    run_engine()
    (confirmation,) = sent_messages(personas.acme)
    assert Client().post(confirm_path(confirmation)).status_code == 200
    run_engine()
    messages = sent_messages(personas.acme)
    assert [m["Subject"] for m in messages][1:] == ["Welcome, Ann"]
    # Confirming again sends nothing more.
    Client().post(confirm_path(confirmation))
    run_engine()
    assert len(sent_messages(personas.acme)) == 2


def test_it_refuses_a_welcome_template_that_cannot_render(alice_client, weekly):
    from mailmarketer.signup.models import WelcomeMessage

    response = alice_client.post(
        f"/app/acme/forms/welcome/{weekly.pk}/", {"subject": "Hi", "body": "{% if %}"}
    )
    assert response.status_code == 400
    assert "line 1" in response.content.decode()
    assert not WelcomeMessage.objects.exists()


def test_it_lets_only_form_managers_write_welcome_messages(carol_client, mallory_client, weekly):
    assert carol_client.post(f"/app/acme/forms/welcome/{weekly.pk}/", WELCOME).status_code == 403
    assert mallory_client.get(f"/app/evil/forms/welcome/{weekly.pk}/").status_code == 404
