"""Settings for the test suite: the real settings module, fed a test environment.

The database comes from MM_TEST_DATABASE_URL (PostgreSQL) or is SQLite; either way the test
runner creates its own throwaway database, named uniquely per run so parallel runs never meet.
"""

import os
import secrets
import tempfile

os.environ.setdefault("MM_SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 20)
os.environ.setdefault("MM_DATA_DIR", tempfile.mkdtemp(prefix="mm-test-"))
# A fixed key so that failures are reproducible; never used outside tests.
os.environ.setdefault("MM_ENCRYPTION_KEY", "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdDE=")
os.environ.setdefault("MM_BASE_URL", "http://testserver")
os.environ.setdefault("MM_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.pop("MM_SMTP_URL", None)
_pg = os.environ.get("MM_TEST_DATABASE_URL")
if _pg:
    os.environ["MM_DATABASE_URL"] = _pg
    os.environ.setdefault("MM_TEST_PG_NAME", f"test_mailmarketer_{secrets.token_hex(4)}")
else:
    os.environ["MM_DATABASE_URL"] = "sqlite:///" + os.path.join(
        os.environ["MM_DATA_DIR"], "mailmarketer.sqlite3"
    )

from mailmarketer.settings import *  # noqa: E402, F403
