"""A real Dovecot IMAP server on 127.0.0.1 for tests: Debian's `dovecot-imapd`, started with its
own configuration, a passwd-file user and implicit TLS (a certificate made for 127.0.0.1) in a
temporary directory; never the system's service. Stopped by its master's pid.

    with DovecotServer() as imap:
        imap.deliver(b"From: ...")              # put a message in the user's INBOX
        imap.port, imap.user, imap.password, imap.ca_file

`available()` says whether the binary is there."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"

CONFIG = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:{dir}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={dir}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def available() -> bool:
    return os.path.exists(DOVECOT) and os.geteuid() == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _certificate(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


class DovecotServer:
    user = "bounces@acme.test"
    password = "imap-test-password"  # noqa: S105 - a throwaway test server's

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="mm-dovecot-"))
        self.dir.chmod(0o755)
        self.port = _free_port()
        _certificate(self.dir)
        (self.dir / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        (self.dir / "dovecot.conf").write_text(CONFIG.format(dir=self.dir, port=self.port))
        for name in ("run", "state", "mail", "home"):
            (self.dir / name).mkdir()
        for name in ("mail", "home"):
            shutil.chown(self.dir / name, user="dovecot", group="dovecot")
        self.proc: subprocess.Popen | None = None

    @property
    def ca_file(self) -> str:
        return str(self.dir / "cert.pem")

    def start(self) -> DovecotServer:
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.dir / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        context = ssl.create_default_context(cafile=self.ca_file)
        while time.monotonic() < deadline:
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw,
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
                ):
                    if tls.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"dovecot exited: {self.proc.stderr.read()[-2000:]!r} {self.log()[-2000:]}"
                    ) from None
                time.sleep(0.1)
        raise RuntimeError(
            f"dovecot is not answering on 127.0.0.1:{self.port}: {self.log()[-2000:]}"
        )

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        """Append a message as the MTA would, through IMAP APPEND."""
        import imaplib

        context = ssl.create_default_context(cafile=self.ca_file)
        with imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=10) as imap:
            imap.login(self.user, self.password)
            imap.append(folder, None, None, raw)

    def count(self, folder: str = "INBOX") -> int:
        import imaplib

        context = ssl.create_default_context(cafile=self.ca_file)
        with imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=10) as imap:
            imap.login(self.user, self.password)
            status, data = imap.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return -1
            return int(data[0])

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
