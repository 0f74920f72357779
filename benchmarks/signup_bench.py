"""Form submission benchmark: sign-ups per second through the JSON endpoint
(`POST /f/<ws>/<form>.json`), each with a valid ALTCHA solution, next to the limit of the same
server measured in the same run.

    .venv/bin/python benchmarks/signup_bench.py [--db sqlite,postgres] [--seconds 10]
                                                [--connections 8] [--workers 2] [--threads 4]

The server is `mailmarketer web` (gunicorn, its default 2 processes x 4 threads) on a fresh
database, started as an operator starts it, behind-a-proxy mode on so that each post can name
its own client IP in X-Forwarded-For (the per-IP limit of 30 an hour would otherwise refuse all
but the first 30). The form subscribes to one single opt-in list, with proof of work required.

The benchmark makes the challenges ahead (through the server's own code, at the lowest
difficulty, as many as the run can use) and solves them before the clock starts: the client's
work is not timed, the server's verification and the single-use insert are. The load is `wrk`
(Debian's package) with a Lua script that sends each prepared body once.

The limit, in the same run and against the same server: `GET /bench/constant`, a constant
answer from a view that touches no database, routed only when MM_BENCH_CONSTANT_VIEW=true.

A newsletter sign-up is answered once it is in the spool (signup/spooled.py) and stored by the
worker: a `mailmarketer worker` runs beside the server for the whole case, as `mailmarketer
run` runs one. After the measured run the server is stopped and the benchmark waits for the
worker to drain the spool (printed: the drain time, from the end of the run to the last
sign-up stored), then checks that every accepted submission is stored with its subscriber and
a consent record, and that no solution was accepted twice. Needs wrk and, for PostgreSQL, a
server on 127.0.0.1:5432 where the benchmark may create and drop a database.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENCRYPTION_KEY = "YmVuY2gta2V5LWJlbmNoLWtleS1iZW5jaC1rZXktMTI="
PG = "postgres://postgres@127.0.0.1:5432"
WARM_BODIES = 400  # sent in a 2 s warm-up of the sign-up path before the measured run

# Each wrk thread sends the bodies whose line number (1-based) modulo the thread count is its
# own, once each, then stops; it counts answers by status.
WRK_POST = r"""
local counter, threads = 0, {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  bodies, sent, ok, other = {}, 0, 0, 0
  local n = 0
  for line in io.lines(args[1]) do
    if n % tonumber(args[2]) == id then
      local tab = line:find("\t")
      table.insert(bodies, {line:sub(1, tab - 1), line:sub(tab + 1)})
    end
    n = n + 1
  end
  path = args[3]
end
function request()
  sent = sent + 1
  local item = bodies[sent]
  if item == nil then
    wrk.thread:stop()
    item = bodies[1]
  end
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-Forwarded-For"] = item[1],
  }, item[2])
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
  if ok + other >= #bodies then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local ok_all, other_all = 0, 0
  for _, t in ipairs(threads) do
    ok_all = ok_all + t:get("ok")
    other_all = other_all + t:get("other")
  end
  io.write(string.format(
    'RESULT {"ok": %d, "other": %d, "requests": %d, "seconds": %f, ' ..
    '"p50_ms": %f, "p99_ms": %f, "socket_errors": %d}\n',
    ok_all, other_all, summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""

WRK_GET = r"""
function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"ok": %d, "other": %d, "requests": %d, "seconds": %f, ' ..
    '"p50_ms": %f, "p99_ms": %f, "socket_errors": %d}\n',
    summary.requests - summary.errors.status, summary.errors.status, summary.requests,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_pg() -> str:
    import psycopg

    name = f"mm_signup_bench_{secrets.token_hex(3)}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- run inside the server's environment (python signup_bench.py --inside ...) ---------------


def inside_seed(count: int, bodies_path: str) -> None:
    """Makes the workspace, list and form, and `count` bodies with solved challenges."""
    import django

    django.setup()
    from mailmarketer.accounts.actors import Actor
    from mailmarketer.accounts.models import Workspace
    from mailmarketer.audience.actions import do_create_list
    from mailmarketer.signup.actions import do_create_form
    from mailmarketer.signup.altcha import do_set_form_protection
    from mailmarketer.signup.testing import altcha_payload
    from mailmarketer.signup.tokens import EMBED, make_form_token

    actor = Actor.system("signup bench")
    workspace = Workspace.objects.create(name="Bench", slug="bench", sender_email="b@bench.test")
    news = do_create_list(workspace, name="News", slug="news", actor=actor)
    form = do_create_form(
        workspace,
        name="News",
        slug="news",
        title="News",
        fields=[{"key": "first_name", "type": "builtin"}],
        lists=[news],
        notice_text="Send me the news.",
        actor=actor,
    )
    # Required, at the lowest difficulty: the server's check costs the same at any difficulty
    # (one hash), and the benchmark's preparation stays short.
    do_set_form_protection(workspace, required=True, maxnumber=1_000, actor=actor)
    token = make_form_token(form.pk, EMBED)
    with open(bodies_path, "w") as out:
        for i in range(count):
            body = {
                "form_token": token,
                "altcha": altcha_payload(form, maxnumber=1_000),
                "email": f"person{i}@bench.example.com",
                "first_name": f"Person {i}",
                "consent": True,
            }
            # One client IP per post, from the benchmarking range (never contacted).
            ip = f"198.18.{i // 250 % 250}.{i % 250 + 1}"
            out.write(f"{ip}\t{json.dumps(body)}\n")


def inside_stored() -> None:
    """Prints how many submissions are stored (the drain's progress)."""
    import django

    django.setup()
    from mailmarketer.signup.models import Submission

    print(Submission.objects.count())


def inside_check() -> None:
    """Prints what is stored: submissions, those with a subscriber and a consent record."""
    import django

    django.setup()
    from django.db.models import Count

    from mailmarketer.audience.models import ConsentRecord
    from mailmarketer.signup.models import Submission
    from mailmarketer.signup.models_altcha import SolvedChallenge

    submissions = Submission.objects.all()
    with_consent = set(
        ConsentRecord.objects.values_list("subscriber_id", flat=True).annotate(n=Count("id"))
    )
    stored = submissions.count()
    complete = sum(
        1 for sid in submissions.values_list("subscriber_id", flat=True) if sid in with_consent
    )
    print(
        json.dumps(
            {
                "stored": stored,
                "complete": complete,
                "spent": SolvedChallenge.objects.count(),
                "subscribers": submissions.values("subscriber_id").distinct().count(),
            }
        )
    )


# -- the run ----------------------------------------------------------------------------------


def wrk(url: str, script: str, seconds: float, connections: int, *args: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{int(seconds)}s",
                "--timeout",
                "10s",
                "-s",
                lua.name,
                url,
                *(["--", *args] if args else []),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(lua.name)
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result:\n{out[-2000:]}")
    result = json.loads(line.removeprefix("RESULT "))
    result["rate"] = result["ok"] / result["seconds"] if result["seconds"] else 0.0
    return result


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (the gunicorn
    master and its workers), from /proc: a figure that load on the machine does not inflate
    the way it does wall-clock rates."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += used.get(current, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the web server exited: " + (proc.stderr.read() or "")[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # loopback only
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the web server did not come up")


def run_case(db: str, args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="mm-signup-bench-"))
    pg_name = None
    if db == "postgres":
        pg_name = create_pg()
        url = f"{PG}/{pg_name}"
    else:
        url = f"sqlite:///{work / 'bench.sqlite3'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MM_")},
        "MM_DATABASE_URL": url,
        "MM_DATA_DIR": str(work),
        "MM_SECRET_KEY": "signup-bench-secret-key-" + "s" * 30,
        "MM_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "MM_BASE_URL": base,
        "MM_ALLOWED_HOSTS": "127.0.0.1",
        "MM_BEHIND_PROXY": "true",
        "MM_BENCH_CONSTANT_VIEW": "true",
        "MM_LOG_LEVEL": "WARNING",
        "MM_WEB_WORKERS": str(args.workers),
        "MM_WEB_THREADS": str(args.threads),
        "DJANGO_SETTINGS_MODULE": "mailmarketer.settings",
        "PYTHONPATH": str(ROOT),
    }

    def run(*cmd):
        return subprocess.run(
            cmd, env=env, cwd=work, check=True, capture_output=True, text=True, timeout=900
        ).stdout

    bodies = work / "bodies.tsv"
    server = worker = None
    try:
        run(str(BIN / "mailmarketer"), "migrate")
        # Enough bodies for the run at a generous rate; each is sent at most once.
        run(sys.executable, __file__, "--inside-seed", str(args.bodies), str(bodies))
        server = subprocess.Popen(
            [str(BIN / "mailmarketer"), "web", "--bind", f"127.0.0.1:{port}"],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,  # the access log
            stderr=subprocess.PIPE,
            text=True,
        )
        # The worker that stores the spooled sign-ups, as `mailmarketer run` starts one.
        worker = subprocess.Popen(
            [str(BIN / "mailmarketer"), "worker"],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_up(base + "/bench/constant", server)
        wrk(base + "/bench/constant", WRK_GET, 2, args.connections)  # warm-up
        cpu = tree_cpu(server.pid)
        limit = wrk(base + "/bench/constant", WRK_GET, args.seconds, args.connections)
        limit["cpu_ms"] = (tree_cpu(server.pid) - cpu) * 1000 / max(limit["requests"], 1)
        # For scale: /healthz, one `SELECT 1` per request (the cost of touching the database).
        health = wrk(base + "/healthz", WRK_GET, args.seconds, args.connections)
        # Warm-up of the sign-up path with bodies of its own (each is good once): each worker
        # imports what it has not yet and builds the form's cached objects, which a run of a
        # few hundred posts would otherwise count as the sign-ups' cost.
        lines = bodies.read_text().splitlines(keepends=True)
        warm_bodies, bodies = work / "warm.tsv", work / "run.tsv"
        warm_bodies.write_text("".join(lines[:WARM_BODIES]))
        bodies.write_text("".join(lines[WARM_BODIES:]))
        worker_cpu = tree_cpu(worker.pid)
        warm = wrk(
            base + "/f/bench/news.json",
            WRK_POST,
            2,
            args.connections,
            str(warm_bodies),
            "2",
            "/f/bench/news.json",
        )
        cpu = tree_cpu(server.pid)
        ours = wrk(
            base + "/f/bench/news.json",
            WRK_POST,
            args.seconds,
            args.connections,
            str(bodies),
            "2",
            "/f/bench/news.json",
        )
        ours["cpu_ms"] = (tree_cpu(server.pid) - cpu) * 1000 / max(ours["requests"], 1)
        ended = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        # The drain: until the worker has taken every spool file and stored every accepted
        # sign-up (bounded; what is missing then is reported by the check below).
        accepted = warm["ok"] + ours["ok"]
        spool = work / "spool"
        deadline = ended + args.drain_timeout
        stored = 0
        while time.monotonic() < deadline:
            if not list(spool.glob("signup-*")):
                stored = int(run(sys.executable, __file__, "--inside-stored"))
                if stored >= accepted:
                    break
            time.sleep(0.2)
        drain = time.monotonic() - ended
        worker_cpu = tree_cpu(worker.pid) - worker_cpu
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        check = json.loads(run(sys.executable, __file__, "--inside-check"))
        check["drain_s"] = drain
        # The worker's CPU per stored sign-up (its process only: PostgreSQL's is not counted).
        check["worker_cpu_ms"] = worker_cpu * 1000 / max(check["stored"], 1)
        return {
            "db": db,
            "ours": ours,
            "warm": warm,
            "limit": limit,
            "health": health,
            "check": check,
        }
    finally:
        for process in (server, worker):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        if pg_name:
            drop_pg(pg_name)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--inside-seed":
        inside_seed(int(sys.argv[2]), sys.argv[3])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--inside-stored":
        inside_stored()
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--inside-check":
        inside_check()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--bodies", type=int, default=40_000, help="prepared submissions (each sent once)"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=300, help="seconds to wait for the worker"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (Debian's package)")

    failed = False
    rows = []
    for db in args.db.split(","):
        result = run_case(db, args)
        rows.append(result)
        ours, limit, check = result["ours"], result["limit"], result["check"]
        warm = result["warm"]
        problems = []
        if warm["other"] or warm["socket_errors"]:
            problems.append(f"warm-up: {warm['other']} refused, {warm['socket_errors']} errors")
        if ours["other"] or ours["socket_errors"]:
            problems.append(f"{ours['other']} refused, {ours['socket_errors']} socket errors")
        if check["complete"] != check["stored"]:
            problems.append(f"{check['stored'] - check['complete']} stored without consent")
        # wrk stops with posts in flight: the server may store a few it did not count.
        accepted = warm["ok"] + ours["ok"]
        if not accepted <= check["stored"] <= accepted + 2 * args.connections:
            problems.append(f"{accepted} accepted but {check['stored']} stored")
        if check["spent"] != check["stored"] or check["subscribers"] != check["stored"]:
            problems.append(f"spent {check['spent']}, subscribers {check['subscribers']}")
        if ours["ok"] >= args.bodies - WARM_BODIES:
            problems.append("ran out of prepared bodies: raise --bodies")
        result["problems"] = problems
        failed |= bool(problems)

    print(
        f"\nsign-ups through POST /f/<ws>/<form>.json with ALTCHA, mailmarketer web "
        f"({args.workers} processes x {args.threads} threads), wrk -c{args.connections}, "
        f"{args.seconds:g} s each"
    )
    header = (
        f"{'db':<9}{'sign-ups/s':>11}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'limit/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'ratio':>7}  {'errors':<8}"
        f"{'stored+consent':<24}{'healthz/s':>9}{'web CPU ms':>11}{'limit':>7}"
        f"{'drain s':>9}{'worker CPU ms':>14}"
    )
    print(header)
    for row in rows:
        ours, limit, check = row["ours"], row["limit"], row["check"]
        ratio = ours["rate"] / limit["rate"] if limit["rate"] else 0.0
        errors = ours["other"] + ours["socket_errors"]
        print(
            f"{row['db']:<9}{ours['rate']:>11.1f}{ours['p50_ms']:>8.1f}{ours['p99_ms']:>8.1f}"
            f"{limit['rate']:>9.1f}{limit['p50_ms']:>8.1f}{limit['p99_ms']:>8.1f}"
            f"{ratio:>6.3f}x  {errors:<8}"
            f"{check['complete']}/{ours['ok'] + row['warm']['ok']} accepted{'':<8}"
            f"{row['health']['rate']:>9.1f}"
            f"{ours['cpu_ms']:>11.2f}{limit['cpu_ms']:>7.2f}{check['drain_s']:>9.1f}{check['worker_cpu_ms']:>14.2f}"
        )
        for problem in row["problems"]:
            print(f"  PROBLEM ({row['db']}): {problem}")
    print(
        "limit: GET /bench/constant on the same server (no database); "
        "ratio = sign-ups/s / limit/s; target >= 0.25x on PostgreSQL; "
        "healthz: GET /healthz (one SELECT 1), for scale; web CPU ms: the web server's CPU "
        "time (all its processes, from /proc) per request, sign-ups and limit; drain s: from "
        "the end of the run until the worker had stored every accepted sign-up; worker CPU ms: "
        "the worker process's CPU per stored sign-up (warm-up and run); load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
