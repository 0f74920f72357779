"""Wire micro-benchmark: message assembly, DKIM signing and the pipelined SMTP client, next to
the machine's limit measured in the same run.

    .venv/bin/python benchmarks/wire_bench.py                  # 20k messages, 8 connections
    .venv/bin/python benchmarks/wire_bench.py --messages 5000 --connections 4 --runs 1
    .venv/bin/python benchmarks/wire_bench.py --send-only     # the client's CPU only (smtp-sink)

What it measures (no database, no Django: the parts the delivery engine is built from):
- build: mime.build_message per recipient for a ~5 KB personalised HTML message with its text
  part and list headers (ASCII content: the 7bit path; and a German text: quoted-printable),
  against the same message built as an email.message.EmailMessage (the ~770 us reference).
- DKIM: the same messages signed (dkim.DkimSigner, RSA-2048 over OpenSSL), against dkimpy's own
  dkim.sign() (pure-Python RSA).
- send: pre-built messages over N SmtpConnections in one process (PIPELINING, batches of 100),
  into Postfix's smtp-sink (C) when installed and into our aiosmtpd server (--count-only, its
  own process); then build + send and build + sign + send in one process, as a worker would.
- limit: Postfix's smtp-source (C, one command at a time, connections reused) sending the same
  count of the same size over the same number of sessions into the same smtp-sink.

Each send figure is the median of --runs runs, with the CPU each side spent per message in that
run: the client's (this process, time.process_time) and the sink's (smtp-sink's utime + stime
from /proc/<pid>/stat; clock ticks of 10 ms, so read it at 20,000 messages or more); the limit
row gives smtp-source's (its rusage) and the sink's the same way. On a shared machine the rates
move with the load; the CPU per message is the figure to compare. --send-only skips the
assembly, DKIM, aiosmtpd and inline rows: pre-built messages into smtp-sink and the limit.

smtp-sink and smtp-source come with Debian's postfix package (`apt-get install postfix`; the
package may start a Postfix daemon: `postfix stop` afterwards); without them the smtp-sink rows
are left out and the limit row says so.
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailmarketer.delivery.dkim import DkimSigner, generate_key  # noqa: E402
from mailmarketer.delivery.mime import (  # noqa: E402
    DotFreeMessage,
    MessageParts,
    build_message,
    make_message_id,
)
from mailmarketer.delivery.smtp import Outgoing, SmtpConfig, SmtpConnection  # noqa: E402

CAMPAIGN = uuid.UUID("0f0e0d0c-0b0a-0908-0706-050403020100")
DATE = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
BATCH = 100

ROW = (
    '<tr><td style="padding:12px 24px;font-family:Arial,sans-serif;font-size:15px;'
    'color:#333333;line-height:1.5">{line} <a href="https://acme.example/t/c/{cid}/{n}" '
    'style="color:#0b5cad">Read more</a></td></tr>\n'
)
LINES = [
    "Our spring collection is here, with new colours and fabrics for every season.",
    "Members save an extra ten percent this week on everything in the store.",
    "Join our webinar on Thursday to see what is new in the product line.",
    "Download the buyer's guide: forty pages of tips from our own team.",
]


def html_for(name: str, cid: int, lines: list[str]) -> str:
    rows = "".join(
        ROW.format(line=lines[n % len(lines)], cid=cid, n=n) for n in range(len(lines) * 4)
    )
    return (
        '<!DOCTYPE html>\n<html><body style="margin:0;background:#f4f4f4">\n'
        '<table role="presentation" width="600" align="center" style="background:#ffffff">\n'
        f'<tr><td style="padding:24px;font-size:20px">Hello {name},</td></tr>\n{rows}'
        '<tr><td style="padding:24px;font-size:12px;color:#777777">Acme Ltd, 1 Main Street, '
        'Springfield. <a href="https://acme.example/f/u/tok">Unsubscribe</a></td></tr>\n'
        "</table>\n</body></html>\n"
    )


def text_for(name: str, lines: list[str]) -> str:
    body = "\n\n".join(lines * 3)
    return f"Hello {name},\n\n{body}\n\nAcme Ltd, 1 Main Street, Springfield.\n"


GERMAN = [
    "Unsere Frühjahrskollektion ist da, mit neuen Farben und Stoffen für jede Jahreszeit.",
    "Mitglieder sparen diese Woche zusätzlich zehn Prozent auf alles im Geschäft.",
    "Besuchen Sie am Donnerstag unser Webinar über die Neuheiten der Produktlinie.",
    "Laden Sie den Einkaufsführer herunter: vierzig Seiten Tipps von unserem Team.",
]


def recipients(count: int, lines: list[str] = LINES, pad: int = 0):
    """`pad` more bytes (about) of text part per message."""
    padding = "".join(f"{lines[n % len(lines)]}\n" for n in range(pad // 72 + 1)) if pad else ""
    for i in range(count):
        name = f"Ann Example{i}"
        yield {
            "to_email": f"ann.example{i}@example.org",
            "to_name": name,
            "subject": f"{name.split()[0]}, our spring news",
            "html": html_for(name, i, lines),
            "text": text_for(name, lines) + padding,
            "message_id": make_message_id(i + 1, CAMPAIGN, "acme.example"),
            "date": DATE,
            "list_unsubscribe_url": f"https://acme.example/f/u/{i}.c2lnbmF0dXJl",
        }


def parts(signer: DkimSigner | None = None) -> MessageParts:
    return MessageParts(
        from_email="news@acme.example",
        from_name="Acme News",
        reply_to="help@acme.example",
        list_id="42.lists.acme.example",
        feedback_id="c42:w1:marketing:mm",
        dkim=signer,
        message_id_domain="acme.example",
    )


def email_message(r: dict) -> bytes:
    """The same message the way the stdlib would make it (the DESIGN.md reference)."""
    message = EmailMessage()
    message["From"] = "Acme News <news@acme.example>"
    message["To"] = f"{r['to_name']} <{r['to_email']}>"
    message["Subject"] = r["subject"]
    message["Date"] = DATE
    message["Message-ID"] = r["message_id"]
    message["Reply-To"] = "help@acme.example"
    message["List-Id"] = "<42.lists.acme.example>"
    message["List-Unsubscribe"] = f"<{r['list_unsubscribe_url']}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Feedback-ID"] = "c42:w1:marketing:mm"
    message.set_content(r["text"])
    message.add_alternative(r["html"], subtype="html")
    return message.as_bytes(policy=email.policy.SMTP)


def per_message_us(function, items) -> tuple[float, list]:
    started = time.perf_counter()
    out = [function(item) for item in items]
    return (time.perf_counter() - started) / len(items) * 1e6, out


# -- sinks -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sink exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def process_cpu_s(pid: int) -> float:
    """A process's CPU seconds so far (user + system), from /proc; 0.0 where there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Sink:
    """A sink process, stopped (terminate, then kill) when the block ends."""

    def __init__(self, kind: str):
        self.kind = kind
        self.process: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> Sink:
        if self.kind == "smtp-sink":
            self.port = free_port()
            self.process = subprocess.Popen(
                ["smtp-sink", "-u", "nobody", "-a", f"127.0.0.1:{self.port}", "1024"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_listening(self.port, self.process)
        else:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mailmarketer.delivery.testing.smtpd",
                    "--count-only",
                    "--max-seconds",
                    "1800",
                ],
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            line = self.process.stdout.readline()
            if not line.startswith("ready "):
                raise RuntimeError(f"aiosmtpd sink did not start: {line!r}")
            self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc) -> None:
        process = self.process
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


