from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.delivery import planner
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import add_people, launch


def planned(campaign):
    return set(Delivery.objects.filter(campaign=campaign).values_list("subscriber_id", flat=True))


def plan_all(campaign, chunk=3):
    steps = 0
    while not campaign.planning_done:
        planner.plan_chunk(campaign, limit=chunk)
        steps += 1
    return steps


def test_it_plans_each_person_once_however_many_lists(personas, staff, news, double):
    people = add_people(personas.acme, [news], 5, staff)
    audience.do_subscribe(people[0], [double], actor=staff, reason=Reason.BY_ADMIN, confirmed=True)
    campaign = launch(personas.acme, [news, double])
    assert plan_all(campaign) == 2  # 3 + 2 ids: the second chunk is short, so planning is done
    assert planned(campaign) == {p.pk for p in people}
    assert Delivery.objects.filter(campaign=campaign).count() == 5


def test_it_mails_only_confirmed_members_of_double_opt_in_lists(personas, staff, double):
    pending = add_people(personas.acme, [double], 2, staff, prefix="pending")
    confirmed = add_people(personas.acme, [double], 2, staff, prefix="ok", confirmed=True)
    campaign = launch(personas.acme, [double])
    plan_all(campaign)
    assert planned(campaign) == {p.pk for p in confirmed}
    assert not planned(campaign) & {p.pk for p in pending}


def test_it_leaves_out_unsubscribed_blocklisted_and_excluded_people(personas, staff, news, double):
    people = add_people(personas.acme, [news], 4, staff)
    audience.do_unsubscribe(people[0], actor=staff, reason=Reason.BY_SUBSCRIBER)
    audience.do_blocklist_subscriber(people[1], actor=staff)
    audience.do_subscribe(people[2], [double], actor=staff, reason=Reason.BY_ADMIN, confirmed=True)
    campaign = launch(personas.acme, [news], exclude=[double])
    plan_all(campaign)
    assert planned(campaign) == {people[3].pk}


def test_it_leaves_out_people_who_join_after_launch(personas, staff, news):
    before = add_people(personas.acme, [news], 2, staff)
    campaign = launch(personas.acme, [news])
    add_people(personas.acme, [news], 2, staff, prefix="late")
    plan_all(campaign)
    assert planned(campaign) == {p.pk for p in before}


def test_it_never_plans_people_of_another_workspace(personas, staff, news):
    add_people(personas.acme, [news], 2, staff)
    evil_list = audience.do_create_list(personas.evil, name="N", slug="news", actor=staff)
    add_people(personas.evil, [evil_list], 2, staff, prefix="evil")
    campaign = launch(personas.acme, [news])
    plan_all(campaign)
    assert Delivery.objects.filter(campaign=campaign).exclude(workspace=personas.acme).count() == 0
    assert all(
        sub.workspace_id == personas.acme.pk
        for sub in (d.subscriber for d in Delivery.objects.filter(campaign=campaign))
    )


def test_it_is_safe_to_plan_the_same_chunk_twice(personas, staff, news):
    people = add_people(personas.acme, [news], 3, staff)
    campaign = launch(personas.acme, [news])
    stale = type(campaign).objects.get(pk=campaign.pk)  # a second worker's view
    planner.plan_chunk(campaign, limit=10)
    assert planner.plan_chunk(stale, limit=10) == 0  # the cursor is read again: nothing left
    assert stale.planning_done
    assert Delivery.objects.filter(campaign=campaign).count() == len(people)


def test_it_plans_the_next_chunk_when_another_worker_planned_this_one(personas, staff, news):
    # Two workers whose rows ran out together: the second reads the cursor under the
    # campaign's lock and plans the chunk after the first's, instead of the same one again.
    people = add_people(personas.acme, [news], 6, staff)
    campaign = launch(personas.acme, [news])
    stale = type(campaign).objects.get(pk=campaign.pk)
    assert planner.plan_chunk(campaign, limit=3) == 3
    assert planner.plan_chunk(stale, limit=3) == 3
    assert planned(campaign) == {p.pk for p in people}


def test_it_reads_only_the_chunks_own_subscriptions(personas, staff, news, double):
    # Each subquery is narrowed to the chunk's id range: without it PostgreSQL read the
    # subscriptions from the first subscriber up to the chunk, or all of them, for every
    # chunk, and planning a campaign cost more the further it got (send13f).
    people = add_people(personas.acme, [news], 8, staff)
    audience.do_subscribe(people[0], [double], actor=staff, reason=Reason.BY_ADMIN, confirmed=True)
    campaign = launch(personas.acme, [news], exclude=[double])
    after, upper = people[5].pk, campaign.audience_max_id
    _, params = planner.audience(campaign, (after, upper)).values("id").query.sql_with_params()
    assert list(planner.audience(campaign, (after, upper)).values_list("id", flat=True)) == [
        p.pk for p in people[6:]
    ]
    # Three ranges: the people's, the list members', the excluded lists' members'.
    assert params.count(after) == 3 and params.count(upper) == 3


def test_it_plans_through_the_worker_duty(personas, staff, news):
    add_people(personas.acme, [news], 2, staff)
    campaign = launch(personas.acme, [news])
    assert planner.plan_one() is True
    campaign.refresh_from_db()
    assert campaign.planning_done
    assert planner.plan_one() is False


def test_it_narrows_to_the_segment_and_leaves_out_excluded_segments(personas, staff, news):
    from mailmarketer.audience.models import Segment

    people = add_people(personas.acme, [news], 6, staff)
    for i, person in enumerate(people):
        audience.do_update_subscriber(person, attributes={"score": i * 10}, actor=staff)

    def rule(op, value):
        return {
            "version": 1,
            "root": {
                "type": "group",
                "match": "all",
                "children": [
                    {
                        "type": "attribute",
                        "name": "score",
                        "value_type": "number",
                        "op": op,
                        "value": value,
                    }
                ],
            },
        }

    keen = Segment.objects.create(workspace=personas.acme, name="Keen", rules=rule("gte", 20))
    top = Segment.objects.create(workspace=personas.acme, name="Top", rules=rule("gte", 50))
    campaign = launch(personas.acme, [news], segment=keen)
    campaign.exclude_segments.set([top])
    plan_all(campaign)
    assert planned(campaign) == {p.pk for p in people[2:5]}
