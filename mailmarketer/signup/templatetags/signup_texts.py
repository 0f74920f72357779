"""`{% say "key" name=value ... %}`: the built-in words of a public page in the page's
`language` (signup/texts_pages.py), values escaped."""

from __future__ import annotations

from django import template

from mailmarketer.signup.texts_pages import page_html

register = template.Library()


@register.simple_tag(takes_context=True)
def say(context, key: str, **values) -> str:
    return page_html(context.get("language") or "en", key, **values)
