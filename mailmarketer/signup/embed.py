"""The embed snippet: the form as plain HTML for another site's page. A plain cross-site POST
that lands on the hosted result page. Its token is an embed token (tokens.py), valid
EMBED_TOKEN_DAYS.

With proof of work on (altcha.py), the snippet also loads the widget from this server (its
script, style sheet and a challenge for this form: nothing from any other host): with
JavaScript on, the browser solves the challenge on the other site's page and the post is
accepted at once; with JavaScript off, the post lands on the hosted page, which shows what was
typed again with the widget, and one more press of the button sends it (docs/forms.md)."""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from .tokens import EMBED, make_form_token


def embed_snippet(form, context: dict) -> str:
    """`context` is views_public.page_context(form): the same fields as the hosted page."""
    action = settings.BASE_URL + reverse("signup-form", args=[form.workspace.slug, form.slug])
    return render_to_string(
        "signup/embed.html",
        {
            **context,
            "action": action,
            "token": make_form_token(form.pk, EMBED),
            "base": settings.BASE_URL,
        },
    ).strip()
