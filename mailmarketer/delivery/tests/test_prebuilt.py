"""The pre-built body (delivery/prebuilt.py) against the general path it replaces: for the same
templates, values, links and parts, the same message bytes (and, when signing, the same DKIM
body hash), whatever the text around the values and the values themselves hold; and where the
two could differ, the general path is taken."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.campaigns import rendering
from mailmarketer.delivery import mime, smtp
from mailmarketer.delivery.dkim import DkimSigner, generate_key, relaxed_body
from mailmarketer.delivery.prebuilt import PrebuiltBody
from mailmarketer.delivery.tracked_links import LinkTracker

LINKS = {"https://shop.example.com/a": 7, "https://shop.example.com/a?x=1": 8}
WORKSPACE = {"name": "Acme & Co", "postal_address": "1 Road\nBergen", "sender_name": "Acme"}
CAMPAIGN = {"name": "Spring", "subject": "Hi", "lists": ["News"]}
DATE = datetime(2026, 12, 5, 1, 2, 3, tzinfo=UTC)

# Text around the values that the per-message steps look at: anchors and their href, the end of
# the body, stored URLs whole and in part, punctuation after a URL, spaces and line ends.
HTML_BITS = [
    '<a href="',
    '<A HREF="',
    '"',
    '">',
    "</a>",
    "<a ",
    "<a",
    "<",
    'href="',
    "hr",
    'ef="',
    "=",
    "</body>",
    "</bo",
    "dy>",
    "</BODY >",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n\n",
    "https://shop.example.com/a",
    "https://shop.example.com/a?x=1",
    "https://shop.example.com/",
    ".",
    ")",
    ":",
    "x",
    "<p>Hello ",
    "</p>",
    "&amp;",
]
TEXT_BITS = [
    "https://shop.example.com/a",
    "https://shop.example.com/a?x=1",
    "https://shop.",
    "example.com/a",
    ".",
    ").",
    ":",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\n\n\n",
    "\r",
    "x",
    "Hello ",
    "<",
    ">",
    ".",
    "\n.",
]
EXPRESSIONS = [
    "{{ subscriber.first_name }}",
    "{{ subscriber.attributes.a }}",
    "{{ subscriber.attributes.b }}",
    "{{ unsubscribe_url }}",
    "{{ workspace.name }}",
    "{{ postal_address }}",
    "{{ subject }}",
    "{% for line in workspace.postal_lines %}{{ line }}<br>{% endfor %}",
    "{% if subscriber.attributes.a %}[{{ subscriber.attributes.a }}]{% endif %}",
]
VALUES = [
    "",
    " ",
    "x",
    "Ann",
    "Ann Lee",
    "a  b",
    " lead",
    "trail ",
    "=",
    "href=",
    "hr",
    "ef=",
    "a=b",
    "<a",
    '"',
    "https://shop.example.com/a",
    "https://shop.example.com/",
    "example.com/a",
    "see https://shop.example.com/a.",
    "://",
    "Søren",
    "a\nb",
    "a\tb",
    ".",
    "x" * 1000,
]


def template(bits: list[str], pieces: list[tuple[int, int]]) -> str:
    return "".join(bits[i] if kind == 0 else EXPRESSIONS[i] for kind, i in pieces)


def pieces_of(bits: list[str]):
    return st.lists(
        st.one_of(
            st.tuples(st.just(0), st.integers(0, len(bits) - 1)),
            st.tuples(st.just(1), st.integers(0, len(EXPRESSIONS) - 1)),
        ),
        max_size=14,
    )


def compiled_of(html: str, text: str, squeeze: bool) -> rendering.CompiledCampaign:
    compiled = rendering.CompiledCampaign(
        campaign_id=1,
        links=list(LINKS),
        subject_template=rendering.compile_template(
            rendering.TEXT_ENV, "News for {{ subscriber.first_name }}", "subject"
        ),
        html_template=rendering.compile_template(rendering.HTML_ENV, html, "body"),
        text_template=rendering.compile_template(rendering.TEXT_ENV, text, "text_body"),
        squeeze_text=squeeze,
    )
    compiled.split_for_sending()
    return compiled


def context(first: str, a: str, b: str) -> dict:
    return rendering.recipient_context(
        workspace=WORKSPACE,
        campaign=CAMPAIGN,
        subscriber={"name": first, "first_name": first, "attributes": {"a": a, "b": b}},
        urls={"unsubscribe_url": "https://mail.example.com/f/u/1.2.3.abc_-Z"},
    )


def sample() -> dict:
    return context("Jane", "", "")


def general(compiled, tracker, parts, ctx, delivery_id) -> tuple[bytes | None, str]:
    try:
        rendered = compiled.render(ctx)
    except rendering.RenderError as exc:
        return None, str(exc)
    html, text = rendered.html, rendered.text
    if tracker is not None:
        html, text = tracker.apply(delivery_id, html, text)
    return mime.build_message(parts, **headers(rendered.subject), html=html, text=text), ""


def headers(subject: str) -> dict:
    return {
        "to_email": "ann@example.com",
        "to_name": "Ann",
        "subject": subject,
        "message_id": "<5.x@mail.example.com>",
        "date": DATE,
        "list_unsubscribe_url": "https://mail.example.com/f/u/1.2.3.abc_-Z",
    }


def prebuilt(plan, compiled, parts, ctx, delivery_id):
    """(message bytes or None when the general path is taken, DKIM body digest, error)."""
    try:
        values = compiled.render_values(ctx)
    except rendering.RenderError as exc:
        return None, None, str(exc)
    built = plan.body(delivery_id, values) if plan is not None and values is not None else None
    if built is None:
        return None, None, ""
    body, digest = built
    head = mime.message_headers(parts, **headers(values.subject))
    message = plan.message_type(head + body)
    if plan.signing:
        # What engine._build hands DkimSigner.header: the header fields up to the empty line,
        # whose last (the body's own Content-Type) are the body's first bytes; signed that way
        # the message is what sign() makes of the whole.
        fields = head + body[: plan.body_start - 4]
        assert fields == message[: message.index(b"\r\n\r\n")]
        signer = parts.dkim
        signed = signer.header(fields, digest, timestamp=1) + message
        assert signed == signer.sign(message, timestamp=1)
    # The client's DATA payload: a DotFreeMessage skips the dot-stuffing, which must then have
    # had nothing to do (plain bytes go through the whole of it).
    assert smtp.prepare_data(message) == smtp.prepare_data(bytes(message))
    return message, digest, ""


@pytest.fixture(autouse=True, scope="module")
def no_time_cap():
    # The render time cap (200 ms of CPU) is the same code on both paths; on a busy machine a
    # 1,000-character value rendered many times could reach it on one path and not the other.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rendering, "RENDER_TIME_LIMIT", 60.0)
        yield


@pytest.fixture(scope="module")
def signer():
    private_pem, _ = generate_key(bits=1024)
    return DkimSigner("example.com", "s1", private_pem)


used = {"prebuilt": 0, "general": 0}


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    html=pieces_of(HTML_BITS),
    text=pieces_of(TEXT_BITS),
    squeeze=st.booleans(),
    tracked=st.sampled_from(["links", "pixel", "off"]),
    people=st.lists(
        st.tuples(st.sampled_from(VALUES), st.sampled_from(VALUES), st.sampled_from(VALUES)),
        min_size=1,
        max_size=4,
    ),
)
def test_it_makes_the_same_bytes_as_the_general_path(html, text, squeeze, tracked, people, signer):
    try:
        compiled = compiled_of(template(HTML_BITS, html), template(TEXT_BITS, text), squeeze)
    except rendering.TemplateProblem:
        return
    tracker = None if tracked == "off" else LinkTracker(LINKS if tracked == "links" else {})
    plain = mime.MessageParts(from_email="news@example.com", list_id="1.lists.example.com")
    signed = mime.MessageParts(
        from_email="news@example.com", list_id="1.lists.example.com", dkim=signer
    )
    plain_plan = PrebuiltBody.plan(compiled, tracker, plain, sample())
    signed_plan = PrebuiltBody.plan(compiled, tracker, signed, sample())
    for n, (first, a, b) in enumerate(people):
        ctx = context(first, a, b)
        expected, error = general(compiled, tracker, plain, ctx, 100 + n)
        got, _, got_error = prebuilt(plain_plan, compiled, plain, ctx, 100 + n)
        assert got_error == error
        if got is not None:
            used["prebuilt"] += 1
            assert got == expected
        else:
            used["general"] += 1
        got, digest, got_error = prebuilt(signed_plan, compiled, signed, ctx, 100 + n)
        assert got_error == error
        if got is not None:
            body = got[got.index(b"\r\n\r\n") + 4 :]
            assert digest == hashlib.sha256(relaxed_body(body)).digest()
            unsigned, _ = general(compiled, tracker, plain, ctx, 100 + n)
            # The same message as unsigned, but for the parts' own boundaries.
            boundary = signed._alt_boundary.encode()
            assert got.replace(boundary, plain._alt_boundary.encode()) == unsigned


def test_the_generated_cases_take_both_paths():
    # Runs after the property test in this module: the generated cases must exercise the
    # pre-built path, not only fall back (a test that always falls back proves nothing).
    if used["prebuilt"] + used["general"] == 0:
        pytest.skip("the property test did not run first")
    assert used["prebuilt"] > 50
    assert used["general"] > 50


BENCH_LIKE = (
    "<html><body>"
    + (
        "<p>Hello {{ subscriber.first_name | default('there') }}, read about "
        '<a href="https://shop.example.com/a">the harvest</a>.</p>\n'
    )
    * 5
    + '<p><a href="https://shop.example.com/offer/{{ subscriber.uuid }}">Your offer</a></p>'
    + '<p>{{ workspace.name }}<br><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    "</body></html>"
)
BENCH_TEXT = (
    "Hello {{ subscriber.first_name | default('there') }}, https://shop.example.com/a\n\n"
    "--\n{{ workspace.name }}\n{{ postal_address }}\nUnsubscribe: {{ unsubscribe_url }}\n"
)


def bench_like():
    compiled = compiled_of(BENCH_LIKE, BENCH_TEXT, False)
    tracker = LinkTracker(LINKS)
    parts = mime.MessageParts(from_email="news@example.com", list_id="1.lists.example.com")
    return compiled, tracker, parts, PrebuiltBody.plan(compiled, tracker, parts, sample())


def test_a_campaign_that_prints_values_is_pre_built():
    compiled, tracker, parts, plan = bench_like()
    assert plan is not None
    for n, first in enumerate(["Ann", "", "Ann Lee", "O'Brien & Sons"]):
        ctx = context(first, "", "")
        got, _, _ = prebuilt(plan, compiled, parts, ctx, 9 + n)
        assert got is not None, first
        assert got == general(compiled, tracker, parts, ctx, 9 + n)[0]
        assert b"/t/c/" in got and b"/t/o/" in got


@pytest.mark.parametrize(
    "first",
    [
        "Søren",  # not ASCII: the part becomes quoted-printable
        "x" * 1200,  # its line grows past 998 octets
        "a\nb",  # a line break: the line ends are converted
    ],
)
def test_a_value_that_changes_the_encoding_takes_the_general_path(first):
    compiled, tracker, parts, plan = bench_like()
    ctx = context(first, "", "")
    got, _, _ = prebuilt(plan, compiled, parts, ctx, 3)
    assert got is None
    message, _ = general(compiled, tracker, parts, ctx, 3)
    assert b"Content-Transfer-Encoding: 7bit" not in message or b"\r\nb" in message


def test_a_line_grown_past_998_octets_takes_the_general_path_and_one_at_998_does_not():
    compiled, tracker, parts, plan = bench_like()
    seen = set()
    for size in range(400, 1000, 3):
        ctx = context("x" * size, "", "")
        got, _, _ = prebuilt(plan, compiled, parts, ctx, 3)
        message, _ = general(compiled, tracker, parts, ctx, 3)
        seven_bit = b"quoted-printable" not in message
        assert (got is not None) == seven_bit, size
        if got is not None:
            assert got == message
        seen.add(seven_bit)
    assert seen == {True, False}  # both sides of the limit were tried


def test_a_value_that_is_a_stored_link_takes_the_general_path():
    # The text part's link finder would track it: only the general path knows.
    compiled = compiled_of(BENCH_LIKE, "See {{ subscriber.attributes.a }} now\n", False)
    tracker = LinkTracker(LINKS)
    parts = mime.MessageParts(from_email="news@example.com", list_id="1.lists.example.com")
    plan = PrebuiltBody.plan(compiled, tracker, parts, sample())
    assert plan is not None
    ctx = context("Ann", "https://shop.example.com/a", "")
    assert prebuilt(plan, compiled, parts, ctx, 3)[0] is None
    assert b"/t/c/3.7." in general(compiled, tracker, parts, ctx, 3)[0]
    ctx = context("Ann", "https://elsewhere.example.com/", "")
    assert (
        prebuilt(plan, compiled, parts, ctx, 3)[0] == general(compiled, tracker, parts, ctx, 3)[0]
    )


def test_an_anchor_whose_url_a_value_completes_is_checked_per_recipient():
    html = '<html><body><a href="https://shop.example.com/{{ subscriber.attributes.a }}">x</a>'
    compiled = compiled_of(html + "</body></html>", "x\n", False)
    tracker = LinkTracker(LINKS)
    parts = mime.MessageParts(from_email="news@example.com", list_id="1.lists.example.com")
    plan = PrebuiltBody.plan(compiled, tracker, parts, sample())
    assert plan is not None
    stored = context("Ann", "a", "")  # makes the stored https://shop.example.com/a
    assert prebuilt(plan, compiled, parts, stored, 4)[0] is None
    assert b"/t/c/4.7." in general(compiled, tracker, parts, stored, 4)[0]
    other = context("Ann", "b", "")
    assert (
        prebuilt(plan, compiled, parts, other, 4)[0]
        == general(compiled, tracker, parts, other, 4)[0]
    )


@pytest.mark.parametrize(
    "html",
    [
        "<html><body><{{ subscriber.attributes.a }} href='x'></body></html>",  # an anchor's start
        '<html><body><a {{ subscriber.attributes.a }}href="https://shop.example.com/a">x</a>',
        "<html><body>x</body{{ subscriber.attributes.a }}></html>",  # the body's end
    ],
)
def test_text_that_a_value_could_complete_leaves_the_campaign_to_the_general_path(html):
    compiled = compiled_of(html, "x\n", False)
    parts = mime.MessageParts(from_email="news@example.com", list_id="1.lists.example.com")
    assert PrebuiltBody.plan(compiled, LinkTracker(LINKS), parts, sample()) is None


def test_a_changed_shared_value_takes_the_general_path():
    compiled, tracker, parts, plan = bench_like()
    ctx = context("Ann", "", "")
    ctx["workspace"] = {**ctx["workspace"], "name": "Renamed"}
    assert prebuilt(plan, compiled, parts, ctx, 3)[0] is None
    assert b"Renamed" in general(compiled, tracker, parts, ctx, 3)[0]


def test_a_render_error_is_the_same_error(monkeypatch):
    compiled, tracker, parts, plan = bench_like()
    monkeypatch.setattr(rendering, "MAX_WORK", 50)
    ctx = context("Ann", "", "")
    expected = general(compiled, tracker, parts, ctx, 3)[1]
    assert expected
    assert prebuilt(plan, compiled, parts, ctx, 3)[2] == expected


def test_a_value_that_completes_an_href_before_a_quote_takes_the_general_path():
    html = '<html><body><a {{ subscriber.attributes.a }}"https://shop.example.com/a">x</a>'
    compiled = compiled_of(html + "</body></html>", "x\n", False)
    tracker = LinkTracker(LINKS)
    parts = mime.MessageParts(from_email="news@example.com", list_id="1.lists.example.com")
    plan = PrebuiltBody.plan(compiled, tracker, parts, sample())
    assert plan is not None
    ctx = context("Ann", "href=", "")
    assert prebuilt(plan, compiled, parts, ctx, 4)[0] is None
    assert b"/t/c/4.7." in general(compiled, tracker, parts, ctx, 4)[0]
    ctx = context("Ann", "title", "")
    assert (
        prebuilt(plan, compiled, parts, ctx, 4)[0] == general(compiled, tracker, parts, ctx, 4)[0]
    )


def test_a_changed_shared_value_of_the_text_part_takes_the_general_path():
    compiled, tracker, parts, plan = bench_like()
    ctx = context("Ann", "", "")
    ctx["postal_address"] = "2 Other Road"  # printed by the text part only
    assert prebuilt(plan, compiled, parts, ctx, 3)[0] is None
    assert b"2 Other Road" in general(compiled, tracker, parts, ctx, 3)[0]


@pytest.mark.parametrize(
    "text",
    [
        "See https://shop.{{ subscriber.attributes.a }}\n",  # a stored URL begins before a value
        "See {{ subscriber.attributes.a }}example.com/a\n",  # ... or ends after one
        "See https://shop.example.com/a.{{ subscriber.attributes.a }}\n",  # ... or just before
    ],
)
def test_a_stored_url_next_to_a_value_leaves_the_campaign_to_the_general_path(text):
    compiled = compiled_of(BENCH_LIKE, text, False)
    parts = mime.MessageParts(from_email="news@example.com", list_id="1.lists.example.com")
    assert PrebuiltBody.plan(compiled, LinkTracker(LINKS), parts, sample()) is None
    # Without stored links nothing in the text part is looked for.
    assert PrebuiltBody.plan(compiled, LinkTracker({}), parts, sample()) is not None


@pytest.mark.parametrize(
    "text",
    [
        "See {{ subscriber.attributes.a }}{{ subscriber.attributes.b }}\n",
        "See {{ subscriber.attributes.a }}/{{ subscriber.attributes.b }}\n",
    ],
)
def test_values_a_stored_url_could_span_leave_the_campaign_to_the_general_path(text):
    # "https://shop.example.com" and "a" make the stored https://shop.example.com/a.
    compiled = compiled_of(BENCH_LIKE, text, False)
    parts = mime.MessageParts(from_email="news@example.com", list_id="1.lists.example.com")
    assert PrebuiltBody.plan(compiled, LinkTracker(LINKS), parts, sample()) is None
    compiled = compiled_of(BENCH_LIKE, text.replace("/", " / ").replace("}}{{", "}} {{"), False)
    assert PrebuiltBody.plan(compiled, LinkTracker(LINKS), parts, sample()) is not None


def test_a_campaign_whose_pre_building_fails_is_sent_the_general_way(monkeypatch):
    from mailmarketer.delivery import engine

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in pre-building")

    compiled, tracker, parts, _ = bench_like()
    monkeypatch.setattr(engine.PrebuiltBody, "plan", broken)
    monkeypatch.setattr(engine.rendering, "compile_campaign", lambda campaign: compiled)
    monkeypatch.setattr(engine.mime, "MessageParts", lambda **kwargs: parts)
    monkeypatch.setattr(engine.LinkTracker, "for_campaign", lambda campaign: tracker)
    monkeypatch.setattr(engine, "_dkim_signer", lambda campaign, from_email: None)
    campaign = _Campaign()
    engine.reset_state()
    try:
        prepared = engine.prepare(campaign)
    finally:
        engine.reset_state()
    assert prepared.prebuilt is None
    assert prepared.compiled is compiled


class _Campaign:
    """What prepare() reads of a campaign, without a database."""

    pk = 1
    updated_at = None
    from_email = "news@example.com"
    from_name = "News"
    reply_to = ""
    headers: list = []
    data: dict = {}
    kind = "marketing"
    name = "Spring"
    subject = "Hi"

    class workspace:
        pk = 1
        slug = "acme"
        name = "Acme"
        sender_email = "news@example.com"
        sender_name = "Acme"
        postal_address = "1 Road"

    class _Empty:
        def all(self):
            return []

        def values_list(self, *args, **kwargs):
            return []

        def order_by(self, *args):
            return self

    lists = _Empty()
    exclude_lists = _Empty()
    attachments = _Empty()


def test_a_line_of_several_values_grown_past_998_octets_takes_the_general_path():
    # Two values on one line, each far below 998 octets: the line's length is what counts.
    html = "<p>{{ subscriber.first_name }} and {{ subscriber.attributes.a }}</p>\n<p>x</p>"
    text = "{{ subscriber.first_name }} and {{ subscriber.attributes.a }}\nx\n"
    compiled = compiled_of(html, text, False)
    parts = mime.MessageParts(from_email="news@example.com", list_id="1.lists.example.com")
    plan = PrebuiltBody.plan(compiled, None, parts, sample())
    assert plan is not None and plan.holes_per_line == 2
    seen = set()
    for size in range(470, 520, 2):
        ctx = context("x" * size, "y" * size, "")
        got, _, _ = prebuilt(plan, compiled, parts, ctx, 3)
        message, _ = general(compiled, None, parts, ctx, 3)
        seven_bit = b"quoted-printable" not in message
        assert (got is not None) == seven_bit, size
        if got is not None:
            assert got == message
        seen.add(seven_bit)
    assert seen == {True, False}
