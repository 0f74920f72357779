import pytest

from mailmarketer.testing import news, people, ws  # noqa: F401 (fixtures)
from mailmarketer.tracking import mail, mail_spool, web_ingest


@pytest.fixture(autouse=True)
def _own_mail_spool(settings, tmp_path):
    """Each test its own spool directory and an empty link cache (ids come back between tests
    on SQLite), and no spool file left open for the next test."""
    mail_spool.spool.close()
    web_ingest.spool.close()
    mail._links.clear()
    settings.TRACKING_SPOOL_DIR = tmp_path / "spool"
    yield
    mail_spool.spool.close()
    web_ingest.spool.close()
