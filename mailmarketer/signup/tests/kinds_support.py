"""Helpers for the resource and evaluation form tests: files of each kind, forms bound to a
resource or set up for evaluations, and the links the pages and mails carry."""

from __future__ import annotations

import re

from django.core.files.uploadedfile import SimpleUploadedFile

from mailmarketer.signup import leads, resources
from mailmarketer.signup.actions import do_create_form
from mailmarketer.testing import FORM_NOTICE

PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
EPUB_BYTES = b"PK\x03\x04" + b"\x00" * 26 + b"mimetypeapplication/epub+zip" + b"\x00" * 40
EXE_BYTES = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" * 4


def upload(content: bytes = PDF_BYTES, name: str = "guide.pdf", content_type="application/pdf"):
    return SimpleUploadedFile(name, content, content_type=content_type)


def make_resource(workspace, actor, **fields):
    fields.setdefault("title", "The coffee guide")
    if "external_url" not in fields:
        fields.setdefault("upload", upload())
    return resources.do_create_resource(workspace, actor=actor, **fields)


def resource_form(workspace, actor, resource, lists=(), slug="guide", **fields):
    form = do_create_form(
        workspace,
        name="Guide",
        slug=slug,
        kind="resource",
        title="Get the coffee guide",
        fields=fields.pop("fields", [{"key": "name", "type": "builtin"}]),
        lists=list(lists),
        notice_text=FORM_NOTICE,
        actor=actor,
        **fields,
    )
    resources.do_bind_resource(form, resource, actor=actor)
    return form


def evaluation_form(workspace, actor, lists=(), slug="trial", assignee=None, recipients=()):
    form = do_create_form(
        workspace,
        name="Trial",
        slug=slug,
        kind="evaluation",
        title="Ask for a trial",
        fields=[
            {"key": "name", "type": "builtin"},
            {"key": "company", "type": "builtin", "required": True},
        ],
        lists=list(lists),
        notice_text=FORM_NOTICE,
        actor=actor,
    )
    leads.do_set_evaluation(
        form,
        products=["Starter", "Pro plan"],
        assignee=assignee,
        recipients=recipients,
        actor=actor,
    )
    return form


def download_path(text: str) -> str:
    match = re.search(r"(?:https?://[^/\s\"]+)?(/f/r/[^\s\"<]+)", text)
    assert match, text
    return match.group(1)
