"""Pre-split rendering (the send path): the same messages as a whole render, the same caps."""

from __future__ import annotations

import pytest

from mailmarketer.campaigns.rendering import (
    ContentSpec,
    RenderError,
    SplitTemplate,
    compile_content,
    recipient_context,
)

WORKSPACE = {"name": "Acme <&>", "postal_address": "1 Main St\nSpringfield", "sender_name": "A"}
CAMPAIGN = {"name": "Autumn", "subject": "Hello", "lists": ["News", "Offers & more"]}

PEOPLE = [
    {"uuid": "u-1", "email": "ann@example.com", "name": "Ann Lee", "attributes": {"city": "Oslo"}},
    {"uuid": "u-2", "email": "bo@example.com", "name": "", "attributes": {}},
    {
        "uuid": "u-3",
        "email": "cy@example.com",
        "name": 'Cy <b>"Bold"</b> & Co',
        "attributes": {"city": "<script>", "plan": "pro", "n": 3, "tags": ["a", "b<"]},
    },
]

TEMPLATES = [
    # (body format, body, subject, text body)
    (
        "html",
        "<p>Hi {{ subscriber.first_name | default('there') }}, again "
        "{{ subscriber.first_name | default('there') }}.</p>"
        '<a href="https://x.example/{{ subscriber.uuid }}?c={{ subscriber.attributes.city }}">o</a>'
        "<p>{{ workspace.name }} {{ campaign.name }} {{ lists | join(', ') }}</p>",
        "Hi {{ subscriber.first_name }} from {{ workspace.name }}",
        "",
    ),
    (
        "markdown",
        "# Hello {{ subscriber.name | upper }}\n\n"
        "{% if subscriber.attributes.plan == 'pro' %}Pro: {{ subscriber.email }}"
        "{% else %}Free{% endif %}\n\n"
        "{% for t in subscriber.attributes.tags %}- {{ loop.index }} {{ t }}\n{% endfor %}\n\n"
        "{% for l in lists %}{{ l }}/{{ loop.index }} {% endfor %}\n\n"
        "{{ subscriber.attributes.n * 2 }} {{ subscriber.attributes.n ~ '!' }} {{ 'const' }}",
        "{{ subject }}",
        "",
    ),
    (
        "html",
        "{% with x = subscriber.attributes.city %}<b>{{ x }}</b>{% endwith %}"
        "{{ subscriber.attributes.tags }} {{ postal_address }} {{ data.missing }}",
        "Static subject",
        "Text for {{ subscriber.name }}: {{ unsubscribe_url }} {{ subject }}\n\n\n\nend",
    ),
    (
        "text",
        "Hello {{ subscriber.name | default('friend') }},\n{{ workspace.name }}\n"
        "{% if subscriber.attributes.city %}City {{ subscriber.attributes.city }}{% endif %}",
        "{{ subscriber.attributes.city | default('x') }}",
        "",
    ),
    # Sets and macros: rendered whole.
    (
        "html",
        "{% set g = 'Hi ' ~ subscriber.first_name %}{{ g }}"
        "{% macro m(v) %}<i>{{ v }}</i>{% endmacro %}{{ m(subscriber.name) }}",
        "S",
        "",
    ),
]


def compiled(body_format, body, subject, text_body):
    spec = ContentSpec(
        kind="marketing",
        subject=subject,
        body_format=body_format,
        body=body,
        text_body=text_body,
    )
    return compile_content(spec, workspace=WORKSPACE, campaign=CAMPAIGN)


def contexts(workspace=WORKSPACE):
    return [
        recipient_context(
            workspace=workspace,
            campaign=CAMPAIGN,
            subscriber=p,
            urls={
                "unsubscribe_url": f"https://mm.test/f/u/{i}?a=1&b=2",
                "manage_url": f"https://mm.test/f/m/{i}",
                "view_in_browser_url": f"https://mm.test/f/v/{i}",
            },
        )
        for i, p in enumerate(PEOPLE)
    ]


@pytest.mark.parametrize("template", TEMPLATES)
def test_it_renders_each_recipient_exactly_as_a_whole_render(template):
    whole = compiled(*template)
    split = compiled(*template)
    split.split_for_sending()
    for _ in range(2):  # the second round reads what the first one kept
        for ctx in contexts():
            assert split.render(ctx) == whole.render(ctx)


def test_it_splits_the_body_into_few_pieces_with_repeated_values_evaluated_once():
    c = compiled(*TEMPLATES[0])
    c.split_for_sending()
    body = c._split["body"]
    assert isinstance(body, SplitTemplate)
    # The recipient's distinct values in one piece; the rest (the workspace's name, the lists,
    # the layout's statements) is what everyone shares, rendered once.
    own, *shared = body.pieces
    assert not own.shared and all(p.shared for p in shared)
    # first_name is in the body twice and evaluated once.
    own_items = [item for item in body.items if isinstance(item, int) and item < own.count]
    assert len(own_items) == own.count + 1


