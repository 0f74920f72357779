"""Files holding people's data are the service user's own: 0600 files in 0700 directories,
whatever the umask (the tests run under the usual 022, which would give 0644 and 0755)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from mailmarketer.lib import outbox
from mailmarketer.lib.datafiles import open_private, private_dir, private_file, private_sqlite


def mode(path) -> str:
    return oct(path.stat().st_mode & 0o777)


@pytest.fixture(autouse=True)
def usual_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_it_makes_directories_0700_new_or_existing(tmp_path):
    existing = tmp_path / "var"
    existing.mkdir(mode=0o755)
    assert mode(private_dir(existing)) == "0o700"
    assert mode(private_dir(tmp_path / "new" / "deeper")) == "0o700"


def test_it_leaves_a_configured_directory_that_was_there_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    private_dir(shared, existing_too=False)
    assert mode(shared) == "0o755"


def test_it_creates_files_0600(tmp_path):
    with open_private(tmp_path / "a", "wb") as out:
        out.write(b"x")
    assert mode(tmp_path / "a") == "0o600"
    loose = tmp_path / "b"
    loose.write_text("y")
    loose.chmod(0o644)
    assert mode(private_file(loose)) == "0o600" and loose.read_text() == "y"


def test_it_keeps_an_sqlite_database_and_its_wal_and_shm_files_private(tmp_path):
    path = private_sqlite(tmp_path / "db" / "mailmarketer.sqlite3")
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE person (email TEXT)")
    connection.execute("INSERT INTO person VALUES ('ann@example.com')")
    connection.commit()
    companions = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    assert all(p.exists() for p in companions)
    assert [mode(p) for p in [path, *companions]] == ["0o600"] * 3
    assert mode(path.parent) == "0o700"
    connection.close()


def test_it_corrects_an_older_installations_database_files(tmp_path):
    path = tmp_path / "mailmarketer.sqlite3"
    for p in (path, path.with_name(path.name + "-wal")):
        p.write_bytes(b"")
        p.chmod(0o644)
    private_sqlite(path)
    assert mode(path) == mode(path.with_name(path.name + "-wal")) == "0o600"


def test_it_writes_outbox_messages_0600_in_0700_directories(settings, tmp_path):
    settings.OUTBOX_DIR = tmp_path / "outbox"
    message_id = outbox.write_message(b"To: ann@example.com\r\n\r\nHello\r\n", "ws-1")
    assert mode(tmp_path / "outbox" / "ws-1" / f"{message_id}.eml") == "0o600"
    assert mode(tmp_path / "outbox" / "ws-1") == mode(tmp_path / "outbox") == "0o700"


def test_it_starts_with_a_private_data_directory_and_database(tmp_path):
    # The real settings module, in a fresh interpreter, on a data directory as `make run`
    # would find it the first time (made by someone else, with the usual umask).
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    env = {"PATH": os.environ.get("PATH", ""), "MM_DATA_DIR": str(data), "MM_DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "-c", "import mailmarketer.settings"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert mode(data) == "0o700"
    assert mode(data / "mailmarketer.sqlite3") == "0o600"
