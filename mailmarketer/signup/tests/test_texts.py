"""The built-in words of the public pages in each form language (signup/texts.py): every key
in every language, the same placeholders, every key the code asks for, every built-in field;
and a German form's pages show no English built-in word."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from django.test import Client

from mailmarketer.signup.fields import BUILTIN
from mailmarketer.signup.models import Form
from mailmarketer.signup.texts import TEXTS, text

from .support import GOOD, form_url, post

LANGUAGES = [code for code, _ in Form.Language.choices]
SIGNUP = Path(__file__).resolve().parents[1]


def placeholders(words: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(words) if name}


def test_it_has_every_form_language_and_the_same_keys_in_each():
    assert sorted(TEXTS) == sorted(LANGUAGES)
    for language in LANGUAGES:
        assert set(TEXTS[language]) == set(TEXTS["en"]), language
        assert all(words.strip() for words in TEXTS[language].values()), language


@pytest.mark.parametrize("key", sorted(TEXTS["en"]))
def test_it_has_the_same_placeholders_in_every_language(key):
    for language in LANGUAGES:
        assert placeholders(TEXTS[language][key]) == placeholders(TEXTS["en"][key]), (
            language,
            key,
        )


def test_it_has_words_for_every_key_the_code_asks_for_and_every_builtin_field():
    asked = set()
    for path in SIGNUP.glob("*.py"):
        asked |= set(re.findall(r'\btext\(\s*[\w.]+,\s*"(\w+)"', path.read_text()))
    asked |= set(BUILTIN)
    assert asked, "found no text() calls: the pattern above is out of date"
    assert asked <= set(TEXTS["en"]), asked - set(TEXTS["en"])


def test_it_differs_from_english_where_a_german_word_is_expected():
    same = {k for k in TEXTS["en"] if TEXTS["de"][k] == TEXTS["en"][k]}
    # Words that are the same in both languages.
    assert same <= {"name", "optional"}, same


@pytest.mark.django_db
def test_it_shows_a_german_form_in_german_only(newsletter):
    newsletter.language = "de"
    newsletter.save()
    pages = [
        Client().get(form_url(newsletter)).content.decode(),
        post(newsletter, {**GOOD, "email": "not an address", "altcha": ""}).content.decode(),
        post(newsletter, {**GOOD, "altcha": ""}).content.decode(),
        post(newsletter).content.decode(),
    ]
    english = {k: v for k, v in TEXTS["en"].items() if v != TEXTS["de"][k] and "{" not in v}
    for page in pages:
        page = page.replace(newsletter.notice.text, "")  # the business's own words
        shown = [k for k, v in english.items() if v in page]
        assert not shown, shown
    assert text("de", "submit") in pages[0]
    assert text("de", "email") in pages[0]
    assert "Noch ein Schritt" in pages[2]
    assert 'language="de"' in pages[0] and "signup/altcha/de.js" in pages[0]
