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