# -- sending -----------------------------------------------------------------------------------


async def send_all(port: int, connections: int, batches: deque, make=None) -> tuple[int, float]:
    """Send every batch over `connections` sessions; returns (accepted, seconds). With `make`,
    a batch is a list of recipients built into messages right before sending (inline work)."""
    config = SmtpConfig("127.0.0.1", port, "none", timeout=30, local_hostname="bench.example")
    accepted = 0

    async def worker():
        nonlocal accepted
        async with SmtpConnection(config) as conn:
            while batches:
                batch = batches.popleft()
                if make is not None:
                    batch = make(batch)
                results = await conn.send_batch(batch)
                accepted += sum(r.ok for r in results)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return accepted, time.perf_counter() - started


def batched(items: list, size: int = BATCH) -> deque:
    return deque(items[i : i + size] for i in range(0, len(items), size))


def outgoing(messages: list[bytes]) -> list[Outgoing]:
    """As the delivery engine hands them over: a message with no line starting with a dot is a
    mime.DotFreeMessage (prebuilt.py's), which the client sends without a dot-stuffing pass."""
    return [
        Outgoing(i, "bounces+d1.tok@acme.example", f"ann.example{i}@example.org", dot_free(data))
        for i, data in enumerate(messages)
    ]


def dot_free(data: bytes) -> bytes:
    if data.startswith(b".") or b"\r\n." in data:
        return data
    return DotFreeMessage(data)


