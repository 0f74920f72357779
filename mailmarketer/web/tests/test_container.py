"""The container files are sound without a Docker engine (none runs on the CI machine): the
wheel the Dockerfile installs builds from this checkout with the templates, static files,
migrations and SQL it needs; the Dockerfile runs that wheel as a non-root user with a command
the CLI has; compose.yaml runs PostgreSQL, one web process and two workers on a volume."""

from __future__ import annotations

import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from mailmarketer.cli import PASSTHROUGH, SUBCOMMANDS

COMMANDS = {*SUBCOMMANDS, *PASSTHROUGH}

ROOT = Path(__file__).resolve().parents[3]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_the_image_runs_as_a_non_root_user_on_a_slim_python():
    stage = _final_stage()
    assert stage[0][1].startswith("python:3.1") and stage[0][1].endswith("-slim")
    users = [rest for word, rest in stage if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    user_at = max(i for i, (word, _) in enumerate(stage) if word == "USER")
    assert all(word != "RUN" for word, _ in stage[user_at:]), "RUN as root after USER"


def test_the_images_commands_are_commands_the_cli_has():
    stage = dict(_final_stage())
    assert stage["ENTRYPOINT"] == '["mailmarketer"]'
    command = yaml.safe_load(stage["CMD"])
    assert command[0] in COMMANDS


def test_every_copied_path_exists():
    for word, rest in _instructions():
        if word == "COPY" and "--from" not in rest:
            for source in shlex.split(rest)[:-1]:
                assert (ROOT / source).exists(), source


def test_compose_runs_postgresql_one_web_and_two_workers_on_a_volume():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    assert services["web"]["command"][0] == "web"
    assert services["web"].get("deploy", {}).get("replicas", 1) == 1
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("web", "worker", "migrate"):
        assert services[name]["command"][0] in COMMANDS
        assert "data:/data" in services[name]["volumes"]
        url = services[name]["environment"]["MM_DATABASE_URL"]
        assert url.startswith("postgres://") and "@db:5432/" in url
    assert services["web"]["ports"] == ["127.0.0.1:8000:8000"]
    assert set(compose["volumes"]) == {"data", "pgdata"}


@pytest.mark.slow
def test_the_wheel_the_dockerfile_installs_builds_with_everything_it_needs(tmp_path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("mailmarketer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("accounts", "audience", "campaigns", "delivery", "signup", "tracking", "web"):
        assert any(n.startswith(f"mailmarketer/{package}/migrations/0001") for n in names) or (
            package == "web"
        ), package
    assert any(n.startswith("mailmarketer/web/templates/") for n in names)
    assert any(n.startswith("mailmarketer/web/static/") for n in names)
    # The help pages' Markdown (mailmarketer/web/docs links to docs/; the wheel holds files).
    for page in (ROOT / "docs").glob("*.md"):
        assert f"mailmarketer/web/docs/{page.name}" in names, page.name
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "mailmarketer = mailmarketer.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
