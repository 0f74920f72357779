"""Content done once per campaign: tag protection, Markdown, sanitising, CSS, links, text."""

from __future__ import annotations

import pytest

from mailmarketer.campaigns import content
from mailmarketer.campaigns.rendering import ContentSpec, compile_content

WORKSPACE = {"name": "Acme", "postal_address": "1 Main Street", "sender_name": "Acme"}
CAMPAIGN = {"name": "C", "subject": "S", "lists": []}
BARE_LAYOUT = "<html><body>{{ content }}</body></html>"


def html_of(body, *, body_format="html", layout=BARE_LAYOUT, kind="transactional", **kw):
    compiled = compile_content(
        ContentSpec(
            kind=kind, subject="S", body_format=body_format, body=body, layout_html=layout, **kw
        ),
        workspace=WORKSPACE,
        campaign=CAMPAIGN,
    )
    return compiled


def test_it_finds_template_tags_with_strings_and_brackets_inside():
    source = "a {{ x ~ '}}' }} b {% if y %}{{ {'k': {'v': 1}} }}{% endif %}{# c #}"
    tags = [(source[s:e], kind) for s, e, kind in content.scan_tags(source)]
    assert tags == [
        ("{{ x ~ '}}' }}", "expr"),
        ("{% if y %}", "stmt"),
        ("{{ {'k': {'v': 1}} }}", "expr"),
        ("{% endif %}", "stmt"),
        ("{# c #}", "comment"),
    ]


def test_it_leaves_the_text_of_a_raw_block_alone():
    source = "{% raw %}{{ not a tag }}{% endraw %}"
    kinds = [source[s:e] for s, e, _ in content.scan_tags(source)]
    assert kinds == ["{% raw %}", "{% endraw %}"]


def test_it_knows_where_in_html_a_position_falls():
    source = '<p title="x>y">T</p><style>S</style><!-- C --><title>U</title>'
    positions = [source.index(c) for c in ("x>", "T<", "S<", " C ", "U<")]
    states = content.html_states(source, positions)
    assert [states[p] for p in positions] == ["tag", "text", "style", "comment", "raw"]


def test_it_turns_markdown_into_html_with_tables():
    html = html_of(
        "# Title\n\nSome **bold** and a [link](https://acme.test/).\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n",
        body_format="markdown",
    ).html_source
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert '<a href="https://acme.test/" rel="noopener noreferrer">link</a>' in html
    assert "<th>a</th>" in html and "<td>2</td>" in html
    assert "<li>one</li>" in html


def test_it_does_not_linkify_or_curl_quotes_in_markdown():
    html = html_of("Visit acme.test and say \"hi\" {{ 'x' }}", body_format="markdown").html_source
    assert "<a" not in html.split("<body", 1)[1]
    assert "{{ 'x' }}" in html


def test_it_removes_scripts_and_event_handlers_but_keeps_tables_and_styles():
    body = (
        '<table role="presentation" width="600" cellpadding="0" style="width:600px">'
        '<tr><td bgcolor="#fff" style="color:#111" onclick="steal()">cell</td></tr></table>'
        '<script>alert(1)</script><iframe src="https://evil.test"></iframe>'
        '<form action="https://evil.test"><input name="q"></form>'
        '<a href="javascript:alert(1)" onmouseover="x()">j</a>'
        '<img src="https://acme.test/i.png" alt="Logo" onerror="x()">'
    )
    html = html_of(body).html_source
    for gone in ("<script", "alert(1)", "<iframe", "<form", "<input", "onclick", "onmouseover",
                 "onerror", "javascript:"):  # fmt: skip
        assert gone not in html
    assert '<table role="presentation" width="600" cellpadding="0" style="width:600px">' in html
    assert '<td bgcolor="#fff" style="color:#111">cell</td>' in html
    assert '<img src="https://acme.test/i.png" alt="Logo">' in html


def test_it_inlines_css_once_and_keeps_media_queries():
    layout = (
        "<html><head><style>p { color: #123456; } .x { font-weight: bold; }"
        " @media (prefers-color-scheme: dark) { p { color: #eeeeee !important; } }</style>"
        "</head><body>{{ content }}</body></html>"
    )
    html = html_of('<p class="x">Hi {{ subscriber.first_name }}</p>', layout=layout).html_source
    assert '<p class="x" style="color: #123456;font-weight: bold;">Hi' in html
    assert "@media (prefers-color-scheme: dark)" in html.split("</head>")[0]


