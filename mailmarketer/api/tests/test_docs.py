"""The OpenAPI schema and the docs page: public, complete, and within our CSP."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.test import Client

from mailmarketer.api.access import declared_permission, operations
from mailmarketer.api.urls import api

pytestmark = pytest.mark.django_db


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements = []  # (tag, attrs)
        self.script_bodies = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if tag == "script":
            self.script_bodies.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_bodies[-1] += data


def docs_page():
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    parser = Elements()
    parser.feed(response.content.decode())
    return response, parser


def test_it_serves_the_docs_page_without_a_token():
    response, _ = docs_page()
    assert response["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_it_loads_nothing_from_another_origin():
    response, parser = docs_page()
    urls = [
        value
        for _, attrs in parser.elements
        for name, value in attrs.items()
        if name in ("src", "href") and value
    ]
    assert urls, "the page should load Swagger UI"
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
    assert not re.search(r"https?://", response.content.decode())


def test_it_has_no_inline_script_or_style():
    _, parser = docs_page()
    scripts = [attrs for tag, attrs in parser.elements if tag == "script"]
    assert len(scripts) == 2
    assert all(attrs.get("src") for attrs in scripts)
    assert all(body.strip() == "" for body in parser.script_bodies)
    assert not any(tag == "style" or "style" in attrs for tag, attrs in parser.elements)
    assert not any(name.startswith("on") for _, attrs in parser.elements for name in attrs)


def test_it_serves_the_files_the_docs_page_loads():
    _, parser = docs_page()
    client = Client()
    for tag, attrs in parser.elements:
        url = attrs.get("src") or (attrs.get("href") if tag == "link" else None)
        if url:
            response = client.get(url)
            assert response.status_code == 200, url


def test_it_boots_swagger_ui_without_the_third_party_validator():
    _, parser = docs_page()
    root = next(attrs for tag, attrs in parser.elements if attrs.get("id") == "swagger-ui")
    assert root["data-openapi-url"] == "/api/v1/openapi.json"
    boot = Client().get("/static/api/docs.js")
    source = b"".join(boot.streaming_content if boot.streaming else [boot.content]).decode()
    assert "validatorUrl: null" in source
    assert "root.dataset.openapiUrl" in source


def test_it_serves_the_openapi_schema_without_a_token():
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Mail Marketer API"
    assert schema["components"]["securitySchemes"]["TokenAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }


def test_it_lists_every_operation_with_its_permission_in_the_schema():
    paths = Client().get("/api/v1/openapi.json").json()["paths"]
    listed = {
        (method.upper(), path): spec["x-permission"]
        for path, methods in paths.items()
        for method, spec in methods.items()
    }
    expected = {
        (method, f"/api/v1{path}"): declared_permission(op) for method, path, op in operations(api)
    }
    assert listed == expected
    assert ("PATCH", "/api/v1/workspace") in listed
    patch = paths["/api/v1/workspace"]["patch"]
    assert patch["security"] == [{"TokenAuth": []}]
    assert "settings.manage" in patch["description"]
    assert set(patch["responses"]) >= {"200", "401", "403", "422", "429"}
