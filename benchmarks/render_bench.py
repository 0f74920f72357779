"""Render micro-benchmark: a personalised ~5 KB campaign rendered per recipient, next to plain
Jinja2 rendering the same template in the same run.

    .venv/bin/python benchmarks/render_bench.py                   # 20,000 renders, 3 runs
    .venv/bin/python benchmarks/render_bench.py --renders 5000 --runs 1
    .venv/bin/python benchmarks/render_bench.py --message [--dkim] [--profile]

--message measures instead the delivery engine's whole per-message build on a temporary SQLite
database (see message_bench below and benchmarks/README.md).

What it measures (no database; Django settings configured in memory):
- compile: rendering.compile_content once (Markdown, the default layout, CSS inlining,
  sanitising, link extraction, the text alternative, four template compilations and the sample
  renders), in ms;
- ours: CompiledCampaign.render per recipient: subject, HTML and text, in our sandbox, under
  the time, loop and size caps (what the delivery engine calls);
- ours, HTML only: the HTML part alone, the same way;
- limit: the same HTML template source rendered by plain Jinja2 (`Environment(autoescape=True)`,
  no sandbox, no caps, Template.render) and by Jinja2's own ImmutableSandboxedEnvironment; and
  the floor, the values substituted into the pre-split static text with str.join (what no
  template engine can beat).

Each figure is the median of --runs runs over --renders renders, cycling through 1,000 distinct
recipients (names, attributes, a product list of 3 items). DESIGN.md's reference: Jinja2 renders
a 5 KB template at ~35,000/s on this machine class.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if "--message" not in sys.argv:
    # The render cases need no database: Django configured in memory. (--message sets up a
    # real one, in message_bench.)
    from django.conf import settings

    settings.configure(BASE_URL="https://mail.acme.example")

    from mailmarketer.campaigns import rendering

from jinja2 import Environment  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402
from markupsafe import escape  # noqa: E402

SUBJECT = "{{ subscriber.first_name | default('Friend', true) }}, your {{ campaign.name }}"
PARAGRAPH = (
    "Our spring collection is here, with new colours and fabrics for every season, and the "
    "team picked a few things we think you will like. As always, members save an extra ten "
    "percent this week on everything in the store, online and in our shops.\n\n"
)
BODY = (
    "# Hello {{ subscriber.first_name | default('there', true) }}\n\n"
    + PARAGRAPH * 3
    + "Your plan: **{{ subscriber.attributes.plan | default('free') }}**, member since "
    "{{ subscriber.attributes.since }}.\n\n"
    "{% if subscriber.attributes.plan == 'pro' %}\n\nAs a Pro member, shipping is on us.\n\n"
    "{% endif %}\n\n"
    "## Picked for you\n\n"
    "{% for product in subscriber.attributes.products %}\n\n"
    "- [{{ product }}](https://acme.example/p/{{ product | lower | urlencode }})\n\n"
    "{% endfor %}\n\n" + PARAGRAPH * 2 + "[Visit the store](https://acme.example/store) or "
    "[read the blog](https://acme.example/blog).\n\n"
    "Your account: [{{ subscriber.email }}]"
    "(https://acme.example/account/{{ subscriber.uuid }})\n"
)
PRODUCTS = ["Linen Shirt", "Wool Scarf", "Canvas Bag", "Rain Jacket", "Leather Belt"]


def recipients(count: int) -> list[dict]:
    workspace = {
        "name": "Acme Outfitters",
        "postal_address": "1 Market Street\nSpringfield 12345",
        "sender_name": "Acme",
    }
    campaign = {"name": "Spring news", "subject": SUBJECT, "lists": ["Newsletter"]}
    people = []
    for i in range(count):
        people.append(
            rendering.recipient_context(
                workspace=workspace,
                campaign=campaign,
                subscriber={
                    "uuid": f"00000000-0000-4000-8000-{i:012d}",
                    "email": f"person{i}@example.com",
                    "name": f"Person{i} Example",
                    "attributes": {
                        "plan": "pro" if i % 3 == 0 else "free",
                        "since": 2015 + i % 10,
                        "products": [PRODUCTS[(i + k) % 5] for k in range(3)],
                    },
                },
                urls={
                    "unsubscribe_url": f"https://mail.acme.example/f/u/token-{i:08d}",
                    "manage_url": f"https://mail.acme.example/f/u/token-{i:08d}",
                    "view_in_browser_url": "https://mail.acme.example/f/archive/spring",
                },
            )
        )
    return people


def rate(fn, contexts: list[dict], renders: int, runs: int) -> float:
    results = []
    n = len(contexts)
    for _ in range(runs):
        started = time.perf_counter()
        for i in range(renders):
            fn(contexts[i % n])
        results.append(renders / (time.perf_counter() - started))
    return statistics.median(results)


def plain_environment(cls, **options):
    env = cls(autoescape=True, **options)
    env.filters["mm_attr"] = lambda v: escape(v)
    env.filters["mm_url"] = lambda v: escape(v)
    return env


def cpu_us_per_item(fn, items: list, runs: int) -> float:
    """Median over runs of the thread's CPU time per item, in µs (a loaded machine inflates the
    wall clock far more than this)."""
    results = []
    for _ in range(runs):
        started = time.thread_time()
        for item in items:
            fn(item)
        results.append((time.thread_time() - started) * 1e6 / len(items))
    return statistics.median(results)


def message_bench(args) -> None:
    """--message: the whole per-message build path of the delivery engine, in-process, on a
    real (temporary SQLite) database: from a claimed ledger row and its person to the final
    bytes (engine._build: links and tokens, context, render, tracked links, MIME, VERP,
    Message-ID, DKIM when --dkim; with engine._signed per batch of DELIVERY_BATCH, which
    makes the batch's RSA signatures, as _deliver does), and each of its steps alone."""
    import cProfile
    import pstats
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="mm-message-bench-"))
    os.environ.update(
        {
            "MM_DATABASE_URL": f"sqlite:///{work / 'bench.sqlite3'}",
            "MM_DATA_DIR": str(work),
            "MM_SECRET_KEY": "message-bench-secret-key-" + "m" * 30,
            "MM_ENCRYPTION_KEY": "YmVuY2gta2V5LWJlbmNoLWtleS1iZW5jaC1rZXktMTI=",
            "MM_BASE_URL": "https://mail.bench.example.com",
            "MM_LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "mailmarketer.settings",
        }
    )
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from django.conf import settings as dj_settings

        from mailmarketer.audience.links import message_urls, unsubscribe_url
        from mailmarketer.audience.models import Subscriber
        from mailmarketer.campaigns import rendering
        from mailmarketer.campaigns.models import Campaign, CampaignLink
        from mailmarketer.delivery import engine, mime
        from mailmarketer.delivery.ledger import Claimed
        from mailmarketer.delivery.testing.campaign import seed

        seed(args.people, None, args.body_kb, status="running", dkim=args.dkim)
        campaign = Campaign.objects.select_related("workspace").get()
        # The links a launch stores when it compiles the campaign (the seed writes rows
        # directly): the body's shop link, tracked in every paragraph.
        CampaignLink.objects.create(
            campaign=campaign, url="https://shop.example.com/autumn?utm=mail", position=0
        )
        prepared = engine.prepare(campaign)
        people, _ = engine._mailable(
            prepared, list(Subscriber.objects.order_by("pk").values_list("pk", flat=True))
        )
        rows = [
            (Claimed(i + 1, sid, 1, None), person) for i, (sid, person) in enumerate(people.items())
        ]

        def built(items) -> list[bytes]:
            # A batch's messages as _deliver makes them: each built, then the DKIM signatures
            # of them all (engine._signed).
            return [m.data for m in engine._signed([engine._build(prepared, *i)[0] for i in items])]

        size = dj_settings.DELIVERY_BATCH
        batches = [rows[i : i + size] for i in range(0, len(rows), size)]

        def build_us(runs: int) -> float:
            return cpu_us_per_item(built, batches, runs) * len(batches) / len(rows)

        sample = built(rows[:1])[0]
        if args.save:
            Path(args.save).write_bytes(sample)
        c = prepared.campaign
        wid, cid = c.workspace_id, c.pk

        def tokens(item):
            message_urls(wid, item[1]["id"], cid)

        def context_of(item):
            person = item[1]
            return rendering.recipient_context(
                workspace=prepared.workspace_ctx,
                campaign=prepared.campaign_ctx,
                subscriber=person,
                urls={"unsubscribe_url": "u", "manage_url": "m", "view_in_browser_url": "v"},
                data=c.data,
            )

        contexts = [context_of(item) for item in rows]
        renders = [prepared.compiled.render(ctx) for ctx in contexts]
        pairs = list(zip(rows, renders, strict=True))

        def tracked(pair):
            if prepared.tracker is not None:
                prepared.tracker.apply(pair[0][0].id, pair[1].html, pair[1].text)

        date = engine.now()
        unsub = unsubscribe_url(wid, rows[0][1]["id"], cid)

        def assemble(pair):
            (row, person), rendered = pair
            mime.build_message(
                prepared.parts,
                to_email=person["email"],
                to_name=person["name"] or "",
                subject=rendered.subject,
                html=rendered.html,
                text=rendered.text,
                message_id=f"<{row.id}.x@bench.example.com>",
                date=date,
                list_unsubscribe_url=unsub,
            )

        def ids(item):
            row = item[0]
            mime.make_message_id(row.id, c.uuid, dj_settings.MESSAGE_ID_DOMAIN)
            mime.verp_address("bounces", prepared.bounce_domain, engine.verp_token(row.id))

        values_of = [
            prepared.compiled.render_values(ctx) if prepared.prebuilt is not None else None
            for ctx in contexts
        ]

        def filled(pair):
            (row, _), values = pair
            prebuilt.body(row.id, values)

        def headers(pair):
            (row, person), values = pair
            mime.message_headers(
                prepared.parts,
                to_email=person["email"],
                to_name=person["name"] or "",
                subject=values.subject,
                message_id=f"<{row.id}.x@bench.example.com>",
                date=date,
                list_unsubscribe_url=unsub,
            )

        steps = [
            ("tokens: unsubscribe, manage, view URLs", tokens, rows),
            ("context (recipient_context)", context_of, rows),
            ("render (subject, HTML, text)", lambda ctx: prepared.compiled.render(ctx), contexts),
            ("tracked links + open pixel", tracked, pairs),
            ("MIME assembly (build_message)", assemble, pairs),
            ("Message-ID + VERP", ids, rows),
        ]
        prebuilt = prepared.prebuilt
        if prebuilt is not None:
            steps += [
                ("pre-built: values (render_values)", prepared.compiled.render_values, contexts),
                ("pre-built: the body filled in", filled, list(zip(rows, values_of, strict=True))),
                ("pre-built: the headers", headers, list(zip(rows, values_of, strict=True))),
            ]
        if prepared.parts.dkim is not None:
            signer = prepared.parts.dkim
            unsigned = mime.MessageParts(
                from_email=prepared.parts.from_email, dkim=None, list_id=prepared.parts.list_id
            )
            plain = mime.build_message(
                unsigned,
                to_email="a@example.com",
                to_name="A",
                subject="S",
                html=renders[0].html,
                text=renders[0].text,
                message_id="<1.x@bench.example.com>",
                date=date,
                list_unsubscribe_url=unsub,
            )
            steps.append(("DKIM: DkimSigner.sign (whole)", signer.sign, [plain] * len(rows)))
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding

            key = signer._key
            steps.append(
                (
                    "  limit: RSA-2048 sign alone (OpenSSL)",
                    lambda m: key.sign(m, padding.PKCS1v15(), hashes.SHA256()),
                    [b"x" * 600] * len(rows),
                )
            )
        # The general path (every step per message) next to the pre-built body, and whether the
        # two make the same bytes for every recipient (the DKIM signature aside: its t= and b=
        # move with the clock).
        prebuilt = prepared.prebuilt
        real_now, fixed = engine.now, engine.now()
        engine.now = lambda: fixed
        fast = built(rows)
        used = sum(
            1
            for (row, person) in rows
            if prebuilt is not None
            and (v := prepared.compiled.render_values(context_of((row, person)))) is not None
            and prebuilt.body(row.id, v) is not None
        )
        prepared.prebuilt = None
        general = built(rows)
        engine.now = real_now
        general_total = build_us(args.runs)
        prepared.prebuilt = prebuilt
        engine.now = real_now

        def unsigned(message: bytes) -> bytes:
            if not message.startswith(b"DKIM-Signature:"):
                return message
            signed = re.match(rb"(.*?) b=.*?\r\n(?![ \t])(.*)", message, re.S)
            return re.sub(rb" t=[0-9]+;", b"", signed[1]) + signed[2]

        same = sum(1 for a, b in zip(fast, general, strict=True) if unsigned(a) == unsigned(b))
        if os.environ.get("MM_BENCH_DIFF") and same < len(rows):
            import difflib

            a, b = next((a, b) for a, b in zip(fast, general, strict=True) if a != b)
            for line in difflib.unified_diff(
                b.decode().splitlines(), a.decode().splitlines(), lineterm="", n=1
            ):
                print(line[:300])
        total = build_us(args.runs)
        load = os.getloadavg()[0]
        print(
            f"\nmessage build benchmark: {len(rows):,} recipients x {args.runs} runs (median), "
            f"message {len(sample):,} bytes, DKIM {'on' if args.dkim else 'off'}, "
            f"tracking {'on' if prepared.tracker else 'off'}, load average {load:.2f}\n"
        )
        print(f"{'':44} {'CPU us/msg':>10}")
        print(f"{'engine._build + _signed (row -> bytes)':44} {total:10.1f}")
        print(
            f"{'  the same, general path (no pre-built body)':44} {general_total:10.1f}   "
            f"pre-built for {used:,} of {len(rows):,}, same bytes {same:,} of {len(rows):,}"
        )
        for name, fn, items in steps:
            print(f"{'  ' + name:44} {cpu_us_per_item(fn, items, args.runs):10.1f}")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for batch in batches:
                built(batch)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile_lines)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renders", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--message",
        action="store_true",
        help="measure the engine's whole per-message build (needs no server; a temp SQLite)",
    )
    parser.add_argument("--people", type=int, default=2000, help="--message: recipients")
    parser.add_argument("--body-kb", type=int, default=5, help="--message: body size")
    parser.add_argument("--dkim", action="store_true", help="--message: sign (RSA-2048)")
    parser.add_argument("--profile", action="store_true", help="--message: cProfile one pass")
    parser.add_argument("--profile-lines", type=int, default=25, help="--profile: lines")
    parser.add_argument("--save", metavar="FILE", help="--message: write one message there")
    args = parser.parse_args()
    if args.message:
        message_bench(args)
        return

    spec = rendering.ContentSpec(
        kind="marketing", subject=SUBJECT, body_format="markdown", body=BODY
    )
    workspace = {"name": "Acme", "postal_address": "1 Market Street", "sender_name": "Acme"}
    campaign = {"name": "Spring news", "subject": SUBJECT, "lists": ["Newsletter"]}
    compile_ms = []
    for _ in range(max(args.runs, 3)):
        started = time.perf_counter()
        compiled = rendering.compile_content(spec, workspace=workspace, campaign=campaign)
        compile_ms.append((time.perf_counter() - started) * 1000)

    contexts = recipients(1000)
    sample = compiled.render(contexts[0])
    html_bytes = len(sample.html.encode())
    text_bytes = len(sample.text.encode())

    def ours(ctx):
        compiled.render(ctx)

    html_template = compiled.html_template

    def ours_html(ctx):
        with rendering._Rendering():
            rendering._run(html_template, ctx, "body", rendering.MAX_OUTPUT, {"subject": "S"})

    plain = plain_environment(Environment).from_string(compiled.html_source)
    sandboxed = plain_environment(ImmutableSandboxedEnvironment).from_string(compiled.html_source)
    # The floor: the rendered output cut at the recipient's values, joined again per recipient.
    pieces = [sample.html[:1000], sample.html[1000:3000], sample.html[3000:]]

    def floor(ctx):
        person = ctx["subscriber"]
        "".join(
            (
                pieces[0],
                str(escape(person["first_name"])),
                pieces[1],
                str(escape(person["email"])),
                person["uuid"],
                str(escape(ctx["unsubscribe_url"])),
                pieces[2],
            )
        )

    rows = [
        ("ours: subject + HTML + text, capped", rate(ours, contexts, args.renders, args.runs)),
        ("ours: HTML only, capped", rate(ours_html, contexts, args.renders, args.runs)),
        (
            "limit: plain Jinja2, HTML",
            rate(lambda c: plain.render(c), contexts, args.renders, args.runs),
        ),
        (
            "limit: Jinja2 ImmutableSandbox, HTML",
            rate(lambda c: sandboxed.render(c), contexts, args.renders, args.runs),
        ),
        ("floor: str.join of pieces", rate(floor, contexts, args.renders, args.runs)),
    ]
    plain_rate = rows[2][1]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nrender benchmark: HTML {html_bytes:,} bytes, text {text_bytes:,} bytes, "
        f"{args.renders:,} renders x {args.runs} runs (median), load average {load:.2f}"
    )
    print(f"compile once per campaign: {statistics.median(compile_ms):.1f} ms\n")
    print(f"{'':40} {'renders/s':>10} {'us/render':>10} {'vs plain Jinja2':>16}")
    for name, value in rows:
        print(f"{name:40} {value:10,.0f} {1e6 / value:10.1f} {value / plain_rate:15.2f}x")


if __name__ == "__main__":
    main()
