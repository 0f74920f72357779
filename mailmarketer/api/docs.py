"""The API docs page: Swagger UI served entirely from this site.

Ninja's own Swagger page carries its settings in an inline <script> block (and its fallback
template loads Swagger UI from a CDN); our Content-Security-Policy allows neither. This page
loads the Swagger UI files Ninja ships (ninja/static/ninja/, served by our static files) and boots
them from api/static/api/docs.js, reading the schema URL from a data attribute.

The page and the schema are public: they describe routes and payloads, nothing of any
workspace, and an integrator needs them before having a token. Every call made from the page
still needs a token (the Authorize button).
"""

from __future__ import annotations

from django.shortcuts import render
from ninja.openapi.docs import DocsBase


class LocalSwagger(DocsBase):
    template = "api/docs.html"

    def render_page(self, request, api, **kwargs):
        context = {"title": api.title, "openapi_url": self.get_openapi_url(api, kwargs)}
        return render(request, self.template, context)
