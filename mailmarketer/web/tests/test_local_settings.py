"""The README's command line works in a fresh shell after `make run`: `mailmarketer run` (with
MM_DEBUG=true, as `make run` starts it) writes the local-evaluation settings into the data
directory's .env, and every later command reads them (issue 12, "The CLI after make run").

The processes get a clean environment (lib.tests.processes.cli_env): the second "terminal" has
no MM_DEBUG, exactly like a shell where the README's commands are typed. MM_DATA_DIR stands in
for the checkout's var/, so the test never writes into the checkout.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import urllib.request

import pytest

from mailmarketer.cli import local_env_path
from mailmarketer.lib.datafiles import DEFAULT_DATA_DIR
from mailmarketer.lib.tests.processes import (
    MAILMARKETER,
    cli_env,
    free_port,
    run_cli,
    stop,
    wait_for,
)
from mailmarketer.web.management.commands.run import LOCAL_ENV_TEXT
from mailmarketer.web.management.commands.run import Command as RunCommand

README_PASSWORD = "correct horse battery staple 1\n"


def _fresh_shell(data_dir) -> dict[str, str]:
    env = cli_env(None, MM_DATA_DIR=str(data_dir))
    assert "MM_DEBUG" not in env
    return env


def test_it_finds_the_data_directorys_env_file(tmp_path):
    assert local_env_path({}) == DEFAULT_DATA_DIR / ".env"
    assert local_env_path({"MM_DATA_DIR": str(tmp_path)}) == tmp_path.resolve() / ".env"


@pytest.mark.slow
def test_it_lets_the_readmes_commands_run_in_a_second_terminal_after_make_run(tmp_path):
    data = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    before = run_cli("token", "list", "--workspace=acme", env=_fresh_shell(data), cwd=tmp_path)
    assert before.returncode == 2 and "MM_SECRET_KEY" in before.stderr

    log = tmp_path / "run.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [MAILMARKETER, "run", "--bind", f"127.0.0.1:{port}"],
            env=cli_env(data),  # what `make run` gives it: MM_DEBUG=true
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "is running at" in log.read_text(), 60, what="the server to start")
        assert (data / ".env").read_text().splitlines()[-1] == "MM_DEBUG=true"
        assert (data / ".env").stat().st_mode & 0o777 == 0o600

        shell = _fresh_shell(data)
        (tmp_path / "pw.txt").write_text(README_PASSWORD)
        created = run_cli(
            *["createuser", "--email", "ann@example.com", "--workspace", "acme", "--role", "owner"],
            "--password-file",
            "pw.txt",
            env=shell,
            cwd=tmp_path,
        )
        assert created.returncode == 0, created.stderr
        made = run_cli(
            *["token", "create", "--workspace", "acme", "--role", "marketer", "--name"],
            "CRM sync",
            env=shell,
            cwd=tmp_path,
        )
        assert made.returncode == 0, made.stderr
        request = urllib.request.Request(
            f"{base}/api/v1/me", headers={"Authorization": f"Bearer {made.stdout.strip()}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["token"]["name"] == "CRM sync"

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=20) == 0, log.read_text()
    finally:
        stop(server)


def test_it_writes_the_file_once_and_keeps_the_operators_edits(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    command = RunCommand(stdout=io.StringIO())
    command.remember_local_settings()
    assert (tmp_path / ".env").read_text() == LOCAL_ENV_TEXT
    (tmp_path / ".env").write_text("# mine\nMM_DEBUG=false\n")
    command.remember_local_settings()
    assert (tmp_path / ".env").read_text() == "# mine\nMM_DEBUG=false\n"


@pytest.mark.slow
def test_the_environment_wins_over_the_file(tmp_path):
    data = tmp_path / "var"
    data.mkdir()
    (data / ".env").write_text("# mine\nMM_DEBUG=false\n")
    shell = _fresh_shell(data)
    refused = run_cli("token", "list", "--workspace=acme", env=shell, cwd=tmp_path)
    assert refused.returncode == 2 and "MM_SECRET_KEY" in refused.stderr

    shell["MM_DEBUG"] = "true"
    migrated = run_cli("migrate", env=shell, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
