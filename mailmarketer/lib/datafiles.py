"""Files and directories under the data directory that hold people's data (the SQLite database
with its WAL and shared-memory files, imports, the outbox, keys): readable by the service's own
user only, 0600 for files and 0700 for directories, whatever the process's umask.

Modes are set explicitly where each file is made rather than by changing the umask, which is
per process and would depend on how the process was started (`mailmarketer run`, a WSGI server,
a test runner). A directory's mode given to mkdir is cut by the umask, hence the chmod after.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700

# The checkout's var/ (an editable install, as `make run` makes): where a bare checkout keeps its
# data when MM_DATA_DIR is not set. settings.py and the command line both start from it.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "var"

# Settings `mailmarketer run` wrote for a local evaluation (MM_DEBUG=true), read by every later
# command (cli.py), so `mailmarketer token create` in a second terminal works as the README says.
LOCAL_ENV_NAME = ".env"


def private_dir(path: Path, *, existing_too: bool = True) -> Path:
    """Makes the directory 0700 (creating it and any missing parents). With existing_too=False
    a directory that was already there keeps its mode: for a path someone configured, whose
    directory may be shared (the parent of an SQLite file named in MM_DATABASE_URL)."""
    path = Path(path)
    existed = path.is_dir()
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if existing_too or not existed:
        path.chmod(DIR_MODE)
    return path


def open_private(path: Path, mode: str = "wb"):
    """open() for a file that is created 0600 (os.open applies the mode at creation, so there
    is no moment when another user could open it). Modes: "wb", "xb", "w+b" (a file that may
    exist already keeps its own mode; private_file() fixes that)."""
    flags = {
        "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        "xb": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
        "w+b": os.O_RDWR | os.O_CREAT | os.O_TRUNC,
    }[mode]
    return os.fdopen(os.open(path, flags, FILE_MODE), mode.replace("x", "w"))


def private_file(path: Path) -> Path:
    """Creates the file empty if it is missing, and makes it 0600 either way."""
    path = Path(path)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    path.chmod(FILE_MODE)
    return path


def private_sqlite(path: Path) -> Path:
    """An SQLite database file made 0600 before SQLite opens it, with its -wal, -shm and
    -journal files if present. SQLite creates those with the database file's own mode, so
    a new installation's are 0600 from the start; an older one's are corrected here. An empty
    file is a valid empty database to SQLite."""
    path = Path(path)
    private_dir(path.parent, existing_too=False)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.chmod(FILE_MODE)
    return path
