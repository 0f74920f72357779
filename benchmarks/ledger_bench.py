"""The database's share of sending, in one process (send13c): the engine's real loop
(reclaim_one, send_one, plan_one) against PostgreSQL or SQLite with a sender that accepts every
message at once, so that what is left is the database's work and the worker's calls into it.

    MM_DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> \
        .venv/bin/python benchmarks/ledger_bench.py setup 20000    # migrate + seed, once
    MM_DATABASE_URL=... .venv/bin/python benchmarks/ledger_bench.py run 3 --fake-build
    MM_DATABASE_URL=... .venv/bin/python benchmarks/ledger_bench.py run 1 --fake-build \
        --every 100000                                  # the figures per slice of 100,000

Each run deletes the ledger, replans the campaign and sends it all, then prints per message: the
wall time, this process's CPU, the PostgreSQL backend's CPU (/proc/<pid>/schedstat, ns: the
same machine, root), and per engine function its wall time, the backend CPU spent inside it
and its statements. --every N also prints them for each slice of N messages sent, so a cost
that grows with the campaign shows where it grows (send13f). --fake-build replaces the message
build by a constant (send13d's side) so the database's part stands out. Not a timed test;
compare A/B back to back (a second worktree with PYTHONPATH pointing at it runs the other code
on its own database).
"""

import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailmarketer.settings")
os.environ.setdefault("MM_SECRET_KEY", "send-bench-secret-key-" + "b" * 30)
os.environ.setdefault("MM_ENCRYPTION_KEY", "YmVuY2gta2V5LWJlbmNoLWtleS1iZW5jaC1rZXktMTI=")
os.environ.setdefault("MM_BASE_URL", "https://mail.bench.example.com")
os.environ.setdefault("MM_LOG_LEVEL", "WARNING")

import django

django.setup()

from django.db import connection  # noqa: E402


def backend_ns(pid):
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def setup(n):
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from mailmarketer.delivery.testing import campaign

    campaign.seed(n, 2525, 5, status="draft")


STATS = defaultdict(lambda: [0, 0.0, 0, 0, 0.0])  # calls, wall, backend ns, statements, CPU
_current = []
_counts = {"stmts": 0}


def wrap(module, name):
    fn = getattr(module, name)

    def wrapped(*a, **k):
        pid = connection.connection.info.backend_pid if connection.connection else None
        b0 = backend_ns(pid) if pid else 0
        s0 = _counts["stmts"]
        c0 = time.process_time()
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            t1 = time.perf_counter()
            c1 = time.process_time()
            pid = connection.connection.info.backend_pid
            st = STATS[name]
            st[0] += 1
            st[1] += t1 - t0
            st[2] += backend_ns(pid) - b0
            st[3] += _counts["stmts"] - s0
            st[4] += c1 - c0

    setattr(module, name, wrapped)


def counter(execute, sql, params, many, context):
    _counts["stmts"] += 1
    return execute(sql, params, many, context)


def report(label, sent, wall, cpu, bns, stmts):
    print(
        f"{label}: sent {sent} wall {wall * 1e6 / sent:.0f} us/msg, process CPU"
        f" {cpu * 1e6 / sent:.0f}, backend CPU {bns / 1e3 / sent:.1f} us/msg,"
        f" statements {stmts}",
        flush=True,
    )
    for name, (calls, w, b, s, c) in sorted(STATS.items(), key=lambda kv: -kv[1][2]):
        print(
            f"   {name:18s} calls {calls:5d} wall {w * 1e6 / sent:7.1f} us/msg"
            f" CPU {c * 1e6 / sent:6.1f} backend {b / 1e3 / sent:6.1f} us/msg stmts {s}"
        )


def run(reps, fake_build, every=0):
    from mailmarketer.campaigns.models import Campaign
    from mailmarketer.delivery import engine, ledger, planner, ratelimit
    from mailmarketer.delivery.models import Delivery
    from mailmarketer.delivery.smtp import Outgoing, Result
    from mailmarketer.delivery.status import set_campaign_status

    campaign = Campaign.objects.order_by("-pk").first()
    if campaign.status == "draft":
        set_campaign_status(campaign, "running", actor=engine.ENGINE, event="campaign.started")

    for name in ("claim", "record", "release", "reclaim_expired"):
        wrap(ledger, name)
    for name in ("_mailable", "reclaim_one", "send_one", "_send_recording"):
        wrap(engine, name)
    wrap(ratelimit, "reserve_waiting")
    wrap(planner, "plan_one")
    if fake_build:

        def build(prepared, row, person):
            return (
                Outgoing(key=row.id, mail_from="b@x.example", rcpt=person["email"], data=b"x"),
                f"<{row.id}@x>",
            )

        engine._build = build

    accepted = [0]

    def accept(messages):
        accepted[0] += len(messages)
        return [Result(m.key, True, 250, "2.0.0 Ok: queued as 12345", None) for m in messages]

    for rep in range(reps):
        with connection.cursor() as c:
            c.execute("DELETE FROM delivery_delivery")
            c.execute("DELETE FROM delivery_ledgercountdelta")
            c.execute("DELETE FROM delivery_ledgercount")
        Campaign.objects.filter(pk=campaign.pk).update(
            status="running", planned_up_to=0, planning_done=False
        )
        with connection.cursor() as c:
            c.execute("VACUUM ANALYZE delivery_delivery")
        STATS.clear()
        engine.reset_state()
        st = engine.state()
        sender = st.senders.for_workspace(campaign.workspace_id)
        sender.send = accept
        pid = connection.connection.info.backend_pid
        b0 = backend_ns(pid)
        c0 = time.process_time()
        t0 = time.perf_counter()
        slice_at = (b0, c0, t0, 0)
        sent = 0
        with connection.execute_wrapper(counter):
            while True:
                engine.reclaim_one()
                if not (engine.send_one() or planner.plan_one()):
                    break
                # Counted as accepted (a count of the ledger's sent rows would read them all).
                sent = accepted[0]
                if every and sent - slice_at[3] >= every:
                    bns = backend_ns(connection.connection.info.backend_pid)
                    cpu, wall = time.process_time(), time.perf_counter()
                    report(
                        f"  slice to {sent}",
                        sent - slice_at[3],
                        wall - slice_at[2],
                        cpu - slice_at[1],
                        bns - slice_at[0],
                        _counts["stmts"],
                    )
                    STATS.clear()
                    _counts["stmts"] = 0
                    slice_at = (bns, cpu, wall, sent)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        bns = backend_ns(connection.connection.info.backend_pid) - b0
        sent = Delivery.objects.filter(status="sent").count()
        report(f"rep {rep}", sent, wall, cpu, bns, _counts["stmts"])
        _counts["stmts"] = 0


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(int(sys.argv[2]))
    else:
        every = int(sys.argv[sys.argv.index("--every") + 1]) if "--every" in sys.argv else 0
        reps = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 3
        run(reps, "--fake-build" in sys.argv, every)
