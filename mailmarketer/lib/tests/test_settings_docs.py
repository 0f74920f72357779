"""Every MM_* variable the code reads is documented in .env.example and docs/settings.md."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Variables the test runner sets for itself; documented in docs/settings.md under "Tests" only.
INTERNAL = {"MM_TEST_SQLITE_NAME", "MM_TEST_PG_NAME"}


def variables_in_code() -> set[str]:
    found = set()
    for path in (ROOT / "mailmarketer").rglob("*.py"):
        if "tests" in path.parts:
            continue
        found |= set(re.findall(r"[\"'](MM_[A-Z0-9_]+?)(?:_FILE)?[\"']", path.read_text()))
    return found


def test_it_finds_the_variables():
    assert {"MM_SECRET_KEY", "MM_DATABASE_URL", "MM_SMTP_URL"} <= variables_in_code()


def test_it_documents_every_variable_in_env_example():
    example = (ROOT / ".env.example").read_text()
    missing = sorted(v for v in variables_in_code() - INTERNAL if v not in example)
    assert not missing, f"add to .env.example: {missing}"


def test_it_documents_every_variable_in_docs_settings():
    doc = (ROOT / "docs" / "settings.md").read_text()
    missing = sorted(v for v in variables_in_code() if v not in doc)
    assert not missing, f"add to docs/settings.md: {missing}"
