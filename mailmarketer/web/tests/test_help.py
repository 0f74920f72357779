"""The help pages: docs/*.md served to staff at /app/help/<page>/, sanitised, linked to each
other, and linked from the UI wherever it used to name a repository file; the favicon at
/favicon.ico."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from mailmarketer.web import help

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "mailmarketer"


@pytest.fixture
def docs(settings, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.md").write_text(
        "# The guide\n\n"
        "Intro with <script>alert(1)</script> and <img src=x onerror=alert(2)>.\n\n"
        "## Proof of work\n\n"
        "See [the other page](other.md#second-part), [the same](#proof-of-work), "
        "[the readme](../README.md), [evil](javascript:alert(3)), "
        "[the web](https://example.com/a) and docs/other.md, not docs/missing.md.\n\n"
        "| a | b |\n|:--|--:|\n| 1 | 2 |\n\n"
        "## Proof of work\n",
        encoding="utf-8",
    )
    (folder / "other.md").write_text("# Another page\n\n## Second part\n", encoding="utf-8")
    (folder / "notes.txt").write_text("not a page", encoding="utf-8")
    settings.DOCS_DIR = folder
    help._render.cache_clear()
    return folder


def test_it_renders_a_docs_page_for_staff(docs, alice_client):
    response = alice_client.get("/app/help/guide/")
    assert response.status_code == 200
    html = response.content.decode()
    article = re.search(r'<article class="help-page">(.*)</article>', html, re.S).group(1)
    assert '<h1 id="the-guide">The guide</h1>' in article
    assert '<h2 id="proof-of-work">' in article and '<h2 id="proof-of-work-1">' in article
    assert "<title>The guide · Help · Mail Marketer</title>" in html


def article_of(response) -> str:
    html = response.content.decode()
    return re.search(r'<article class="help-page">(.*)</article>', html, re.S).group(1)


def test_it_lets_nothing_active_through(docs, alice_client):
    article = article_of(alice_client.get("/app/help/guide/"))
    tags = re.findall(r"<[^>]+>", article)
    assert not [t for t in tags if re.match(r"<(script|img|style|iframe)", t)]
    assert not [t for t in tags if "on" in t and re.search(r"\bon\w+=", t)]
    assert not [t for t in tags if "javascript:" in t]
    assert "&lt;script&gt;" in article  # shown as text, as the file has it
    assert "style=" not in article  # the table's alignment would need an inline style


def test_it_links_the_docs_to_each_other_and_drops_links_to_repository_files(docs, alice_client):
    article = article_of(alice_client.get("/app/help/guide/"))
    hrefs = re.findall(r'<a href="([^"]+)"', article)
    assert hrefs == [
        "/app/help/other/#second-part",
        "#proof-of-work",
        "https://example.com/a",
        "/app/help/other/",  # the mention in the text
    ]
    assert "the readme" in article  # as text
    assert "docs/missing.md" in article


def test_it_lists_the_pages_by_title(docs, alice_client):
    html = alice_client.get("/app/help/").content.decode()
    assert re.findall(r'<li><a href="(/app/help/[^"]+)">([^<]+)</a></li>', html) == [
        ("/app/help/other/", "Another page"),
        ("/app/help/guide/", "The guide"),
    ]


def test_it_answers_404_for_a_page_that_does_not_exist(docs, alice_client):
    response = alice_client.get("/app/help/notes/")
    assert response.status_code == 404
    assert "There is no help page called “notes”." in response.content.decode()
    assert alice_client.get("/app/help/..%2Fsettings/").status_code == 404


def test_it_says_so_when_the_docs_are_not_installed(settings, tmp_path, alice_client):
    settings.DOCS_DIR = tmp_path / "nowhere"
    for path in ("/app/help/", "/app/help/sending/"):
        response = alice_client.get(path)
        assert response.status_code == 404
        assert "The help pages are not installed" in response.content.decode()


def test_it_asks_for_a_sign_in(docs, client):
    response = client.get("/app/help/guide/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_it_serves_the_repositorys_docs(alice_client):
    html = alice_client.get("/app/help/").content.decode()
    for md in (ROOT / "docs").glob("*.md"):
        assert f'href="/app/help/{md.stem}/"' in html, md.name
    page = alice_client.get("/app/help/sending/").content.decode()
    assert '<h2 id="dkim-step-by-step">' in page


def test_it_links_every_help_link_of_the_ui_to_a_page_and_section_that_exist(alice_client):
    found = []
    for template in PACKAGE.glob("*/templates/**/*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"docs/[\w-]+\.md", text) or template.name == "help_page.html", (
            f"{template} names a repository file: link its help page instead"
        )
        for page, anchor in re.findall(
            r"{% url 'help-page' page='([\w-]+)' %}(?:#([\w-]+))?", text
        ):
            found.append((template.name, page, anchor))
    assert found, "no template links a help page"
    for name, page, anchor in found:
        html = alice_client.get(f"/app/help/{page}/").content.decode()
        assert "<article" in html, (name, page)
        assert not anchor or f'id="{anchor}"' in html, (name, page, anchor)


def test_it_links_help_from_every_staff_page(alice_client):
    html = alice_client.get("/app/acme/").content.decode()
    assert '<a href="/app/help/">Help</a>' in html


def test_it_serves_the_favicon_where_browsers_look_for_it(db):
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    body = b"".join(response.streaming_content)
    assert (
        body.startswith(b"<svg")
        and body == (PACKAGE / "web" / "static" / "web" / "favicon.svg").read_bytes()
    )
    assert "max-age=86400" in response["Cache-Control"]


def test_every_page_links_the_favicon(alice_client, client, db):
    for response in (alice_client.get("/app/acme/"), client.get("/login/")):
        assert '<link rel="icon" href="/static/web/favicon.svg" type="image/svg+xml">' in (
            response.content.decode()
        )