def test_it_never_fetches_a_remote_stylesheet():
    layout = (
        '<html><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css"></head>'
        "<body>{{ content }}</body></html>"
    )
    html = html_of("<p>x</p>", layout=layout).html_source  # a fetch would fail: port 9
    assert "127.0.0.1:9" not in html


def test_it_refuses_css_that_loads_code():
    layout = (
        "<html><head><style>@media screen { p { background: url(javascript:alert(1)) } }"
        "</style></head><body>{{ content }}</body></html>"
    )
    with pytest.raises(content.TemplateProblem) as info:
        html_of("<p>x</p>", layout=layout)
    assert "javascript" in info.value.message


def test_it_extracts_absolute_links_once_in_order_without_template_hrefs():
    body = (
        '<a href="https://acme.test/a?x=1&amp;y=2">A</a> <a href="http://acme.test/b">B</a>'
        '<a href="https://acme.test/a?x=1&amp;y=2">again</a> <a href="/relative">R</a>'
        '<a href="mailto:hi@acme.test">M</a> <a href="{{ unsubscribe_url }}">U</a>'
        '<a href="https://acme.test/u/{{ subscriber.uuid }}">P</a>'
    )
    compiled = html_of(body, layout="<html><body>{{ content }}"
                       '<a href="https://acme.test/footer">F</a></body></html>')  # fmt: skip
    assert compiled.links == [
        "https://acme.test/a?x=1&y=2",
        "http://acme.test/b",
        "https://acme.test/footer",
    ]


def test_it_makes_a_readable_text_alternative():
    body = (
        "<h1>Big news</h1><p>Hello <b>{{ subscriber.first_name }}</b>,<br>read "
        '<a href="https://acme.test/post">our post</a>.</p>'
        "<ul><li>One</li><li>Two</li></ul><ol><li>First</li><li>Second</li></ol>"
        "<table><tr><th>Plan</th>\n<th>Price</th></tr>\n<tr><td>Pro</td> <td>9</td></tr></table>"
        '<div style="display:none">preheader text</div><img src="https://x.test/i.png" alt="Logo">'
        '<p><a href="https://acme.test/same">https://acme.test/same</a></p>'
    )
    text = html_of(body).text_source
    assert text.startswith(
        "Big news\n\nHello {{ subscriber.first_name }},\nread our post (https://acme.test/post)."
    )
    assert "- One\n- Two" in text
    assert "1. First\n2. Second" in text
    assert "Plan | Price\nPro | 9" in text
    assert "preheader" not in text
    assert "Logo" in text
    assert "https://acme.test/same (https://acme.test/same)" not in text


def test_it_keeps_conditions_in_the_generated_text():
    body = (
        "<p>Hello</p>{% if subscriber.attributes.vip %}<p>VIP offer</p>{% endif %}"
        '<div style="display:none">{% if 1 %}hidden{% endif %}</div>'
    )
    compiled = html_of(body)
    ctx = {
        "subscriber": {"attributes": {"vip": False}},
        "workspace": WORKSPACE,
        "campaign": CAMPAIGN,
    }
    assert "VIP offer" not in compiled.render(ctx).text
    ctx["subscriber"]["attributes"]["vip"] = True
    assert "VIP offer" in compiled.render(ctx).text


def test_it_builds_the_default_layout_for_email_clients():
    html = html_of("Hi", body_format="markdown", layout=None, kind="marketing").html_source
    assert '<html lang="en">' in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "prefers-color-scheme: dark" in html
    assert html.count('role="presentation"') >= 2
    assert 'width="600"' in html and "max-width: 600px" in html
    assert "{{ (view_in_browser_url)|mm_url }}" in html
    assert "{{ (unsubscribe_url)|mm_url }}" in html and "{{ (manage_url)|mm_url }}" in html
    assert "workspace.postal_lines" in html  # the address, line by line
    assert "<style" in html and "class=" in html  # classes kept for the dark-mode rules
    body = html.split("<body", 1)[1]
    assert "<style" not in body  # everything else inlined
