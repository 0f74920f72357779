"""Campaign, layout and attachment writes; status transitions; scheduling; test sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser

import pytest
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import Subscriber
from mailmarketer.campaigns import actions
from mailmarketer.campaigns.actions import TemplateError
from mailmarketer.campaigns.models import TRANSITIONS, Attachment, Campaign, CampaignLink, Layout
from mailmarketer.lib import outbox

Status = Campaign.Status
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"x" * 64


@pytest.fixture
def bob(personas):
    return Actor.for_user(personas.bob)


@pytest.fixture
def acme(personas):
    workspace = personas.acme
    workspace.postal_address = "1 Main Street, Springfield"
    workspace.save()
    return workspace


@pytest.fixture
def news(acme, bob):
    return audience.do_create_list(acme, name="News", slug="news", actor=bob)


@pytest.fixture
def draft(acme, news, bob):
    return actions.do_create_campaign(
        acme,
        actor=bob,
        name="Autumn",
        subject="Hello {{ subscriber.first_name }}",
        body="Read [the post](https://acme.test/post) and [more](https://acme.test/more).",
        lists=[news],
    )


def events(name):
    return list(AuditEvent.objects.filter(event=name))


# -- create, update, clone, delete -----------------------------------------------------------------


def test_it_creates_a_draft_with_its_links_and_an_audit_row(draft, personas):
    assert draft.status == Status.DRAFT
    assert draft.created_by == personas.bob
    assert list(draft.links.values_list("url", "position")) == [
        ("https://acme.test/post", 0),
        ("https://acme.test/more", 1),
    ]
    (event,) = events("campaign.created")
    assert event.object_id == str(draft.pk)
    assert event.new["name"] == "Autumn"
    assert "body" not in event.new


def test_it_refuses_a_campaign_whose_template_cannot_render(acme, bob):
    with pytest.raises(TemplateError) as info:
        actions.do_create_campaign(
            acme, actor=bob, name="Bad", subject="Hi", body="ok\n\n{{ subscriber.name | nope }}"
        )
    assert (info.value.field, info.value.line) == ("body", 3)
    assert info.value.code == "template"
    assert "unknown filter 'nope'" in str(info.value)
    assert not Campaign.objects.exists()


def test_it_requires_a_name_and_a_one_line_subject(acme, bob):
    with pytest.raises(ActionError, match="name is required"):
        actions.do_create_campaign(acme, actor=bob, name="", subject="Hi")
    with pytest.raises(ActionError, match="one line"):
        actions.do_create_campaign(acme, actor=bob, name="X", subject="Hi\r\nBcc: x@evil.test")
    with pytest.raises(ActionError, match="unknown campaign fields: status"):
        actions.do_create_campaign(acme, actor=bob, name="X", subject="Hi", status="running")


def test_it_refuses_lists_and_layouts_of_another_workspace(acme, personas, bob):
    theirs = audience.do_create_list(
        personas.evil, name="Theirs", slug="theirs", actor=Actor.for_user(personas.mallory)
    )
    with pytest.raises(ActionError, match="no such list in this workspace"):
        actions.do_create_campaign(acme, actor=bob, name="X", subject="Hi", lists=[theirs.pk])
    layout = actions.do_create_layout(
        personas.evil, actor=Actor.for_user(personas.mallory), name="L", html="{{ content }}"
    )
    with pytest.raises(ActionError, match="no such layout"):
        actions.do_create_campaign(acme, actor=bob, name="X", subject="Hi", layout=layout.pk)


def test_it_updates_a_draft_and_replaces_its_links(draft, bob):
    before = draft.updated_at
    actions.do_update_campaign(
        draft, {"body": "Now [only this](https://acme.test/new).", "subject": "New"}, actor=bob
    )
    draft.refresh_from_db()
    assert draft.subject == "New"
    assert draft.updated_at > before
    assert list(CampaignLink.objects.filter(campaign=draft).values_list("url", flat=True)) == [
        "https://acme.test/new"
    ]
    (event,) = events("campaign.updated")
    assert event.old == {"subject": "Hello {{ subscriber.first_name }}", "body": "(changed)"}
    assert event.new == {"subject": "New", "body": "(changed)"}


def test_it_keeps_the_campaign_unchanged_when_an_update_does_not_compile(draft, bob):
    with pytest.raises(TemplateError) as info:
        actions.do_update_campaign(draft, {"subject": "Hi {{ oops }"}, actor=bob)
    assert info.value.field == "subject"
    draft.refresh_from_db()
    assert draft.subject == "Hello {{ subscriber.first_name }}"
    assert not events("campaign.updated")


def test_it_refuses_to_edit_a_campaign_that_is_sending(draft, bob):
    actions.do_start_campaign(draft, actor=bob)
    with pytest.raises(Conflict, match="a running campaign cannot be edited"):
        actions.do_update_campaign(draft, {"subject": "Changed"}, actor=bob)


def test_it_clones_content_audience_attachments_and_links(draft, news, bob):
    actions.do_add_attachment(
        draft, filename="menu.pdf", content_type="application/pdf", data=PDF, actor=bob
    )
    actions.do_update_campaign(draft, {"headers": [["X-Campaign", "autumn"]]}, actor=bob)
    actions.do_start_campaign(draft, actor=bob)
    clone = actions.do_clone_campaign(draft, actor=bob)
    assert clone.pk != draft.pk and clone.uuid != draft.uuid
    assert clone.status == Status.DRAFT and clone.started_at is None
    assert clone.name == "Autumn (copy)"
    assert (clone.subject, clone.body, clone.headers) == (draft.subject, draft.body, draft.headers)
    assert list(clone.lists.all()) == [news]
    assert [(a.filename, bytes(a.data)) for a in clone.attachments.all()] == [("menu.pdf", PDF)]
    assert list(clone.links.values_list("url", flat=True)) == list(
        draft.links.values_list("url", flat=True)
    )
    assert events("campaign.cloned")[0].new["from_campaign"] == draft.pk


def test_it_deletes_drafts_only(draft, acme, bob):
    other = actions.do_clone_campaign(draft, actor=bob)
    actions.do_start_campaign(draft, actor=bob)
    with pytest.raises(Conflict, match="only drafts can be deleted"):
        actions.do_delete_campaign(draft, actor=bob)
    actions.do_delete_campaign(other, actor=bob)
    assert list(Campaign.objects.filter(workspace=acme)) == [draft]
    assert events("campaign.deleted")[0].object_id == str(other.pk)


# -- headers ---------------------------------------------------------------------------------------


def test_it_accepts_ordinary_extra_headers():
    assert actions.validate_headers({"X-Campaign": " autumn ", "X-Priority": "3"}) == [
        ["X-Campaign", "autumn"],
        ["X-Priority", "3"],
    ]


@pytest.mark.parametrize(
    "headers, message",
    [
        ([["X-A", "ok\r\nBcc: victim@example.com"]], "header injection"),
        ([["X-A", "ok\nX-B: y"]], "header injection"),
        ([["X-A", "nul\x00"]], "header injection"),
        ([["Bcc", "x@example.com"]], "set by Mail Marketer"),
        ([["From", "ceo@acme.test"]], "set by Mail Marketer"),
        ([["list-unsubscribe", "<https://evil.test>"]], "set by Mail Marketer"),
        ([["Content-Type", "text/html"]], "set by Mail Marketer"),
        ([["DKIM-Signature", "v=1"]], "set by Mail Marketer"),
        ([["X-A: b", "c"]], "not valid"),
        ([["X A", "c"]], "not valid"),
        ([["X-A\r\nBcc", "c"]], "not valid"),
        ([["X-A", "1"], ["x-a", "2"]], "given twice"),
        ([["X-A", "y" * 901]], "longer than 900"),
        ([["X-A"]], "pair"),
    ],
)
def test_it_refuses_bad_or_injected_headers(headers, message):
    with pytest.raises(ActionError, match=message) as info:
        actions.validate_headers(headers)
    assert info.value.code == "invalid_header"


def test_it_refuses_header_injection_when_saving(draft, bob):
    with pytest.raises(ActionError, match="header injection"):
        actions.do_update_campaign(draft, {"headers": [["X-A", "a\r\nBcc: b@c.d"]]}, actor=bob)
    draft.refresh_from_db()
    assert draft.headers == []


# -- attachments -----------------------------------------------------------------------------------


def test_it_adds_an_attachment_with_a_safe_filename(draft, bob):
    attachment = actions.do_add_attachment(
        draft,
        filename='C:\\Users\\x\\..\\"Price\u202elist"\r\n.pdf',
        content_type="application/pdf; name=x",
        data=PDF,
        actor=bob,
    )
    assert attachment.filename == "_Pricelist_.pdf"
    assert (attachment.content_type, attachment.size) == ("application/pdf", len(PDF))
    assert events("campaign.attachment_added")[0].new["filename"] == "_Pricelist_.pdf"


@pytest.mark.parametrize(
    "filename, content_type, data, message",
    [
        ("x.exe", "application/x-msdownload", b"MZ", "not accepted"),
        ("x.html", "text/html", b"<script>", "not accepted"),
        ("x.pdf.exe", "application/pdf", PDF, "must be named"),
        ("x.pdf", "application/pdf", b"MZ\x90\x00", "content does not match"),
        ("x.png", "image/png", PDF, "content does not match"),
        ("x.txt", "text/plain", b"\xff\xfe\x00", "UTF-8"),
        ("x.pdf", "application/pdf", b"", "empty"),
        ("x.pdf", "application/pdf", b"%PDF-" + b"x" * (1024 * 1024), "at most 1,048,576"),
        ("../", "application/pdf", PDF, "needs a file name"),
    ],
)
def test_it_refuses_unsafe_or_oversized_attachments(
    draft, bob, filename, content_type, data, message
):
    with pytest.raises(ActionError, match=message):
        actions.do_add_attachment(
            draft, filename=filename, content_type=content_type, data=data, actor=bob
        )
    assert not Attachment.objects.exists()


def test_it_caps_the_total_size_of_attachments(draft, bob):
    big = b"%PDF-" + b"x" * (1024 * 1024 - 5)
    for i in range(5):
        actions.do_add_attachment(
            draft, filename=f"{i}.pdf", content_type="application/pdf", data=big, actor=bob
        )
    with pytest.raises(ActionError, match="at most 5,242,880"):
        actions.do_add_attachment(
            draft, filename="6.png", content_type="image/png", data=PNG, actor=bob
        )
    assert Attachment.objects.count() == 5


# -- layouts ---------------------------------------------------------------------------------------

LAYOUT = (
    "<html><body><div>{{ content }}</div>"
    '<p>{{ postal_address }} <a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
)


def test_it_creates_layouts_with_one_default(acme, bob):
    first = actions.do_create_layout(acme, actor=bob, name="One", html=LAYOUT, is_default=True)
    second = actions.do_create_layout(acme, actor=bob, name="Two", html=LAYOUT, is_default=True)
    first.refresh_from_db()
    assert (first.is_default, second.is_default) == (False, True)
    assert len(events("layout.created")) == 2


def test_it_refuses_a_layout_without_a_content_slot_or_with_a_bad_template(acme, bob):
    with pytest.raises(ActionError, match="exactly one") as info:
        actions.do_create_layout(acme, actor=bob, name="L", html="<p>no slot</p>")
    assert info.value.code == "content_slot"
    with pytest.raises(TemplateError) as info:
        actions.do_create_layout(
            acme, actor=bob, name="L", html="<p>\n{{ content }}\n{% if x %}</p>"
        )
    assert (info.value.field, info.value.line) == ("layout", 3)


def test_it_uses_the_campaign_layout_then_the_workspace_default(draft, acme, bob):
    from mailmarketer.campaigns.queries import preview_campaign

    assert "View this email in your browser" in preview_campaign(draft).html  # built-in
    actions.do_create_layout(
        acme, actor=bob, name="House", html=LAYOUT.replace("<div>", "<div>HOUSE "), is_default=True
    )
    assert "HOUSE" in preview_campaign(draft).html
    own = actions.do_create_layout(
        acme, actor=bob, name="Own", html=LAYOUT.replace("<div>", "<div>OWN ")
    )
    actions.do_update_campaign(draft, {"layout": own.pk}, actor=bob)
    assert "OWN" in preview_campaign(draft).html


def test_it_refuses_to_change_or_delete_a_layout_a_sending_campaign_uses(draft, acme, bob):
    layout = actions.do_create_layout(acme, actor=bob, name="L", html=LAYOUT)
    actions.do_update_campaign(draft, {"layout": layout}, actor=bob)
    actions.do_start_campaign(draft, actor=bob)
    with pytest.raises(Conflict, match="sending"):
        actions.do_update_layout(layout, {"html": LAYOUT.replace("div", "section")}, actor=bob)
    with pytest.raises(Conflict, match="scheduled or sending"):
        actions.do_delete_layout(layout, actor=bob)
    actions.do_update_layout(layout, {"name": "Renamed"}, actor=bob)  # the name is harmless
    actions.do_cancel_campaign(draft, actor=bob)
    actions.do_delete_layout(layout, actor=bob)
    assert not Layout.objects.exists()


# -- status ----------------------------------------------------------------------------------------


def test_it_starts_a_campaign_with_an_audience_snapshot(draft, acme, personas, bob):
    mine = audience.do_create_subscriber(acme, email="ann@example.com", actor=bob)
    audience.do_create_subscriber(
        personas.evil, email="other@example.com", actor=Actor.for_user(personas.mallory)
    )
    actions.do_start_campaign(draft, actor=bob)
    draft.refresh_from_db()
    assert draft.status == Status.RUNNING
    assert draft.started_at is not None
    assert draft.audience_max_id == mine.pk  # this workspace's highest id, not another's
    assert (draft.planned_up_to, draft.planning_done) == (0, False)
    (event,) = events("campaign.started")
    assert event.old == {"status": "draft"}
    assert event.new == {"status": "running", "audience_max_id": mine.pk}
    assert Subscriber.objects.filter(workspace=personas.evil).get().pk > mine.pk


def test_it_refuses_to_start_marketing_without_a_postal_address(draft, acme, bob):
    acme.postal_address = "  "
    acme.save()
    with pytest.raises(ActionError) as info:
        actions.do_start_campaign(draft, actor=bob)
    assert info.value.code == "postal_address_required"
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT
    draft.kind = Campaign.Kind.TRANSACTIONAL
    draft.save()
    actions.do_start_campaign(draft, actor=bob)  # transactional mail needs no address


def test_it_refuses_to_start_without_lists_or_a_from_address(draft, acme, bob):
    actions.do_update_campaign(draft, {"lists": []}, actor=bob)
    with pytest.raises(ActionError) as info:
        actions.do_start_campaign(draft, actor=bob)
    assert info.value.code == "lists_required"
    actions.do_update_campaign(draft, {"lists": ["news"]}, actor=bob)
    acme.sender_email = ""
    acme.save()
    with pytest.raises(ActionError) as info:
        actions.do_start_campaign(draft, actor=bob)
    assert info.value.code == "from_required"
    actions.do_update_campaign(draft, {"from_email": "promo@acme.test"}, actor=bob)
    assert actions.do_start_campaign(draft, actor=bob).status == Status.RUNNING


def test_it_follows_the_transition_table(draft, bob):
    actions.do_start_campaign(draft, actor=bob)
    actions.do_pause_campaign(draft, actor=bob, reason="checking a typo")
    assert draft.status == Status.PAUSED and draft.status_reason == "checking a typo"
    actions.do_resume_campaign(draft, actor=bob)
    assert draft.status == Status.RUNNING
    actions.do_transition_campaign(draft, Status.FINISHED, actor=Actor.system("engine"))
    with pytest.raises(Conflict) as info:
        actions.do_transition_campaign(draft, Status.RUNNING, actor=bob)
    assert "cannot go from finished to running" in str(info.value)
    with pytest.raises(Conflict):
        actions.do_cancel_campaign(draft, actor=bob)
    draft.refresh_from_db()
    assert draft.status == Status.FINISHED
    assert [e.event for e in AuditEvent.objects.filter(object_type="campaign").order_by("id")][
        1:
    ] == ["campaign.started", "campaign.paused", "campaign.resumed", "campaign.status_changed"]


@pytest.mark.parametrize("start", [s for s in Status.values if s not in ("draft", "scheduled")])
def test_it_allows_exactly_the_transitions_in_the_table(draft, bob, start):
    for target in Status.values:
        Campaign.objects.filter(pk=draft.pk).update(status=start)
        try:
            actions.do_transition_campaign(draft, target, actor=bob)
            moved = True
        except Conflict:
            moved = False
        assert moved == (target in TRANSITIONS[start]), (start, target)


def test_it_cancels_a_campaign_for_good(draft, bob):
    actions.do_start_campaign(draft, actor=bob)
    actions.do_cancel_campaign(draft, actor=bob, reason="wrong list")
    draft.refresh_from_db()
    assert (draft.status, draft.status_reason) == (Status.CANCELLED, "wrong list")
    assert draft.finished_at is not None
    with pytest.raises(Conflict, match="cannot be resumed"):
        actions.do_resume_campaign(draft, actor=bob)


# -- scheduling ------------------------------------------------------------------------------------


def test_it_reads_a_form_time_in_the_workspace_time_zone(acme):
    acme.timezone = "Europe/Berlin"
    winter = actions.parse_local_datetime(acme, "2026-12-01T09:00")
    assert winter.astimezone(UTC) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    summer = actions.parse_local_datetime(acme, "2026-07-01T09:00")
    assert summer.astimezone(UTC) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    explicit = actions.parse_local_datetime(acme, "2026-07-01T09:00+00:00")
    assert explicit == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def test_it_refuses_local_times_that_do_not_exist_or_happen_twice(acme):
    acme.timezone = "Europe/Berlin"
    with pytest.raises(ActionError, match="does not exist in Europe/Berlin"):
        actions.parse_local_datetime(acme, "2026-03-29T02:30")
    with pytest.raises(ActionError, match="happens twice"):
        actions.parse_local_datetime(acme, "2026-10-25T02:30")
    with pytest.raises(ActionError, match="not a date and time"):
        actions.parse_local_datetime(acme, "tomorrow")


def test_it_schedules_in_the_workspace_time_zone_and_reschedules(draft, acme, bob):
    acme.timezone = "America/New_York"
    acme.save()
    draft.refresh_from_db()
    year = now().year + 1
    actions.do_schedule_campaign(draft, f"{year}-01-15T09:30", actor=bob)
    draft.refresh_from_db()
    assert draft.status == Status.SCHEDULED
    assert draft.scheduled_at == datetime(year, 1, 15, 14, 30, tzinfo=UTC)
    later = now() + timedelta(days=3)
    actions.do_schedule_campaign(draft, later, actor=bob)
    draft.refresh_from_db()
    assert (draft.status, draft.scheduled_at) == (Status.SCHEDULED, later)
    assert [
        e.event for e in AuditEvent.objects.filter(event__startswith="campaign.").order_by("id")
    ][-2:] == [
        "campaign.scheduled",
        "campaign.rescheduled",
    ]
    actions.do_unschedule_campaign(draft, actor=bob)
    assert (draft.status, draft.scheduled_at) == (Status.DRAFT, None)


def test_it_refuses_to_schedule_a_campaign_that_has_started(draft, bob):
    actions.do_start_campaign(draft, actor=bob)
    with pytest.raises(Conflict, match="a running campaign cannot be scheduled"):
        actions.do_schedule_campaign(draft, now() + timedelta(days=1), actor=bob)


def test_it_refuses_a_schedule_in_the_past_or_one_that_could_not_start(draft, acme, bob):
    with pytest.raises(ActionError, match="in the past"):
        actions.do_schedule_campaign(draft, now() - timedelta(minutes=1), actor=bob)
    acme.postal_address = ""
    acme.save()
    with pytest.raises(ActionError) as info:
        actions.do_schedule_campaign(draft, now() + timedelta(days=1), actor=bob)
    assert info.value.code == "postal_address_required"


# -- test sends ------------------------------------------------------------------------------------


def test_it_sends_a_test_to_staff_addresses_through_the_delivery_engine(
    draft, acme, bob, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        rendered = actions.do_send_test(
            draft, ["Boss@Acme.test", "copy@elsewhere.test", "Boss@acme.test"], actor=bob
        )
    assert rendered.subject == "Hello Jane"
    entries, total = outbox.list_messages(viewer=outbox.Viewer(acme.pk, "nobody@acme.test"))
    assert total == 2
    assert sorted(e.to for e in entries) == ["Boss@acme.test", "copy@elsewhere.test"]
    raw = next(outbox.outbox_dir().glob("*/*.eml")).read_bytes()
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert message["Subject"] == "[Test] Hello Jane"
    text, html = outbox.message_parts(message)
    assert "https://acme.test/post" in html and "https://acme.test/post" in text
    (event,) = events("campaign.test_sent")
    assert event.new == {"recipients": 2}


def test_it_refuses_a_test_send_without_valid_addresses(draft, bob):
    with pytest.raises(ActionError, match="at least one address"):
        actions.do_send_test(draft, [" "], actor=bob)
    with pytest.raises(ActionError) as info:
        actions.do_send_test(draft, ["not-an-address"], actor=bob)
    assert info.value.code == "invalid_email"
    with pytest.raises(ActionError, match="at most 10"):
        actions.do_send_test(draft, [f"s{i}@acme.test" for i in range(11)], actor=bob)
    assert not events("campaign.test_sent")
