"""`mailmarketer import`: the import in the foreground, its progress bar and summary, and exit
status 1 for a file that cannot be read."""

from __future__ import annotations

import importlib
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mailmarketer.audience.importing import files
from mailmarketer.audience.models import ConsentRecord, Import, Subscriber
from mailmarketer.lib.tests.processes import cli_env, run_cli

from .import_helpers import import_data_dir, start, write  # noqa: F401

# "import" is a keyword, so the command's module is reached by name.
ProgressBar = importlib.import_module(
    "mailmarketer.audience.management.commands.import"
).ProgressBar


def call(*args, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_it_imports_in_the_foreground_and_names_the_error_report(personas, news, tmp_path):
    path = write(tmp_path, "people.csv", "Mail;Who\nann@example.com;Ann\nnot-an-address;X\n")

    out, err = call(
        str(path),
        workspace="acme",
        lists=["news"],
        confirmed=True,
        notice_text="Send me the news.",
        name_column="Who",
    )

    imp = Import.objects.get()
    assert out.splitlines() == [
        f"Import {imp.pk} finished: 2 rows, 1 created, 0 updated, 0 unchanged, 1 skipped.",
        "Skipped: invalid email address 1.",
        f"Error report (line, reason, the row): {files.report_path(imp.pk)}",
    ]
    assert err.splitlines()[0] == (
        "Importing people.csv into acme (add and subscribe to lists): UTF-8, "
        "semicolon-separated; email = 'Mail'; name = 'Who'"
    )
    assert err.splitlines()[-1].startswith("[##############################] 100.0%  2/2 rows")
    assert Subscriber.objects.get().name == "Ann"
    record = ConsentRecord.objects.get()
    assert (record.notice.text, record.source_id) == ("Send me the news.", str(imp.pk))


def test_it_exits_with_an_error_for_a_file_it_cannot_read(personas, news, tmp_path):
    path = write(tmp_path, "photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00")

    with pytest.raises(CommandError) as info:
        call(str(path), workspace="acme", lists=["news"])

    assert info.value.returncode == 1
    assert str(info.value) == (
        "photo.csv: this is not a CSV text file (it contains NUL bytes, as binary files and "
        "spreadsheets do): save it as CSV (UTF-8) and upload that"
    )
    assert not Import.objects.exists() and not Subscriber.objects.exists()


def test_it_exits_with_an_error_without_an_email_column(personas, news, tmp_path):
    path = write(tmp_path, "names.csv", "name\nAnn\n")

    with pytest.raises(CommandError, match="no email column: none of the columns"):
        call(str(path), workspace="acme", lists=["news"])
    with pytest.raises(CommandError, match="no email column 'mail': the file's columns are"):
        call(str(path), workspace="acme", lists=["news"], email_column="mail")

    assert not Import.objects.exists()  # the drafts are gone too


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workspace": "nowhere", "lists": ["news"]}, "there is no workspace 'nowhere'"),
        ({"workspace": "evil", "lists": ["news"]}, "there is no list 'news' in this workspace"),
        ({"workspace": "acme"}, "choose at least one list to subscribe people to"),
    ],
)
def test_it_names_what_is_wrong_with_the_options(personas, news, tmp_path, options, message):
    path = write(tmp_path, "p.csv", "email\na@example.com\n")

    with pytest.raises(CommandError, match=message):
        call(str(path), **options)


def test_it_draws_a_progress_bar_on_a_terminal(personas, news, tmp_path):
    imp = start(personas.acme, write(tmp_path, "p.csv", "email\na@example.com\nb@example.com\n"))
    Import.objects.filter(pk=imp.pk).update(status="running", rows_done=1, rows_total=4)
    imp.refresh_from_db()
    screen = Terminal()
    bar = ProgressBar(screen)

    bar.update(imp)
    imp.rows_total_exact = True
    bar.update(imp)
    bar.finish()

    first, second = screen.getvalue().split("\r\033[K")[1:]
    assert first == "checking the file (about 4 rows)…"
    assert second.startswith("[#######-----------------------]  25.0%  1/4 rows  ")
    assert " rows/s  ETA " in second and second.endswith("skipped 0\n")


@pytest.mark.slow
def test_it_runs_from_the_installed_command(tmp_path):
    env = cli_env(tmp_path / "var")
    assert run_cli("migrate", env=env, cwd=tmp_path, timeout=120).returncode == 0
    made = run_cli(
        "createuser",
        "--email",
        "o@acme.test",
        "--workspace",
        "acme",
        "--role",
        "owner",
        env=env,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    write(tmp_path, "block.csv", "email\nspam@example.com\n")
    write(tmp_path, "bad.csv", b"email\x00\n")

    good = run_cli(
        "import", "block.csv", "--workspace", "acme", "--mode", "blocklist", env=env, cwd=tmp_path
    )
    bad = run_cli(
        "import", "bad.csv", "--workspace", "acme", "--mode", "blocklist", env=env, cwd=tmp_path
    )

    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("Import 1 finished: 1 rows, 1 created,")
    assert bad.returncode == 1
    assert bad.stderr == (
        "mailmarketer import: error: bad.csv: this is not a CSV text file (it contains NUL "
        "bytes, as binary files and spreadsheets do): save it as CSV (UTF-8) and upload that\n"
    )
