"""The embed snippet: the form as plain HTML for another site's page. A plain cross-site POST
that works with JavaScript off and lands on the hosted result page; no script, no style sheet
and no request to us until the person presses the button. Its token is an embed token
(tokens.py), valid EMBED_TOKEN_DAYS."""

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
        {**context, "action": action, "token": make_form_token(form.pk, EMBED)},
    ).strip()
