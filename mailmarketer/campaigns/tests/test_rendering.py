"""Compiling and rendering campaign content: errors with lines, the sandbox, escaping, caps."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from mailmarketer.campaigns import rendering
from mailmarketer.campaigns.rendering import (
    ContentSpec,
    RenderError,
    TemplateProblem,
    compile_content,
    recipient_context,
)

WORKSPACE = {"name": "Acme", "postal_address": "1 Main Street\nSpringfield", "sender_name": "Acme"}
CAMPAIGN = {"name": "Autumn", "subject": "Hello", "lists": ["News", "Offers"]}
URLS = {
    "unsubscribe_url": "https://mm.test/f/u/TOKEN?a=1&b=2",
    "manage_url": "https://mm.test/f/manage/TOKEN",
    "view_in_browser_url": "https://mm.test/f/archive/abc",
}


def spec(body="Hello", *, subject="Hi", body_format="markdown", **kw) -> ContentSpec:
    kw.setdefault("kind", "marketing")
    return ContentSpec(subject=subject, body_format=body_format, body=body, **kw)


def compiled(*args, **kwargs):
    return compile_content(spec(*args, **kwargs), workspace=WORKSPACE, campaign=CAMPAIGN)


def person(**kw):
    data = {"uuid": "u-1", "email": "ann@example.com", "name": "Ann Lee", "attributes": {}}
    data.update(kw)
    return data


def context(**kw):
    return recipient_context(
        workspace=WORKSPACE, campaign=CAMPAIGN, subscriber=person(**kw), urls=URLS
    )


def problem(*args, **kwargs) -> TemplateProblem:
    with pytest.raises(TemplateProblem) as info:
        compiled(*args, **kwargs)
    return info.value


# -- compile-time errors ---------------------------------------------------------------------------


def test_it_reports_a_body_syntax_error_with_its_line():
    error = problem("Line one\n\nLine three {{ subscriber.name }\n")
    assert (error.field, error.line) == ("body", 3)
    assert str(error).startswith("body, line 3: ")


def test_it_reports_a_subject_syntax_error():
    error = problem("Body", subject="Hi {% if %}")
    assert (error.field, error.line) == ("subject", 1)


def test_it_reports_a_layout_syntax_error_with_the_layout_line():
    layout = "<html><body>\n<p>top</p>\n{% for x in %}\n{{ content }}\n</body></html>"
    error = problem("Body", layout_html=layout)
    assert (error.field, error.line) == ("layout", 3)


def test_it_reports_a_text_body_error():
    error = problem("Body", text_body="ok\n{{ a + }}")
    assert (error.field, error.line) == ("text_body", 2)


def test_it_catches_an_unknown_filter_at_compile_time_even_inside_an_if():
    # Jinja2 itself defers unknown filters inside {% if %} to run time.
    error = problem("a\n{% if subscriber.attributes.vip %}{{ subscriber.name | shout }}{% endif %}")
    assert (error.field, error.line) == ("body", 2)
    assert "unknown filter 'shout'" in error.message


def test_it_refuses_filters_outside_the_allowlist():
    for name in ("safe", "format", "center", "tojson", "pprint", "attr", "xmlattr", "indent"):
        error = problem(f"{{{{ subscriber.name | {name} }}}}")
        assert f"unknown filter '{name}'" in error.message


def test_it_refuses_include_import_and_extends():
    for tag in ('{% include "x.html" %}', '{% import "x" as y %}', '{% extends "base" %}'):
        error = problem(f"hello\n{tag}", body_format="html")
        assert error.line == 2
        assert "extend, include or import" in error.message


def test_it_reports_a_runtime_error_that_does_not_depend_on_the_recipient():
    error = problem("one\ntwo\n{{ 1 / 0 }}")
    assert (error.field, error.line) == ("body", 3)
    assert "ZeroDivisionError" in error.message


def test_it_refuses_a_statement_inside_an_html_attribute_with_its_line():
    html = '<p>x</p>\n<a href="https://a.test/{% if vip %}vip{% endif %}">x</a>'
    error = problem(html, body_format="html")
    assert (error.field, error.line) == ("body", 2)
    assert "inside an HTML tag" in error.message


def test_it_refuses_a_layout_without_exactly_one_content_slot():
    assert "exactly one {{ content }}" in problem("B", layout_html="<p>no slot</p>").message
    two = problem("B", layout_html="{{ content }}<hr>{{ content }}")
    assert two.field == "layout"


def test_it_reports_a_tag_the_sanitiser_had_to_remove():
    error = problem(
        '<p>ok</p>\n<script>var n = "{{ subscriber.name }}";</script>', body_format="html"
    )
    assert (error.field, error.line) == ("body", 2)


# -- rendering -------------------------------------------------------------------------------------


def test_it_renders_missing_attributes_as_empty_without_failing():
    c = compiled(
        "Plan: [{{ subscriber.attributes.plan }}] [{{ subscriber.attributes.a.b.c }}] "
        "[{{ subscriber.attributes.age + 1 }}] "
        "[{% if subscriber.attributes.age > 18 %}adult{% endif %}]"
    )
    message = c.render(context(attributes={}))
    assert "Plan: [] [] [] []" in message.html
    assert "Plan: [] [] [] []" in message.text
    message = c.render(context(attributes={"plan": "pro", "age": 30}))
    assert "Plan: [pro] [] [31] [adult]" in message.html


def test_it_uses_default_for_a_fallback():
    c = compiled("Hello {{ subscriber.first_name | default('there', true) }}!")
    assert "Hello Ann!" in c.render(context()).html
    assert "Hello there!" in c.render(context(name="")).html


def test_it_prefers_an_attribute_to_a_dict_method_of_the_same_name():
    c = compiled("[{{ subscriber.attributes.items }}] [{{ subscriber.attributes.keys }}]")
    assert "[a, b] []" in c.render(context(attributes={"items": ["a", "b"]})).text


def test_it_escapes_subscriber_values_in_html_but_not_in_text_or_subject():
    c = compiled("Dear {{ subscriber.name }}", subject="For {{ subscriber.name }}")
    message = c.render(context(name="<script>alert(1)</script> & co"))
    assert "<script>alert(1)</script>" not in message.html
    assert "Dear &lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in message.html
    assert "Dear <script>alert(1)</script> & co" in message.text
    assert message.subject == "For <script>alert(1)</script> & co"


def test_it_strips_line_breaks_and_nul_from_the_subject():
    c = compiled("x", subject="Hi {{ subscriber.name }}!")
    message = c.render(context(name="Ann\r\nBcc: victim@example.com\x00\u2028x"))
    assert "\r" not in message.subject and "\n" not in message.subject
    assert "\x00" not in message.subject and "\u2028" not in message.subject
    assert message.subject == "Hi Ann Bcc: victim@example.com x!"


def test_it_escapes_a_macro_output_placed_in_an_attribute():
    body = (
        '{% macro q() %}" onmouseover="alert(1){% endmacro %}\n'
        '<p><img src="https://a.test/x.png" alt="{{ q() }}"></p>'
    )
    html = compiled(body, body_format="html").render(context()).html
    assert 'onmouseover="' not in html
    assert "onmouseover=&amp;quot;alert(1)" in html  # inert text inside the alt value


def test_it_drops_a_dangerous_url_scheme_coming_from_a_value():
    c = compiled('<a href="{{ subscriber.attributes.site }}">site</a>', body_format="html")
    for scheme in (" javascript:alert(1)", "java\tscript:alert(1)", "JAVA\nSCRIPT:x", "data:x"):
        assert 'href=""' in c.render(context(attributes={"site": scheme})).html, scheme
    assert (
        'href="https://ann.test/?a=1&amp;b=2"'
        in c.render(context(attributes={"site": "https://ann.test/?a=1&b=2"})).html
    )


def test_it_gives_the_template_the_documented_variables():
    body = (
        "{{ subscriber.email }}|{{ subscriber.uuid }}|{{ subscriber.first_name }}|"
        "{{ campaign.name }}|{{ workspace.name }}|{{ lists | join('+') }}|"
        "{{ unsubscribe_url }}|{{ manage_url }}|{{ view_in_browser_url }}|{{ subject }}"
    )
    text = compiled(body, subject="S {{ subscriber.first_name }}").render(context()).text
    assert (
        "ann@example.com|u-1|Ann|Autumn|Acme|News+Offers|https://mm.test/f/u/TOKEN?a=1&b=2|"
        "https://mm.test/f/manage/TOKEN|https://mm.test/f/archive/abc|S Ann"
    ) in text


def test_it_keeps_loops_between_table_rows():
    body = (
        "<table>\n{% for item in subscriber.attributes.products %}\n"
        "<tr><td>{{ item }}</td></tr>\n{% endfor %}\n</table>"
    )
    html = (
        compiled(body, body_format="html").render(context(attributes={"products": ["A", "B"]})).html
    )
    assert re.search(
        r"<table[^>]*>\s*<tbody>\s*<tr><td[^>]*>A</td></tr>\s*<tr><td[^>]*>B</td>", html
    )


def test_it_uses_a_full_html_document_body_as_it_is():
    body = (
        '<!DOCTYPE html><html lang="de"><head><style>p{color:#123456}</style></head>'
        "<body><p>Hallo {{ subscriber.first_name }}</p></body></html>"
    )
    html = compiled(body, body_format="html").render(context()).html
    assert '<html lang="de">' in html
    assert '<p style="color: #123456;">Hallo Ann</p>' in html
    assert "View this email in your browser" not in html  # no layout around it
    assert "https://mm.test/f/u/TOKEN?a=1&amp;b=2" in html  # our footer was added


def test_it_adds_the_footer_when_a_layout_lacks_the_address_or_unsubscribe_link():
    layout = "<html><body><div>{{ content }}</div></body></html>"
    message = compiled("Hi", layout_html=layout).render(context())
    assert "1 Main Street" in message.html
    assert "https://mm.test/f/u/TOKEN?a=1&amp;b=2" in message.html
    assert "Unsubscribe (https://mm.test/f/u/TOKEN?a=1&b=2)" in message.text
    transactional = compiled("Hi", layout_html=layout, kind="transactional").render(context())
    assert "1 Main Street" not in transactional.html
    assert "TOKEN" not in transactional.text


def test_it_renders_a_plain_text_campaign_without_html():
    c = compiled(
        "Hi {{ subscriber.first_name }},\nsee https://acme.test/offer.\n", body_format="text"
    )
    message = c.render(context())
    assert message.html is None
    assert message.text.startswith("Hi Ann,\nsee https://acme.test/offer.")
    assert "Unsubscribe: https://mm.test/f/u/TOKEN?a=1&b=2" in message.text
    assert c.links == ["https://acme.test/offer"]


def test_it_names_the_body_when_a_plain_text_campaign_fails_for_one_recipient():
    c = compiled("Total: {{ subscriber.attributes.n + 1 }}", body_format="text")
    with pytest.raises(RenderError) as info:
        c.render(context(attributes={"n": "not a number"}))
    assert info.value.field == "body"
    assert "TypeError" in info.value.message


def test_it_uses_the_written_text_body_instead_of_generating_one():
    c = compiled("# Big news", text_body="Plain words for {{ subscriber.first_name }}.")
    text = c.render(context()).text
    assert text.startswith("Plain words for Ann.")
    assert "Big news" not in text


# -- the sandbox -----------------------------------------------------------------------------------

INJECTIONS = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler }}",
    "{{ joiner }}",
    "{{ namespace }}",
    "{{ lipsum.__globals__ }}",
    "{{ dict }}",
    "{{ range.__self__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ settings.SECRET_KEY }}",
    "{{ environment }}",
    "{{ loop }}",
    "{% for x in [1] %}{{ loop }}{{ loop.__class__ }}{% endfor %}",
    "{{ subscriber.email.format }}",
    "{{ subscriber.email.upper }}",
    "{{ '{0.__class__}'.format(subscriber) }}",
    "{{ subscriber.__class__ }}",
    "{{ subscriber.attributes.__class__.__base__ }}",
    "{{ subscriber.attributes.items }}",
    "{{ (subscriber.attributes|items|list) }}",
    "{% set x = subscriber.email.upper %}{{ x }}",
    "{{ [subscriber.email.upper] }}",
    "{{ subscriber.email.upper ~ '' }}",
    "{{ '%s' % subscriber.email.upper }}",
    "{{ [subscriber.email.upper]|join }}",
    "{{ subscriber.email.upper|string }}",
    "{{ subscriber }}",
    "{{ workspace.__dict__ }}",
    "{{ campaign.items() }}",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_it_keeps_template_injection_payloads_inert(payload):
    # Each payload either refuses to compile or renders to nothing revealing: no secret, no
    # object repr, no Python internals.
    try:
        c = compiled(f"A{payload}Z", subject=f"S{payload}E", text_body=f"T{payload}U")
    except TemplateProblem:
        return
    message = c.render(context())
    for output in (message.subject, message.html, message.text):
        assert settings.SECRET_KEY not in output
        for key in settings.ENCRYPTION_KEYS:
            assert key not in output
        for leak in (
            "object at",
            "<class",
            "&lt;class",
            "built-in",
            "function",
            "Template",
            "jinja2",
            "LoopContext",
            "__",
            "method",
            "Undefined",
            "dict_items",
        ):
            assert leak not in output, (payload, leak, output)


def test_it_refuses_unknown_filters_used_in_injection_attempts():
    for payload in ("{{ ''|attr('__class__') }}", "{{ x|pprint }}", "{{ x|safe }}"):
        with pytest.raises(TemplateProblem):
            compiled(payload)


# -- caps ------------------------------------------------------------------------------------------


def test_it_stops_a_template_that_produces_too_much():
    c = compiled("{{ subscriber.attributes.big * 400000 }}{{ subscriber.attributes.big * 400000 }}")
    assert c.render(context(attributes={"big": "y"}))  # 800,000 characters are fine...
    with pytest.raises(RenderError) as info:
        c.render(context(attributes={"big": "xx"}))  # ...1,600,000 are not
    assert info.value.field == "body"
    assert "longer than" in info.value.message


def test_it_refuses_to_build_a_huge_value_before_building_it():
    c = compiled("{{ subscriber.name * subscriber.attributes.n }}")
    with pytest.raises(RenderError) as info:
        c.render(context(attributes={"n": 10**12}))
    assert "would be longer than 1,000,000" in info.value.message


def test_it_stops_doubling_a_string_in_sets():
    doubling = (
        "{% set s = subscriber.attributes.s %}" + "{% set s = s ~ s %}" * 40 + "{{ s|length }}"
    )
    c = compiled(doubling, body_format="html")
    with pytest.raises(RenderError) as info:
        c.render(context(attributes={"s": "x" * 1000}))
    assert "longer than" in info.value.message


def test_it_stops_a_huge_loop():
    c = compiled(
        "{% for i in range(subscriber.attributes.n) %}{% for j in range(10000) %}"
        "{% endfor %}{% endfor %}done"
    )
    assert "done" in c.render(context(attributes={"n": 2})).html
    with pytest.raises(RenderError) as info:
        c.render(context(attributes={"n": 10000}))
    assert "loops ran more than 100,000 times" in info.value.message


def test_it_stops_a_loop_that_builds_text_in_a_block_set():
    # The output of a {% set %} block is kept in memory, where the output cap cannot see it:
    # the work budget charges each iteration with the loop body's text.
    body = (
        "{% set big %}{% for i in range(subscriber.attributes.n) %}{% for j in range(10) %}"
        + "x" * 500
        + "{% endfor %}{% endfor %}{% endset %}{{ big|length }}"
    )
    c = compiled(body, body_format="html")
    assert "50000" in c.render(context(attributes={"n": 10})).text
    with pytest.raises(RenderError) as info:
        c.render(context(attributes={"n": 9000}))
    assert "more than 4,000,000 characters" in info.value.message


def test_it_stops_a_template_that_takes_too_long():
    # Exponential recursion: no loop and no output to count, only the clock can stop it.
    body = (
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(subscriber.attributes.depth) }}"
    )
    c = compiled(body, body_format="html")
    assert c.render(context(attributes={"depth": 3}))
    with pytest.raises(RenderError) as info:
        c.render(context(attributes={"depth": 40}))
    assert "took longer than 200 ms" in info.value.message


def test_it_refuses_a_template_that_always_hits_a_cap_at_compile_time():
    error = problem("x\n{% for i in range(100000) %}y{% endfor %}")
    assert error.line == 2
    assert "range() is limited" in error.message


def test_it_limits_powers_and_percent_widths():
    assert "too large" in problem("{{ 2 ** 100000 }}").message
    assert "widths" in problem("{{ '%999999999d' % 1 }}").message


def test_it_is_importable_under_the_contract_names():
    for name in (
        "TemplateProblem",
        "RenderedMessage",
        "CompiledCampaign",
        "compile_campaign",
        "recipient_context",
        "workspace_context",
        "campaign_context",
        "RenderError",
    ):
        assert hasattr(rendering, name)
    assert issubclass(rendering.TemplateProblem, ValueError)


def test_it_adds_only_ascii_in_the_footer_every_message_shares():
    # A non-ASCII character in shared parts forces quoted-printable on every message.
    assert rendering.HTML_FOOTER.isascii() and rendering.TEXT_FOOTER.isascii()


def test_it_applies_default_to_empty_values_too():
    env = rendering.CampaignSandbox(html=False)
    template = env.from_string("Hello {{ name | default('there') }}, {{ n | default(5) }}")
    assert template.render(name="", n=0) == "Hello there, 0"
    assert template.render(name=None) == "Hello there, 5"
    assert template.render(name="Ann", n=3) == "Hello Ann, 3"


def test_it_renders_the_default_layout_in_plain_ascii():
    # Shared parts decide the transfer encoding of every message: ASCII keeps them unencoded.
    from mailmarketer.campaigns.layouts import default_layout_html

    source = default_layout_html()
    assert "&middot;" not in source and source.isascii()


# -- numbers, formatting and methods that could hold a worker (issue 9, F1) ------------------------

SQUARINGS = "{% set a = 10**999 %}\n" + "{% set a = a*a %}\n" * 12 + "{{ a }}"


def test_it_refuses_a_number_that_grows_past_the_cap_at_the_line_that_grows_it():
    # 10**999 is allowed (3,319 bits); its square would not be, and is never computed.
    error = problem("Hello\n" + SQUARINGS, body_format="html")
    assert (error.field, error.line) == ("body", 3)
    assert "limited to 4,096 bits" in error.message


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ("{{ range(10**100)|length }}", "range() is limited"),
        ("{{ range(10**18)|length }}", "range() is limited"),
        ("{{ '%0999999999d' % 1 }}", "widths of 1,000 or more"),
        ("{{ '%(n)0999999999d' % {'n': 1} }}", "widths of 1,000 or more"),
        ("{{ '%.*f' % (999999999, 1.5) }}", "widths of 1,000 or more"),
        ("{{ 'x' * 10**9 }}", "longer than 1,000,000"),
        ("{{ (2**64)**(2**64) }}", "too large"),
        ("{{ 2**5000 }}", "too large"),
        ("{{ 16**1000 }}", "limited to 4,096 bits"),
        # 4,095 bits: one doubling is allowed, two are not.
        ("{% set a = 10**999 * 2**776 %}{{ a + a + a + a }}", "limited to 4,096 bits"),
        ("{% set a = 10**999 * 2**776 %}{{ a - -a - -a - -a }}", "limited to 4,096 bits"),
        ("{{ 1 << 10**9 }}", "unexpected '<'"),
        ("{{ '{:>999999999}'.format(1) }}", "'format' cannot be called"),
        ("{{ '{0:>999999999}'.format_map({}) }}", "'format_map' cannot be called"),
        ("{% set t = ('x' * 1000000,) * 10000 %}{{ ('%s' * 10000) % t }}", "more than 1,000,000"),
    ],
)
def test_it_refuses_a_runaway_operation_before_doing_it(payload, says):
    error = problem("Hello\n" + payload, body_format="html")
    assert error.line == 2
    assert says in error.message


def test_it_fails_one_recipient_whose_number_would_grow_past_the_cap():
    # Sample data has no such attribute, so the campaign saves; the recipient fails at once.
    c = compiled("{{ subscriber.attributes.n * subscriber.attributes.n }}")
    assert "1000000" in c.render(context(attributes={"n": 1000})).text
    with pytest.raises(RenderError) as info:
        c.render(context(attributes={"n": 10**999}))
    assert "limited to 4,096 bits" in info.value.message


def test_it_checks_content_in_a_child_process_with_the_same_answers():
    ok = rendering.check_content(
        spec("Read [the post](https://acme.test/post)"), workspace=WORKSPACE, campaign=CAMPAIGN
    )
    assert ok.links == ["https://acme.test/post"]
    with pytest.raises(TemplateProblem) as info:
        rendering.check_content(spec("Hello\n" + SQUARINGS), workspace=WORKSPACE, campaign=CAMPAIGN)
    assert (info.value.field, info.value.line) == ("body", 3)


def test_it_refuses_content_whose_check_overruns_the_hard_limit(monkeypatch):
    # Whatever a template does, the web server waits no longer than ISOLATED_SECONDS.
    monkeypatch.setattr(rendering, "ISOLATED_SECONDS", 0)
    with pytest.raises(TemplateProblem) as info:
        rendering.check_content(spec("Hello"), workspace=WORKSPACE, campaign=CAMPAIGN)
    assert "cannot be rendered within the limits" in info.value.message


def test_renders_read_the_cpu_clock_at_most_every_cpu_mark_and_still_stop_runaways(
    monkeypatch,
):
    from mailmarketer.campaigns import rendering

    reads = []
    real = rendering.thread_time
    monkeypatch.setattr(rendering, "thread_time", lambda: reads.append(1) or real())
    c = compiled("Hi {{ subscriber.first_name }}", body_format="html")
    c.split_for_sending()
    reads.clear()
    # No mark left from compiling: the first render reads the clock (200 renders can take
    # less than CPU_MARK_S, which would leave none to count).
    rendering._budget.mark_wall = float("-inf")
    started = rendering.perf_counter()
    for _ in range(200):
        c.render(context())
    elapsed = rendering.perf_counter() - started
    # One read per CPU_MARK_S of wall time at most (and at least one), not one per render.
    assert 1 <= len(reads) <= elapsed / rendering.CPU_MARK_S + 2
    runaway = compiled(
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(subscriber.attributes.depth) }}",
        body_format="html",
    )
    with pytest.raises(RenderError, match="took longer than 200 ms"):
        runaway.render(context(attributes={"depth": 40}))


def test_the_templates_escape_is_markupsafes_escape():
    # The compiled templates print through rendering._escape, markupsafe.escape made faster for
    # str and Markup: the same text and type for everything a template can print.
    from hypothesis import given
    from hypothesis import strategies as st
    from markupsafe import Markup, escape

    class Html:
        def __html__(self):
            return "<b>x</b>"

    @given(st.text())
    def same(text):
        markup = Markup(text)  # noqa: S704 - what a macro's output is
        for value in (text, markup, rendering._attr(text), rendering._url(text)):
            got, expected = rendering._escape(value), escape(value)
            assert (got, type(got)) == (expected, type(expected))

    same()
    for value in (None, 3, 2.5, Html(), ["<a>"]):
        got, expected = rendering._escape(value), escape(value)
        assert (got, type(got)) == (expected, type(expected))
    c = compiled('{{ subscriber.name }} <a href="{{ unsubscribe_url }}">x</a>', body_format="html")
    assert c.html_template.root_render_func.__globals__["escape"] is rendering._escape
    html = c.render(context(name='<Ann & "Lee">')).html
    assert "&lt;Ann &amp; &#34;Lee&#34;&gt;" in html
    assert 'href="https://mm.test/f/u/TOKEN?a=1&amp;b=2"' in html


def test_url_values_are_what_the_scheme_check_makes_of_them():
    # _url tells http(s) URLs by startswith and strips tabs and line breaks only when there
    # are some: the same as stripping them and matching the scheme every time.
    from hypothesis import given
    from hypothesis import strategies as st
    from markupsafe import Markup

    from mailmarketer.campaigns import content

    def reference(text):
        text = rendering._URL_IGNORED.sub("", text)
        scheme = rendering._SCHEME.match(text)
        if scheme and scheme.group(1).lower() not in content.URL_SCHEMES:
            return Markup("")
        return rendering.escape(text)

    starts = st.sampled_from(["", "https://", "http://", "HTTPS://", "java", " ", "\t", "h\ttp"])
    tails = st.text(alphabet="ab:/\t\n\r <&\"'script", max_size=20)

    @given(starts, tails)
    def same(start, tail):
        assert rendering._url(start + tail) == reference(start + tail)

    same()