def median_rate(
    sink: Sink, connections: int, runs: int, items: list, make=None
) -> tuple[float, float, float]:
    """(msg/s, the client's CPU us/msg, the sink's CPU us/msg) of the median run by rate."""
    measured = []
    for _ in range(runs):
        sink_before, client_before = process_cpu_s(sink.process.pid), time.process_time()
        accepted, seconds = asyncio.run(send_all(sink.port, connections, batched(items), make))
        client_cpu = time.process_time() - client_before
        sink_cpu = process_cpu_s(sink.process.pid) - sink_before
        if accepted != len(items):
            raise RuntimeError(f"only {accepted} of {len(items)} accepted")
        measured.append(
            (accepted / seconds, client_cpu / accepted * 1e6, sink_cpu / accepted * 1e6)
        )
    return sorted(measured)[len(measured) // 2]


def smtp_source_rate(sink: Sink, sessions: int, count: int, size: int, runs: int):
    """(msg/s, smtp-source's CPU us/msg, the sink's CPU us/msg) of the median run by rate."""
    port = sink.port
    measured = []
    for _ in range(runs):
        sink_before, source_before = process_cpu_s(sink.process.pid), children_cpu_s()
        started = time.perf_counter()
        subprocess.run(
            [
                "smtp-source",
                "-d",
                "-s",
                str(sessions),
                "-m",
                str(count),
                "-l",
                str(size),
                "-M",
                "bench.example",
                "-f",
                "news@acme.example",
                "-t",
                "ann@example.org",
                f"127.0.0.1:{port}",
            ],
            check=True,
            timeout=600,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        source_cpu = children_cpu_s() - source_before
        sink_cpu = process_cpu_s(sink.process.pid) - sink_before
        measured.append((count / seconds, source_cpu / count * 1e6, sink_cpu / count * 1e6))
    return sorted(measured)[len(measured) // 2]


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--pad",
        type=int,
        default=0,
        help="bytes of text added to each message (~6.5 KB without; 8500: send_bench's ~15 KB)",
    )
    parser.add_argument(
        "--send-only",
        action="store_true",
        help="only pre-built messages into smtp-sink, and the limit (the client's CPU)",
    )
    args = parser.parse_args()
    n, conns = args.messages, args.connections
    have_postfix = bool(shutil.which("smtp-sink") and shutil.which("smtp-source"))
    if args.send_only and not have_postfix:
        print("--send-only needs smtp-sink and smtp-source (apt-get install postfix)")
        return 2
    print(f"wire_bench: {n} messages, {conns} connections, median of {args.runs} runs")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(
        "sinks: "
        + ("smtp-sink (Postfix)" if have_postfix else "")
        + ("" if args.send_only else (" and " if have_postfix else "") + "aiosmtpd --count-only")
    )

    private_pem, _ = generate_key(2048)
    signer = DkimSigner("acme.example", "mm1", private_pem)
    plain, signed = parts(), parts(signer)
    people = list(recipients(n, pad=args.pad))

    rows: list[tuple[str, str, str]] = []
    build_us, messages = per_message_us(lambda r: build_message(plain, **r), people)
    size = statistics.mean(len(m) for m in messages)
    rows.append(("build_message, ASCII content (7bit)", f"{build_us:8.1f} us/msg", f"{size:.0f} B"))
    prebuilt = outgoing(messages)
    if not args.send_only:
        german = list(recipients(min(n, 5000), GERMAN))
        qp_us, qp_messages = per_message_us(lambda r: build_message(plain, **r), german)
        qp_size = statistics.mean(len(m) for m in qp_messages)
        rows.append(
            ("build_message, German content (QP)", f"{qp_us:8.1f} us/msg", f"{qp_size:.0f} B")
        )
        ref_us, _ = per_message_us(email_message, people[: min(n, 2000)])
        rows.append(("EmailMessage + as_bytes (reference)", f"{ref_us:8.1f} us/msg", ""))
        dkim_us, signed_messages = per_message_us(lambda r: build_message(signed, **r), people)
        signed_size = statistics.mean(len(m) for m in signed_messages)
        rows.append(
            (
                "build_message + DkimSigner (RSA-2048)",
                f"{dkim_us:8.1f} us/msg",
                f"{signed_size:.0f} B",
            )
        )
        import dkim as dkimpy

        sample = messages[: min(n, 100)]
        dkimpy_us, _ = per_message_us(
            lambda m: dkimpy.sign(m, b"mm1", b"acme.example", private_pem.encode()), sample
        )
        rows.append(("dkimpy.sign alone (pure-Python RSA)", f"{dkimpy_us:8.1f} us/msg", ""))
        prebuilt_signed = outgoing(signed_messages)

    def make_plain(batch):
        return [
            Outgoing(r["message_id"], "bounces+d1.tok@acme.example", r["to_email"], m)
            for r, m in ((r, build_message(plain, **r)) for r in batch)
        ]

    def make_signed(batch):
        return [
            Outgoing(r["message_id"], "bounces+d1.tok@acme.example", r["to_email"], m)
            for r, m in ((r, build_message(signed, **r)) for r in batch)
        ]

    # (sink, what, (msg/s, client CPU us/msg, sink CPU us/msg))
    send_rows: list[tuple[str, str, tuple[float, float, float]]] = []
    limit = None
    sinks = (["smtp-sink"] if have_postfix else []) + ([] if args.send_only else ["aiosmtpd"])
    for kind in sinks:
        with Sink(kind) as sink:
            send_rows.append(
                (kind, "pre-built, 1 connection", median_rate(sink, 1, args.runs, prebuilt))
            )
            send_rows.append(
                (
                    kind,
                    f"pre-built, {conns} connections",
                    median_rate(sink, conns, args.runs, prebuilt),
                )
            )
            if kind == "smtp-sink":
                body = max(int(size) - 600, 100)  # smtp-source adds ~600 B of headers
                limit = smtp_source_rate(sink, conns, n, body, args.runs)
            if args.send_only:
                continue
            send_rows.append(
                (
                    kind,
                    f"pre-built DKIM-signed, {conns} conn.",
                    median_rate(sink, conns, args.runs, prebuilt_signed),
                )
            )
            send_rows.append(
                (
                    kind,
                    f"build + send inline, {conns} conn.",
                    median_rate(sink, conns, args.runs, people, make_plain),
                )
            )
            dkim_people = people[: min(n, 4000)]
            send_rows.append(
                (
                    kind,
                    f"build + sign + send inline, {conns} c.",
                    median_rate(sink, conns, 1, dkim_people, make_signed),
                )
            )

    print()
    print(f"{'assembly and signing':40s} {'cost':>16s} {'avg size':>10s}")
    for name, cost, avg in rows:
        print(f"{name:40s} {cost:>16s} {avg:>10s}")
    print()
    if limit is not None:
        rate, source_us, sink_us = limit
        print(
            f"limit: smtp-source -d -s {conns}, {n} x {size:.0f} B -> smtp-sink: {rate:,.0f} msg/s"
            f"; CPU us/msg: smtp-source {source_us:.1f}, smtp-sink {sink_us:.1f}"
        )
    else:
        print("limit: smtp-source/smtp-sink not installed (apt-get install postfix); no ratio")
    print()
    print(
        f"{'sink':10s} {'send':40s} {'msg/s':>10s} {'x limit':>8s} "
        f"{'client CPU us/msg':>18s} {'sink CPU us/msg':>16s}"
    )
    for kind, name, (rate, client_us, sink_us) in send_rows:
        ratio = f"{rate / limit[0]:8.2f}" if limit and kind == "smtp-sink" else f"{'-':>8s}"
        print(f"{kind:10s} {name:40s} {rate:10,.0f} {ratio} {client_us:18.1f} {sink_us:16.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
