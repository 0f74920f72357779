"""A real Postfix on 127.0.0.1 for tests: an instance of Debian's `postfix` package with its own
main.cf, master.cf, queue and data directories in a temporary directory, relaying everything to
a test SMTP sink. Never the system's service: started with `postfix -c DIR start` and stopped with
`postfix -c DIR stop` (or, if that fails, by the master's pid).

    with PostfixRelay(sink_port=sink.port, policy_port=policy.port) as relay:
        ... send to 127.0.0.1:relay.port ...
        relay.restart()

`policy_port` puts a check_policy_service on RCPT (see PolicyService): the way a real Postfix
answers 4xx to every recipient for a while (greylisting, rate limits, a full disk).

The installation itself is the project's job (`make postfix`, as root on Debian); `available()`
says whether it is there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"

# Only the services a relaying instance needs, none chrooted (the temporary queue directory has
# no copy of /etc or the libraries a chroot needs), logging to a file through postlogd.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.mailmarketer.test
mydomain = mailmarketer.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = {recipient_restrictions}
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_dns_support_level = disabled
disable_dns_lookups = yes
# Retry the sink soon after a refusal, so a test never waits minutes for its queue.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""


def available() -> bool:
    return os.path.exists(POSTFIX) and os.geteuid() == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostfixRelay:
    def __init__(self, *, sink_port: int, policy_port: int | None = None, main_cf_extra: str = ""):
        # Its own directory under /tmp, readable by the postfix user its daemons run as (pytest's
        # tmp_path sits in a directory only root may enter).
        self.dir = Path(tempfile.mkdtemp(prefix="mm-postfix-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        restrictions = "permit"
        if policy_port is not None:
            restrictions = f"check_policy_service inet:127.0.0.1:{policy_port}, permit"
        (self.dir / "main.cf").write_text(
            MAIN_CF.format(dir=self.dir, sink_port=sink_port, recipient_restrictions=restrictions)
            # Later lines win in main.cf: a test adds or overrides settings (transport_maps).
            + main_cf_extra.format(dir=self.dir)
        )
        (self.dir / "master.cf").write_text(MASTER_CF.format(port=self.port))
        for name in ("queue", "data"):
            (self.dir / name).mkdir(exist_ok=True)
        shutil.chown(self.dir / "data", user="postfix")

    def _postfix(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [POSTFIX, "-c", str(self.dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> PostfixRelay:
        # set-permissions creates the queue's subdirectories with their owners on first use.
        done = self._postfix("start")
        if done.returncode != 0:
            raise RuntimeError(f"postfix did not start: {done.stderr[-2000:]}{self.log()[-2000:]}")
        self.wait_listening()
        return self

    def wait_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    if conn.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postfix is not answering on 127.0.0.1:{self.port}")

    def master_pid(self) -> int | None:
        try:
            return int((self.dir / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.master_pid()
        done = self._postfix("stop")
        deadline = time.monotonic() + 15
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if done.returncode != 0:
            raise RuntimeError(f"postfix did not stop: {done.stderr[-2000:]}")

    def restart(self) -> None:
        """`postfix stop; postfix start`: every open connection dies, the port comes back."""
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> PostfixRelay:
        return self.start()

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class PolicyService:
    """A Postfix policy service (the check_policy_service protocol: name=value lines, an empty
    line, then "action=..." and an empty line back) on 127.0.0.1, in threads of this process.
    While `refusing` is set it answers `reply` (a 4xx by default) to every recipient."""

    def __init__(self, reply: str = "450 4.7.1 Service unavailable, try again later"):
        self.reply = reply
        self.refusing = threading.Event()
        self.refused = 0
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                while True:
                    request = {}
                    for raw in self.rfile:
                        line = raw.decode("utf-8", "replace").strip()
                        if not line:
                            break
                        name, _, value = line.partition("=")
                        request[name] = value
                    else:
                        return  # Postfix closed the connection
                    action = "DUNNO"
                    if owner.refusing.is_set() and request.get("protocol_state") == "RCPT":
                        owner.refused += 1
                        action = owner.reply
                    self.wfile.write(f"action={action}\n\n".encode())

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> PolicyService:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
