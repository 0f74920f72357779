from mailmarketer.audience import actions, queries
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.queries import AttributeRule, SubscriberFilter


def test_it_counts_list_members_by_status(personas, staff, news):
    for i, status in enumerate(["confirmed", "confirmed", "unsubscribed"]):
        sub = actions.do_create_subscriber(personas.acme, email=f"p{i}@example.com", actor=staff)
        actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_ADMIN)
        if status == "unsubscribed":
            actions.do_unsubscribe(sub, actor=staff, reason=Reason.BY_ADMIN)
    (row,) = queries.lists_with_counts(personas.acme)
    assert (row.confirmed, row.unconfirmed, row.unsubscribed) == (2, 0, 1)
    assert queries.lists_with_counts(personas.evil) == []


def test_it_pages_through_search_results_without_gaps(personas, staff):
    for i in range(7):
        actions.do_create_subscriber(
            personas.acme, email=f"s{i}@example.com", attributes={"age": 20 + i}, actor=staff
        )
    actions.do_create_subscriber(personas.evil, email="s9@example.com", actor=staff)
    seen, cursor = [], None
    while True:
        page, cursor = queries.search_subscribers(
            personas.acme, SubscriberFilter(q="s"), before_id=cursor, limit=3
        )
        seen += [s.email for s in page]
        if cursor is None:
            break
    assert seen == [f"s{i}@example.com" for i in range(6, -1, -1)]
    older, _ = queries.search_subscribers(
        personas.acme, SubscriberFilter(attributes=[AttributeRule("age", "gte", 25)])
    )
    assert {s.email for s in older} == {"s5@example.com", "s6@example.com"}


def test_it_finds_subscribers_only_inside_the_workspace(personas, staff):
    sub = actions.do_create_subscriber(personas.acme, email="only@example.com", actor=staff)
    assert queries.get_subscriber(personas.acme, str(sub.uuid)) == sub
    assert queries.get_subscriber(personas.evil, str(sub.uuid)) is None
    assert queries.get_subscriber(personas.evil, sub.pk) is None
    assert queries.get_subscriber(personas.acme, "not-a-uuid") is None


def test_it_masks_personal_data_without_the_permission(personas, staff):
    sub = actions.do_create_subscriber(
        personas.acme,
        email="john@example.com",
        name="John",
        attributes={"city": "Oslo"},
        actor=staff,
    )
    masked = queries.present_subscriber(sub, reveal=False)
    assert (masked["email"], masked["name"], masked["attributes"]) == (
        "j•••@example.com",
        "•••",
        {"city": "•••"},
    )
    assert queries.present_subscriber(sub, reveal=True)["email"] == "john@example.com"