def test_it_renders_a_template_with_sets_or_macros_whole():
    c = compiled(*TEMPLATES[4])
    c.split_for_sending()
    assert c._split["body"] is None


def test_it_renders_what_everyone_shares_again_when_it_changes():
    c = compiled(*TEMPLATES[0])
    c.split_for_sending()
    first = c.render(contexts()[0])
    renamed = c.render(contexts({**WORKSPACE, "name": "Globex"})[0])
    assert "Acme &lt;&amp;&gt;" in first.html
    assert "Globex" in renamed.html and "Acme" not in renamed.html


def test_it_keeps_the_output_cap_when_split():
    c = compiled(
        "html",
        "{{ subscriber.attributes.big * 400000 }}{{ subscriber.attributes.big * 400000 }}",
        "S",
        "",
    )
    c.split_for_sending()
    ctx = contexts()[0]
    ctx["subscriber"]["attributes"] = {"big": "y"}
    assert c.render(ctx)  # 800,000 characters are fine (the same value, reused)...
    ctx["subscriber"]["attributes"] = {"big": "xx"}
    with pytest.raises(RenderError) as info:
        c.render(ctx)  # ...1,600,000 are not
    assert "longer than" in info.value.message


def test_it_keeps_the_loop_cap_when_split():
    c = compiled(
        "html",
        "{% for i in range(subscriber.attributes.n) %}{% for j in range(10000) %}"
        "{% endfor %}{% endfor %}done",
        "S",
        "",
    )
    c.split_for_sending()
    ctx = contexts()[0]
    ctx["subscriber"]["attributes"] = {"n": 2}
    assert "done" in c.render(ctx).html
    ctx["subscriber"]["attributes"] = {"n": 10000}
    with pytest.raises(RenderError) as info:
        c.render(ctx)
    assert "loops ran more than 100,000 times" in info.value.message


def test_it_does_not_count_time_the_machine_kept_the_worker_waiting(monkeypatch):
    # A busy machine: 300 ms of wall clock pass at every clock reading, but the thread spends
    # almost no CPU time. Only a template that itself takes long is stopped.
    import mailmarketer.campaigns.rendering as rendering

    wall = [0.0]

    def slow_wall_clock():
        wall[0] += 0.3
        return wall[0]

    monkeypatch.setattr(rendering, "perf_counter", slow_wall_clock)
    c = compiled(*TEMPLATES[1])
    c.split_for_sending()
    ctx = contexts()[2]
    assert c.render(ctx) == compiled(*TEMPLATES[1]).render(ctx)


@pytest.mark.parametrize("template", TEMPLATES)
def test_render_values_are_the_whole_render_with_or_without_the_fused_call(template):
    # render_values takes the subject's and the text part's own values from one call when the
    # text part does not print `subject` (CompiledCampaign._fuse): the same values either way.
    whole = compiled(*template)
    split = compiled(*template)
    split.split_for_sending()
    unfused = compiled(*template)
    unfused.split_for_sending()
    unfused._fused = None
    for _ in range(2):
        for ctx in contexts():
            values = split.render_values(ctx)
            if values is None:
                continue
            assert values == unfused.render_values(ctx)
            assert split.joined(values) == whole.render(ctx)


def test_the_subject_and_text_values_come_from_one_call_and_fail_as_before():
    c = compiled(
        "html",
        "<p>Hi {{ subscriber.first_name }}</p>",
        "Hi {{ subscriber.first_name }} {{ subscriber.attributes.n * 10 }}",
        "Hi {{ subscriber.first_name }}, {{ 10 ** subscriber.attributes.p }}",
    )
    c.split_for_sending()
    assert c._fused is not None
    people = [
        {"name": "Ann", "attributes": {"n": 1, "p": 2}},
        {"name": "Bo", "attributes": {"n": 1, "p": 5000}},  # the text part fails: too large
        {"name": "Cy", "attributes": {"n": "x" * 1000, "p": 2}},  # the subject fails: too long
        {"name": "Di", "attributes": {"n": 10**1300, "p": 2}},  # the subject fails: too large
    ]
    failed = []
    for person in people:
        ctx = recipient_context(workspace=WORKSPACE, campaign=CAMPAIGN, subscriber=person, urls={})
        try:
            expected = c.render(ctx)
        except RenderError as exc:
            failed.append(exc.field)
            with pytest.raises(RenderError) as info:
                c.render_values(ctx)
            assert (info.value.field, info.value.message) == (exc.field, exc.message)
        else:
            assert c.joined(c.render_values(ctx)) == expected
    assert failed == ["text_body", "subject", "subject"]
    assert c._fused is not None
