"""Every public page a person meets through a form speaks the form's language (English or
German), with `lang` on the html element: the preference centre, its data and erase links and
their mails, the unsubscribe pages and their undo, resource download links. For each page in
each language, no built-in sentence of the other language remains."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils.timezone import now

from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import ConsentNotice, ConsentRecord, Subscriber
from mailmarketer.audience.tokens import make_manage_token, make_unsubscribe_token
from mailmarketer.signup import preferences, texts, texts_webinars
from mailmarketer.signup.actions import do_create_form
from mailmarketer.signup.models import Form, ResourceGrant
from mailmarketer.signup.resources import make_download_token
from mailmarketer.signup.testing_webinars import make_event, register
from mailmarketer.signup.testing_webinars import make_form as make_webinar_form
from mailmarketer.signup.texts_pages import PAGES
from mailmarketer.signup.tokens import ERASE, make_self_service_token
from mailmarketer.testing import FORM_NOTICE

from .kinds_support import make_resource, resource_form
from .support import confirm_path, post, run_engine, sent_messages

pytestmark = pytest.mark.django_db

LANGUAGES = ("en", "de")
EMAIL = "ann@example.com"
# Placeholders, Jinja, markup: what is left between them are the words.
_SPLIT = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{[a-z_]+\}|<[^>]+>|\n")


def _sentences(language: str) -> set[str]:
    """The built-in words of one language that the other says differently, cut at the values
    put in them; fragments long enough that no other words could hold them by chance."""
    other = "de" if language == "en" else "en"
    found = set()
    for table in (PAGES, texts.TEXTS, texts_webinars.TEXTS):
        for key, words in table[language].items():
            if table[other].get(key) == words:
                continue
            for fragment in _SPLIT.split(words):
                fragment = fragment.strip(" .,:;")
                if len(fragment) >= 12:
                    found.add(fragment)
    return found


def assert_speaks(content: bytes | str, language: str, *, page: bool = True) -> str:
    text = content.decode() if isinstance(content, bytes) else content
    if page:
        assert f'<html lang="{language}">' in text
    plain = html.unescape(text)
    other = "de" if language == "en" else "en"
    left = sorted(s for s in _sentences(other) if s in plain)
    assert not left, f"{other} words in a {language} page: {left}"
    return plain


@pytest.fixture
def form_in(personas, staff, news):
    def make(language: str) -> Form:
        return do_create_form(
            personas.acme,
            name=f"Newsletter {language}",
            slug=f"news-{language}",
            title="Newsletter",
            fields=[],
            lists=[news],
            notice_text=FORM_NOTICE,
            language=language,
            actor=staff,
        )

    return make


@pytest.fixture
def person(form_in, news):
    """Someone who signed up through a form in the given language (single opt-in: on News)."""

    def make(language: str) -> Subscriber:
        form = form_in(language)
        response = post(form, {"email": EMAIL, "consent": "1"})
        assert response.status_code == 200, response.content
        return Subscriber.objects.get(email=EMAIL)

    return make


def _browser(url: str) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    response = client.get(url)
    assert response.status_code == 200, response.content
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())
    return client, token.group(1)


def _press(url: str, **data):
    client, csrf = _browser(url)
    return client.post(url, {"csrfmiddlewaretoken": csrf, **data})


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_preference_centre_speaks_the_form_language(person, language, news, offers, staff):
    for mailing_list in (news, offers):
        audience.do_update_list(mailing_list, {"visibility": "public"}, actor=staff)
    ann = person(language)
    url = f"/f/m/{make_manage_token(ann.workspace_id, ann.pk)}"

    page = assert_speaks(Client().get(url).content, language)
    assert PAGES[language]["manage_title"] in page
    words = preferences.notice_words(ann.workspace, language)
    assert words in page

    saved = _press(url, action="save", lists=[str(news.pk), str(offers.pk)], name="Ann")
    assert PAGES[language]["saved"] in assert_speaks(saved.content, language)
    # Joining Offers there is consent to the words shown, in the language shown.
    record = ConsentRecord.objects.filter(subscriber=ann, notice__isnull=False).latest("pk")
    assert record.notice.sha256 == ConsentNotice.hash_text(words)
    refused = _press(url, action="save", lists=["999999"])
    assert refused.status_code == 422
    assert PAGES[language]["lists_invalid"] in assert_speaks(refused.content, language)
    everything = _press(url, action="everything")
    assert PAGES[language]["everything_done"] in assert_speaks(everything.content, language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_data_and_erase_mails_and_pages_speak_the_form_language(person, language, personas):
    ann = person(language)
    url = f"/f/m/{make_manage_token(ann.workspace_id, ann.pk)}"

    sent = _press(url, action="data")
    assert "24" in assert_speaks(sent.content, language)
    asked = _press(url, action="erase")
    assert PAGES[language]["erase_sent"] in assert_speaks(asked.content, language)
    run_engine()
    mails = [m for m in sent_messages(personas.acme) if EMAIL in m["To"]]
    for message in mails:
        body = message.get_body(("plain",)).get_content()
        assert_speaks(message["Subject"] + "\n" + body, language, page=False)
    subjects = {m["Subject"] for m in mails}
    assert PAGES[language]["data_subject"] in subjects
    assert PAGES[language]["erase_subject"] in subjects

    erase_url = f"/f/m/erase/{make_self_service_token(ERASE, ann.workspace_id, ann.pk)}"
    page = assert_speaks(Client().get(erase_url).content, language)
    assert PAGES[language]["erase_final"] in page
    erased = _press(erase_url)
    assert PAGES[language]["erased_title"] in assert_speaks(erased.content, language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_unsubscribe_pages_and_their_undo_speak_the_form_language(person, language, news):
    ann = person(language)
    url = f"/f/u/{make_unsubscribe_token(ann.workspace_id, ann.pk, None)}"
    client = Client()

    page = assert_speaks(client.get(url).content, language)
    assert PAGES[language]["unsub_title"] in page
    odd = client.post(url, {"scope": "nonsense"})
    assert PAGES[language]["unsub_bad_scope"] in assert_speaks(odd.content, language)
    done = client.post(url, {"scope": "lists"})
    page = assert_speaks(done.content, language)
    assert PAGES[language]["unsubscribed_title"].replace("'", "'") in page
    undo = re.search(
        r'action="([^"]+)".*?name="confirm" value="([^"]+)"', done.content.decode(), re.S
    )
    again = client.post(undo.group(1), {"confirm": undo.group(2)})
    assert PAGES[language]["resubscribed_title"] in assert_speaks(again.content, language)
    stale = client.post(undo.group(1), {"confirm": "stale"})
    assert PAGES[language]["undo_out_of_date"] in assert_speaks(stale.content, language)
    everything = client.post(url, {"scope": "everything"})
    assert_speaks(everything.content, language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_resource_download_links_speak_the_form_language(
    personas, staff, news, language, settings, tmp_path
):
    settings.DATA_DIR = tmp_path / "data"
    form = resource_form(personas.acme, staff, make_resource(personas.acme, staff), lists=[news])
    Form.objects.filter(pk=form.pk).update(language=language)
    assert post(form, {"email": EMAIL, "name": "Ann", "consent": "1"}).status_code == 200
    grant = ResourceGrant.objects.get()
    later = now() + timedelta(days=15)
    with mock.patch("mailmarketer.signup.resources.now", return_value=later):
        expired = Client().get(f"/f/r/{make_download_token(grant.pk)}")
    assert expired.status_code == 410
    assert PAGES[language]["download_expired"] in assert_speaks(expired.content, language)


def test_pages_of_a_person_no_form_names_stay_english(ann):
    """Imported or added by staff: no form chose a language, so the default one."""
    url = f"/f/m/{make_manage_token(ann.workspace_id, ann.pk)}"
    assert PAGES["en"]["manage_title"] in assert_speaks(Client().get(url).content, "en")
    url = f"/f/u/{make_unsubscribe_token(ann.workspace_id, ann.pk, None)}"
    assert_speaks(Client().get(url).content, "en")


def test_the_language_follows_the_last_form_used(person, form_in):
    ann = person("en")
    german = form_in("de")
    assert post(german, {"email": EMAIL, "consent": "1"}).status_code == 200
    url = f"/f/m/{make_manage_token(ann.workspace_id, ann.pk)}"
    assert PAGES["de"]["manage_title"] in assert_speaks(Client().get(url).content, "de")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_confirmation_mail_and_page_speak_the_form_language(personas, staff, weekly, language):
    form = do_create_form(
        personas.acme,
        name="Weekly",
        slug="weekly",
        title="Weekly",
        fields=[],
        lists=[weekly],
        notice_text=FORM_NOTICE,
        language=language,
        actor=staff,
    )
    assert post(form, {"email": EMAIL, "consent": "1"}).status_code == 200
    run_engine()
    [message] = [m for m in sent_messages(personas.acme) if EMAIL in m["To"]]
    body = message.get_body(("plain",)).get_content()
    assert_speaks(message["Subject"] + "\n" + body, language, page=False)
    client = Client()
    page = assert_speaks(client.get(confirm_path(message)).content, language)
    assert texts.TEXTS[language]["confirm_button"] in page
    done = assert_speaks(client.post(confirm_path(message)).content, language)
    assert texts.TEXTS[language]["confirmed"] in done


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_webinar_page_mail_and_cancel_pages_speak_the_form_language(personas, staff, language):
    event = make_event(personas.acme, staff, language=language)
    form = make_webinar_form(event, staff, language=language)
    page = assert_speaks(Client().get(f"/f/{form.workspace.slug}/{form.slug}").content, language)
    assert texts_webinars.TEXTS[language]["register"] in page
    assert register(form, EMAIL).status_code == 200
    run_engine()
    [message] = [m for m in sent_messages(personas.acme) if EMAIL in m["To"]]
    body = message.get_body(("plain",)).get_content()
    assert_speaks(message["Subject"] + "\n" + body, language, page=False)
    path = re.search(r"https?://[^/\s]+(/f/w/\S+)", body).group(1)
    client = Client()
    page = assert_speaks(client.get(path).content, language)
    assert texts_webinars.TEXTS[language]["cancel_button"] in page
    done = assert_speaks(client.post(path).content, language)
    assert texts_webinars.TEXTS[language]["cancel_done"] in done
