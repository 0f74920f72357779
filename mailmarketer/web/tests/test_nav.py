import re


def current_sections(html: str) -> list[str]:
    main_nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S).group(1)
    return re.findall(r'<a href="[^"]+" aria-current="page">([^<]+)</a>', main_nav)


def test_it_marks_the_section_of_a_sub_page_as_current(alice_client):
    page = alice_client.get("/app/acme/audience/subscribers/").content.decode()
    assert current_sections(page) == ["Audience"]


def test_it_marks_the_dashboard_only_on_its_own_page(alice_client):
    assert current_sections(alice_client.get("/app/acme/").content.decode()) == ["Dashboard"]
    assert "Dashboard" not in current_sections(
        alice_client.get("/app/acme/outbox/").content.decode()
    )


def test_every_audience_page_shows_its_sub_navigation_once(alice_client, ws, people):
    """Issue 12: "the audience sub-navigation appears twice". Every page of the section, each
    with one Audience sub-navigation marking where the reader is."""
    pages = [
        "/app/acme/audience/",
        "/app/acme/audience/subscribers/",
        f"/app/acme/audience/subscribers/{people[0].uuid}/",
        "/app/acme/audience/imports/",
        "/app/acme/audience/imports/new/",
        "/app/acme/audience/segments/",
        "/app/acme/audience/segments/new/",
        "/app/acme/audience/suppression/",
        "/app/acme/audience/export/",
    ]
    for path in pages:
        response = alice_client.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert html.count('<nav class="subnav" aria-label="Audience">') == 1, path
        assert html.count('class="subnav"') == 1, path  # and no other sub-navigation
