"""The pages' words around a name: no possessive made by appending 's to a placeholder, which
reads wrong for a name ending in s ("Bean Roasters's")."""

import re

from mailmarketer.signup.texts_pages import PAGES


def test_no_possessive_of_a_placeholder():
    found = [
        (language, name)
        for language, words in PAGES.items()
        for name, text in words.items()
        if re.search(r"\}['’]s\b", text)
    ]
    assert found == []
