"""The layering contract (pyproject.toml, [tool.importlinter]; DESIGN.md section 4) fails when a
package imports upward or sideways, and holds for the code as it is.

Each case runs `lint-imports` on a copy of the package in a temporary directory, with one import
added where the case says, so the contract is shown to catch what it is for rather than only to
pass. The copy comes first on PYTHONPATH, so the linter reads it instead of this checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(tmp_path, inject: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """lint-imports on a copy of mailmarketer/ with `inject` ({module path: import line}) added."""
    shutil.copytree(
        ROOT / "mailmarketer",
        tmp_path / "mailmarketer",
        ignore=shutil.ignore_patterns("__pycache__", "static", "templates", "migrations"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for relative, line in (inject or {}).items():
        path = tmp_path / relative
        path.write_text(path.read_text() + f"\n{line}\n")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_keeps_the_contract_for_the_code_as_it_is(tmp_path):
    result = lint(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_it_fails_when_campaigns_imports_delivery(tmp_path):
    result = lint(
        tmp_path,
        {"mailmarketer/campaigns/models.py": "from mailmarketer.delivery import status  # noqa"},
    )
    assert result.returncode == 1
    assert "mailmarketer.campaigns is not allowed to import mailmarketer.delivery" in (
        " ".join(result.stdout.split())
    )


def test_it_fails_when_lib_imports_accounts_even_lazily(tmp_path):
    result = lint(
        tmp_path,
        {
            "mailmarketer/lib/env.py": "def _late():\n"
            "    from mailmarketer.accounts.models import Workspace  # noqa"
        },
    )
    assert result.returncode == 1
    assert "mailmarketer.lib is not allowed to import mailmarketer.accounts" in (
        " ".join(result.stdout.split())
    )


def test_it_fails_when_two_packages_of_one_layer_import_each_other(tmp_path):
    result = lint(
        tmp_path, {"mailmarketer/api/base.py": "from mailmarketer.web import nav  # noqa"}
    )
    assert result.returncode == 1
    assert "mailmarketer.api is not allowed to import mailmarketer.web" in (
        " ".join(result.stdout.split())
    )
