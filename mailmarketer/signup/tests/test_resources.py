"""Resources (lead magnets): uploads checked by content and size, kept 0600 under the data
directory; resource forms that mail a signed, expiring download link (and show it at once when
single opt-in); downloads served as attachments and recorded per person; the staff pages."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.test import Client
from django.utils.timezone import now

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import (
    ConsentRecord,
    Fact,
    FactKind,
    Subscriber,
    Subscription,
    Suppression,
)
from mailmarketer.signup import resources
from mailmarketer.signup.fields import FormError
from mailmarketer.signup.models import (
    Resource,
    ResourceDownload,
    ResourceForm,
    ResourceGrant,
    Submission,
)
from mailmarketer.signup.resources import make_download_token
from mailmarketer.signup.testing import altcha_payload

from .kinds_support import (
    EPUB_BYTES,
    EXE_BYTES,
    PDF_BYTES,
    download_path,
    make_resource,
    resource_form,
    upload,
)
from .support import post, run_engine, sent_messages

ANN = {"email": "ann@example.com", "name": "Ann", "consent": "1"}


def resource_files(workspace) -> list[Path]:
    folder = Path(settings.DATA_DIR) / "resources" / f"ws-{workspace.pk}"
    return sorted(folder.glob("*")) if folder.exists() else []


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"


@pytest.fixture
def guide(personas, staff):
    return make_resource(personas.acme, staff)


@pytest.fixture
def guide_form(personas, staff, guide, news):
    return resource_form(personas.acme, staff, guide, lists=[news])


# -- uploads ---------------------------------------------------------------------------------


def test_it_keeps_an_upload_private_under_a_safe_name_with_the_type_of_its_content(personas, staff):
    resource = make_resource(
        personas.acme,
        staff,
        upload=upload(PDF_BYTES, name='..\\../my "guide".pdf.html', content_type="text/html"),
    )
    path = resources.stored_path(resource)
    assert path.read_bytes() == PDF_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert path.parent == Path(settings.DATA_DIR) / "resources" / f"ws-{personas.acme.pk}"
    assert resource.content_type == "application/pdf"  # not what the client claimed
    assert resource.filename == "my_guide_.pdf.pdf"
    assert resource.size == len(PDF_BYTES)
    assert AuditEvent.objects.filter(event="resource.created").count() == 1


@pytest.mark.parametrize(
    ("content", "content_type", "extension"),
    [
        (EPUB_BYTES, "application/epub+zip", "epub"),
        (b"PK\x03\x04" + b"\x00" * 60, "application/zip", "zip"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image/png", "png"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "image/jpeg", "jpg"),
        ("Grüße, tab\tand lines\n".encode(), "text/plain; charset=utf-8", "txt"),
    ],
)
def test_it_knows_each_allowed_type_by_its_content(
    personas, staff, content, content_type, extension
):
    resource = make_resource(personas.acme, staff, upload=upload(content, name="file.bin"))
    assert resource.content_type == content_type
    assert resource.filename == f"file.{extension}"


@pytest.mark.parametrize(
    "content",
    [
        EXE_BYTES,  # a Windows program, named .pdf
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00",  # not on the list
        b"plain at first" + b"\n" * 70000 + b"\xff\xfe broken UTF-8 later",
        b"text with a NUL \x00 in it",
        b"",
    ],
)
def test_it_refuses_a_file_whose_content_is_not_an_allowed_type(personas, staff, content):
    with pytest.raises(FormError) as refused:
        make_resource(personas.acme, staff, upload=upload(content, name="guide.pdf"))
    assert refused.value.field == "file"
    assert not Resource.objects.exists()
    assert resource_files(personas.acme) == []


def test_it_refuses_a_file_over_the_size_limit_and_keeps_nothing(personas, staff, settings):
    settings.RESOURCE_MAX_BYTES = 1000
    big = PDF_BYTES + b"x" * 2000
    with pytest.raises(FormError, match="at most") as refused:
        make_resource(personas.acme, staff, upload=upload(big))
    assert refused.value.field == "file"

    class Lying:  # a client that claims a small size: the copy counts the bytes itself
        name, size = "guide.pdf", 10

        def chunks(self, size):
            yield big[:600]
            yield big[600:]

    with pytest.raises(FormError, match="at most"):
        make_resource(personas.acme, staff, upload=Lying())
    assert not Resource.objects.exists()
    assert resource_files(personas.acme) == []


@pytest.mark.parametrize(
    "url", ["http://example.com/guide.pdf", "javascript:alert(1)", "https://u:p@example.com/"]
)
def test_it_takes_only_an_https_address_as_an_external_resource(personas, staff, url):
    with pytest.raises(FormError) as refused:
        make_resource(personas.acme, staff, external_url=url)
    assert refused.value.field == "external_url"


def test_it_replaces_the_file_and_removes_the_old_one(personas, staff, guide):
    old = resources.stored_path(guide)
    resources.do_update_resource(
        guide, title="Guide v2", link_days=3, upload=upload(b"new text\n", "v2.txt"), actor=staff
    )
    guide.refresh_from_db()
    assert not old.exists()
    assert resources.stored_path(guide).read_bytes() == b"new text\n"
    assert (guide.title, guide.link_days, guide.filename) == ("Guide v2", 3, "v2.txt")


# -- the form, the mail and the link ---------------------------------------------------------


def test_it_mails_a_link_shows_it_at_once_and_serves_the_file_as_an_attachment(
    guide_form, guide, personas, news
):
    response = post(guide_form, ANN)
    assert response.status_code == 200
    page_link = download_path(response.content.decode())
    run_engine()
    [mail] = sent_messages(personas.acme)
    assert mail["To"] == "ann@example.com"  # the typed name is not in the header
    body = mail.get_body(("plain",)).get_content()
    assert "The coffee guide" in body
    mail_link = download_path(body)
    assert mail_link == page_link

    download = Client().get(mail_link)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF_BYTES
    assert download["Content-Disposition"] == 'attachment; filename="guide.pdf"'
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Type"] == "application/pdf"
    ann = Subscriber.objects.get(email="ann@example.com")
    [row] = ResourceDownload.objects.all()
    assert (row.subscriber, row.resource, row.workspace) == (ann, guide, personas.acme)
    # A fact segments read: "downloaded resource X".
    fact = Fact.objects.get(subscriber=ann, kind=FactKind.DOWNLOADED)
    assert (fact.object_key, fact.count) == (f"resource:{guide.pk}", 1)
    # The box was ticked: subscribed to the form's list, with the consent record.
    assert Subscription.objects.get(subscriber=ann).mailing_list == news
    assert ConsentRecord.objects.filter(subscriber=ann, notice=guide_form.notice).exists()


def test_it_gives_the_resource_without_any_list_when_the_box_is_not_ticked(guide_form):
    response = post(guide_form, {"email": "ann@example.com"})
    assert response.status_code == 200
    assert "/f/r/" in response.content.decode()
    ann = Subscriber.objects.get(email="ann@example.com")
    assert not Subscription.objects.filter(subscriber=ann).exists()
    assert not ConsentRecord.objects.filter(subscriber=ann).exists()
    assert Submission.objects.get().outcome == Submission.Outcome.REQUESTED
    assert ResourceGrant.objects.get().mailed


def test_it_gives_the_link_only_by_mail_when_the_form_is_double_opt_in(
    personas, staff, guide, weekly
):
    form = resource_form(personas.acme, staff, guide, lists=[weekly], slug="dbl")
    response = post(form, ANN)
    assert response.status_code == 200
    assert "/f/r/" not in response.content.decode()
    run_engine()
    subjects = sorted(m["Subject"] for m in sent_messages(personas.acme))
    assert subjects == ["Please confirm your subscription", "Your download: The coffee guide"]


def test_it_mails_one_address_one_link_per_resource_a_day(guide_form, personas):
    for _ in range(3):
        assert post(guide_form, ANN).status_code == 200
    run_engine()
    assert len(sent_messages(personas.acme)) == 1
    assert ResourceGrant.objects.count() == 1


def test_it_answers_alike_for_a_bounced_address_and_mails_it_nothing(guide_form, personas, staff):
    audience.do_add_suppression(
        personas.acme, email="bob@example.com", reason=Suppression.Reason.HARD_BOUNCE, actor=staff
    )
    refused = post(guide_form, {"email": "bob@example.com", "consent": "1"})
    accepted = post(guide_form, ANN)
    assert refused.status_code == accepted.status_code == 200
    assert "/f/r/" in refused.content.decode()
    run_engine()
    assert [m["To"] for m in sent_messages(personas.acme)] == ["ann@example.com"]


def test_it_refuses_forged_altered_and_expired_links_with_a_clear_page(guide_form, personas):
    post(guide_form, ANN)
    grant = ResourceGrant.objects.get()
    good = f"/f/r/{make_download_token(grant.pk)}"
    client = Client()
    for path in (
        f"/f/r/{make_download_token(grant.pk + 1000)}",  # signed, but names nothing
        good[:-2] + ("aa" if not good.endswith("aa") else "bb"),  # altered
        f"/f/r/{grant.pk}",  # unsigned
        "/f/r/" + "x" * 3000,
    ):
        response = client.get(path)
        assert response.status_code == 400, path
        assert "not valid" in response.content.decode()
    later = now() + timedelta(days=14, seconds=1)
    with mock.patch("mailmarketer.signup.resources.now", return_value=later):
        expired = client.get(good)
    assert expired.status_code == 410
    assert "expired" in expired.content.decode()
    assert not ResourceDownload.objects.exists()
    assert client.get(good).status_code == 200  # still good before the expiry


def test_it_lasts_as_long_as_the_resource_says(personas, staff, news):
    short = make_resource(personas.acme, staff, title="Short", link_days=2)
    form = resource_form(personas.acme, staff, short, lists=[news], slug="short")
    post(form, ANN)
    grant = ResourceGrant.objects.get()
    assert timedelta(days=2) - (grant.expires_at - grant.created_at) < timedelta(seconds=1)


def test_it_redirects_to_an_external_resource_and_counts_it(personas, staff, news):
    external = make_resource(personas.acme, staff, external_url="https://cdn.example.com/g.pdf")
    form = resource_form(personas.acme, staff, external, lists=[news], slug="ext")
    path = download_path(post(form, ANN).content.decode())
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == "https://cdn.example.com/g.pdf"
    assert ResourceDownload.objects.filter(resource=external).count() == 1


def test_it_has_no_public_page_for_a_resource_form_without_a_resource(personas, staff, guide_form):
    resources.do_bind_resource(guide_form, None, actor=staff)
    assert Client().get("/f/acme/guide").status_code == 404


def test_it_says_in_json_where_to_download_on_a_single_opt_in_form(guide_form):
    from mailmarketer.signup.tokens import EMBED, make_form_token

    response = Client().post(
        "/f/acme/guide.json",
        {
            **ANN,
            "consent": True,
            "form_token": make_form_token(guide_form.pk, EMBED),
            "altcha": altcha_payload(guide_form),
        },
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert "/f/r/" in response.json()["download_url"]


# -- staff pages -----------------------------------------------------------------------------


def test_it_lets_a_marketer_upload_and_see_the_download_counts(bob_client, personas, guide_form):
    response = bob_client.post(
        "/app/acme/resources/new/",
        {"title": "Price list", "file": upload(b"%PDF-1.7 prices", "prices.pdf"), "link_days": 7},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Resource.objects.filter(title="Price list", link_days=7).exists()
    Client().get(download_path(post(guide_form, ANN).content.decode()))
    page = bob_client.get("/app/acme/resources/").content.decode()
    assert "Price list" in page and "The coffee guide" in page
    assert '<td class="num">1</td>' in page


def test_it_refuses_a_wrong_type_on_the_staff_page_naming_the_field(bob_client):
    response = bob_client.post(
        "/app/acme/resources/new/",
        {"title": "Tool", "file": upload(EXE_BYTES, "tool.pdf"), "link_days": 14},
    )
    assert response.status_code == 400
    assert "not accepted" in response.content.decode()
    assert not Resource.objects.exists()


def test_it_binds_a_resource_form_to_a_resource_of_its_own_workspace_only(
    bob_client, personas, staff, guide, guide_form
):
    other = make_resource(personas.evil, staff, title="Evil guide")
    response = bob_client.post(f"/app/acme/forms/{guide_form.pk}/resource/", {"resource": other.pk})
    assert response.status_code == 400
    assert resources.resource_of(guide_form) == guide


@pytest.mark.parametrize(
    ("who", "path", "method", "status"),
    [
        ("carol", "/app/acme/resources/", "get", 200),
        ("carol", "/app/acme/resources/new/", "get", 403),
        ("carol", "/app/acme/resources/{rid}/", "post", 403),
        ("bob", "/app/acme/resources/{rid}/", "get", 200),
        ("mallory", "/app/acme/resources/", "get", 404),
        ("mallory", "/app/evil/resources/{rid}/", "get", 404),
        ("carol", "/app/acme/forms/{fid}/resource/", "get", 403),
    ],
)
def test_it_guards_the_resource_pages_by_role(
    personas, guide, guide_form, who, path, method, status
):
    from mailmarketer.testing import client_for

    client = client_for(getattr(personas, who))
    path = path.format(rid=guide.pk, fid=guide_form.pk)
    response = getattr(client, method)(path, {"title": "x", "link_days": 1})
    assert response.status_code == status
    guide.refresh_from_db()
    assert guide.title == "The coffee guide"


BUILT = {
    "name": "Guide",
    "slug": "built",
    "kind": "resource",
    "title": "Get the guide",
    "language": "en",
    "list_mode": "fixed",
    "notice_text": "Send me news.",
    "builtin_name": "optional",
    **{
        f"builtin_{key}": "off"
        for key in ("first_name", "last_name", "company", "job_title", "phone", "country")
    },
}


def test_it_builds_a_resource_form_without_lists_and_gives_it_a_resource(
    bob_client, guide, personas
):
    response = bob_client.post("/app/acme/forms/new/", BUILT)
    assert response.status_code == 302, response.content.decode()[:3000]
    detail = bob_client.get(response["Location"]).content.decode()
    assert "no resource yet" in detail
    assert Client().get("/f/acme/built").status_code == 404  # nothing to give yet
    form_id = response["Location"].rstrip("/").rsplit("/", 1)[1]
    chosen = bob_client.post(f"/app/acme/forms/{form_id}/resource/", {"resource": guide.pk})
    assert chosen.status_code == 302
    page = Client().get("/f/acme/built").content.decode()
    assert 'name="consent"' not in page  # no lists: nothing to consent to
    newsletter = bob_client.post("/app/acme/forms/new/", {**BUILT, "kind": "newsletter"})
    assert newsletter.status_code == 400
    assert "choose at least one list" in newsletter.content.decode()


def test_it_exports_and_erases_a_persons_links_and_downloads(guide_form, guide, staff):
    from django.db.models import RestrictedError

    from mailmarketer.audience import personal_data
    from mailmarketer.signup.actions import do_delete_form

    Client().get(download_path(post(guide_form, ANN).content.decode()))
    ann = Subscriber.objects.get(email="ann@example.com")
    document = personal_data.export_document(ann)
    assert document["resource_downloads"][0]["resource__title"] == "The coffee guide"
    assert document["resource_links"][0]["mailed"] is True
    audience.do_erase_subscriber(ann, actor=staff)
    assert not ResourceDownload.objects.exists() and not ResourceGrant.objects.exists()
    assert Resource.objects.filter(pk=guide.pk).exists()
    with pytest.raises(RestrictedError):  # a form gives it
        Resource.objects.filter(pk=guide.pk).delete()
    do_delete_form(guide_form, actor=staff)
    assert not ResourceForm.objects.exists()
    assert Resource.objects.filter(pk=guide.pk).exists()
