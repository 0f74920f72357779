"""Campaign, layout and attachment writes (the content side; sending is tested in
delivery/tests/test_campaign_actions.py)."""

from __future__ import annotations

import pytest

from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience
from mailmarketer.campaigns import actions
from mailmarketer.campaigns import testing as shared
from mailmarketer.campaigns.actions import TemplateError
from mailmarketer.campaigns.models import Attachment, Campaign, CampaignLink, Layout
from mailmarketer.delivery import campaign_actions

Status = Campaign.Status
# The fixtures and helpers both sides of campaign writes share (campaigns/testing.py).
acme, bob, news, draft = shared.acme, shared.bob, shared.news, shared.draft
PDF, PNG, events = shared.PDF, shared.PNG, shared.events


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
    campaign_actions.do_start_campaign(draft, actor=bob)
    with pytest.raises(Conflict, match="a running campaign cannot be edited"):
        actions.do_update_campaign(draft, {"subject": "Changed"}, actor=bob)


def test_it_clones_content_audience_attachments_and_links(draft, news, bob):
    actions.do_add_attachment(
        draft, filename="menu.pdf", content_type="application/pdf", data=PDF, actor=bob
    )
    actions.do_update_campaign(draft, {"headers": [["X-Campaign", "autumn"]]}, actor=bob)
    campaign_actions.do_start_campaign(draft, actor=bob)
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
    campaign_actions.do_start_campaign(draft, actor=bob)
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
    campaign_actions.do_start_campaign(draft, actor=bob)
    with pytest.raises(Conflict, match="sending"):
        actions.do_update_layout(layout, {"html": LAYOUT.replace("div", "section")}, actor=bob)
    with pytest.raises(Conflict, match="scheduled or sending"):
        actions.do_delete_layout(layout, actor=bob)
    actions.do_update_layout(layout, {"name": "Renamed"}, actor=bob)  # the name is harmless
    campaign_actions.do_cancel_campaign(draft, actor=bob)
    actions.do_delete_layout(layout, actor=bob)
    assert not Layout.objects.exists()
