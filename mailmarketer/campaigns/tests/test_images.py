"""Campaign images: only PNG, JPEG, GIF and WebP by their content, at most 5 MB, SVG refused,
stored once per content under the data directory, served at a stable public URL with the sniffed
type and a long cache, audited, and kept apart per workspace."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from mailmarketer.campaigns.images import IMAGE_MAX_BYTES, image_path
from mailmarketer.campaigns.models_images import CampaignImage
from mailmarketer.testing import events, url

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 64
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 64
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>'
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture(autouse=True)
def images_dir(settings, tmp_path):
    settings.IMAGES_DIR = tmp_path / "images"
    return settings.IMAGES_DIR


def upload(client, data: bytes, name="photo.png", ws="acme", **extra):
    file = SimpleUploadedFile(name, data, content_type="image/png")
    return client.post(url("campaign-image-upload", ws=ws), {"image": file}, **extra)


def test_it_stores_an_image_and_answers_with_its_url_and_tags(bob_client, ws, images_dir):
    response = upload(bob_client, PNG, **JSON)
    assert response.status_code == 200
    answer = response.json()
    digest = hashlib.sha256(PNG).hexdigest()
    assert answer["url"].endswith(f"/i/acme/{digest}.png")
    assert answer["markdown"] == f"![photo]({answer['url']})"
    assert answer["html"] == f'<img src="{answer["url"]}" alt="photo">'
    assert (images_dir / str(ws.pk) / f"{digest}.png").read_bytes() == PNG
    assert oct((images_dir / str(ws.pk) / f"{digest}.png").stat().st_mode & 0o777) == "0o600"
    [row] = events("campaign.image_uploaded")
    assert row.new["sha256"] == digest
    assert row.actor_user.email == "bob@acme.test"


@pytest.mark.parametrize(
    ("data", "ext", "content_type"),
    [
        (PNG, "png", "image/png"),
        (JPEG, "jpg", "image/jpeg"),
        (GIF, "gif", "image/gif"),
        (WEBP, "webp", "image/webp"),
    ],
)
def test_it_serves_the_image_with_the_sniffed_type_and_a_long_cache(
    bob_client, client, ws, data, ext, content_type
):
    # Named .png whatever it is: the content decides.
    answer = upload(bob_client, data, name="picture.png", **JSON).json()
    path = urlsplit(answer["url"]).path
    assert path.endswith(f".{ext}")
    response = client.get(path)  # no login: mail programs fetch it
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert b"".join(response.streaming_content) == data
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response["Content-Security-Policy"]
    head = client.head(path)
    assert head.status_code == 200 and head["Content-Type"] == content_type


def test_the_same_picture_twice_is_one_file_and_one_url(bob_client, ws):
    first = upload(bob_client, PNG, name="a.png", **JSON).json()
    second = upload(bob_client, PNG, name="b.png", **JSON).json()
    assert first["url"] == second["url"]
    assert CampaignImage.objects.count() == 1
    assert len(events("campaign.image_uploaded")) == 2  # every upload is audited


def test_it_refuses_svg(bob_client, ws, images_dir):
    response = upload(bob_client, SVG, name="logo.svg", **JSON)
    assert response.status_code == 400
    assert "SVG images are not accepted" in response.json()["error"]
    assert not CampaignImage.objects.exists()
    assert not images_dir.exists() or not any(images_dir.rglob("*.*"))


@pytest.mark.parametrize(
    ("data", "name"),
    [(b"%PDF-1.7\n" + b"x" * 64, "cat.png"), (b"<html><script>", "x.jpg"), (b"", "empty.png")],
)
def test_it_refuses_what_is_not_an_image_whatever_its_name(bob_client, ws, data, name):
    response = upload(bob_client, data, name=name, **JSON)
    assert response.status_code == 400
    assert response.json()["error"]
    assert not CampaignImage.objects.exists()
    assert not events("campaign.image_uploaded")


def test_it_refuses_an_image_over_the_size_limit(bob_client, ws):
    big = PNG + b"\x00" * (IMAGE_MAX_BYTES - len(PNG) + 1)
    response = upload(bob_client, big, **JSON)
    assert response.status_code == 400
    assert "at most 5,242,880" in response.json()["error"]
    assert not CampaignImage.objects.exists()


def test_without_the_script_it_comes_back_with_the_url_in_a_message(bob_client, draft):
    edit = url("campaign-edit", campaign_id=draft.pk)
    file = SimpleUploadedFile("photo.png", PNG)
    response = bob_client.post(url("campaign-image-upload"), {"image": file, "next": edit})
    assert response.status_code == 302
    assert response["Location"] == edit
    page = bob_client.get(edit).content.decode()
    assert "Uploaded photo.png: http" in page
    assert hashlib.sha256(PNG).hexdigest() in page  # listed in the images section


def test_it_does_not_redirect_off_site(bob_client, ws):
    file = SimpleUploadedFile("photo.png", PNG)
    response = bob_client.post(
        url("campaign-image-upload"), {"image": file, "next": "https://evil.test/"}
    )
    assert response["Location"] == url("campaigns-home")


def test_it_needs_csrf_and_the_permission(personas, carol_client, ws):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.bob)
    assert upload(client, PNG).status_code == 403
    assert upload(carol_client, PNG).status_code == 403
    assert not CampaignImage.objects.exists()


def test_it_keeps_workspaces_apart(bob_client, mallory_client, client, ws, personas):
    answer = upload(bob_client, PNG, **JSON).json()
    digest = hashlib.sha256(PNG).hexdigest()
    assert client.get(f"/i/acme/{digest}.png").status_code == 200
    # The same name under another workspace is not acme's picture.
    assert client.get(f"/i/evil/{digest}.png").status_code == 404
    # Mallory cannot upload into acme, and her own upload of the same picture is hers.
    assert upload(mallory_client, PNG, ws="acme").status_code == 404
    hers = upload(mallory_client, PNG, ws="evil", **JSON).json()
    assert hers["url"] != answer["url"]
    assert CampaignImage.objects.filter(workspace=personas.evil).count() == 1
    # Mallory's editor lists her images only.
    html = mallory_client.get(url("campaign-new", ws="evil")).content.decode()
    assert "/i/evil/" in html and "/i/acme/" not in html


@pytest.mark.parametrize(
    "name", ["x.png", f"{'a' * 64}.svg", f"{'A' * 64}.png", f"{'a' * 64}.png/..", "..%2f.png"]
)
def test_it_answers_404_for_names_that_are_not_images(client, ws, name):
    assert client.get(f"/i/acme/{name}").status_code == 404


def test_a_missing_file_is_a_404_not_a_500(bob_client, client, ws):
    upload(bob_client, PNG, **JSON)
    digest = hashlib.sha256(PNG).hexdigest()
    image_path(ws.pk, digest, "png").unlink()
    assert client.get(f"/i/acme/{digest}.png").status_code == 404


def test_the_upload_answer_is_json_for_the_editor(bob_client, ws):
    response = upload(bob_client, PNG, **JSON)
    assert json.loads(response.content)["filename"] == "photo.png"
