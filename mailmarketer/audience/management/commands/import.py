"""`mailmarketer import FILE --workspace W --list SLUG`: a subscriber import in the foreground.

The same job the worker runs (importing.jobs.run_import), with a progress bar on standard error
(rows, rate, time left) and a summary on standard output naming the error report. Exit status 1
when the file cannot be read (nothing is imported then) or the import fails; rows that were
skipped do not make it fail: they are in the report.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.cli_args import COMMANDS, import_arguments
from mailmarketer.audience.importing import files, jobs
from mailmarketer.audience.importing.mapping import mapping_for
from mailmarketer.audience.importing.pipeline import REASONS
from mailmarketer.audience.importing.queries import import_progress, preview_of
from mailmarketer.audience.models import Import


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressBar:
    """Redrawn in place on a terminal; on anything else, a line every `every` seconds."""

    WIDTH = 30

    def __init__(self, stream, *, every: float = 10.0, clock=time.monotonic):
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.every = every
        self.clock = clock
        self.last = None
        self.drawn = False

    def line(self, imp: Import) -> str:
        p = import_progress(imp)
        if p["phase"] == "checking":
            return f"checking the file (about {p['rows_total']:,} rows)…"
        filled = int(self.WIDTH * p["percent"] / 100)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        rate = f"{p['rate']:,.0f} rows/s" if p["rate"] else "- rows/s"
        return (
            f"[{bar}] {p['percent']:5.1f}%  {p['rows_done']:,}/{p['rows_total']:,} rows  "
            f"{rate}  ETA {_duration(p['eta_seconds'])}  skipped {p['skipped']:,}"
        )

    def update(self, imp: Import) -> None:
        now = self.clock()
        if self.tty:
            self.stream.write("\r\033[K" + self.line(imp))
            self.stream.flush()
            self.drawn = True
        elif self.last is None or now - self.last >= self.every:
            self.stream.write(self.line(imp) + "\n")
            self.last = now

    def finish(self, imp: Import | None = None) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        elif not self.tty and imp is not None:
            self.stream.write(self.line(imp) + "\n")


def summary(imp: Import) -> list[str]:
    lines = [
        f"Import {imp.pk} {imp.get_status_display().lower()}: {imp.rows_done:,} rows, "
        f"{imp.rows_created:,} created, {imp.rows_updated:,} updated, "
        f"{imp.rows_unchanged:,} unchanged, {imp.rows_skipped:,} skipped."
    ]
    if imp.skipped_reasons:
        reasons = sorted(imp.skipped_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append(
            "Skipped: " + ", ".join(f"{REASONS.get(k, k)} {v:,}" for k, v in reasons) + "."
        )
    if imp.rows_skipped:
        lines.append(f"Error report (line, reason, the row): {files.report_path(imp.pk)}")
    return lines


class Command(BaseCommand):
    help = COMMANDS["import"][0]

    def add_arguments(self, parser):
        import_arguments(parser)

    def handle(self, *, file, workspace, lists, mode, confirmed, notice_text, **options):
        ws = Workspace.objects.filter(slug=workspace).first()
        if ws is None:
            raise CommandError(f"there is no workspace {workspace!r}")
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        actor = Actor.system("cli")
        try:
            imp = jobs.do_create_import(
                ws,
                file=path,
                original_name=path.name,
                mode=mode,
                lists=lists,
                confirmed=confirmed,
                notice_text=notice_text,
                attribute_mode=options["attributes"],
                actor=actor,
            )
        except ActionError as exc:
            raise CommandError(f"{path.name}: {exc}") from None
        try:
            preview = preview_of(imp)
            mapping = mapping_for(
                imp.header,
                preview.rows if preview else [],
                email=options.get("email_column"),
                name=options.get("name_column"),
            )
            imp = jobs.do_start_import(imp, mapping=mapping, actor=actor, enqueue=False)
        except ActionError as exc:
            jobs.do_delete_import(imp, actor=actor)
            raise CommandError(f"{path.name}: {exc}") from None

        columns = [f"email = {imp.header[mapping.email]!r}"]
        for role in ("name", "first_name", "last_name", "attributes_json"):
            column = getattr(mapping, role)
            if column is not None:
                columns.append(f"{role} = {imp.header[column]!r}")
        if mapping.attributes:
            columns.append("attributes: " + ", ".join(a.name for a in mapping.attributes))
        described = import_progress(imp)
        self.stderr.write(
            f"Importing {path.name} into {ws.slug} ({imp.get_mode_display().lower()}): "
            f"{described['encoding']}, {described['delimiter']}-separated; " + "; ".join(columns),
            style_func=str,
        )
        # The bar writes "\r" redraws itself, so it takes the stream under Django's wrapper
        # (which would add a newline and colour each write).
        bar = ProgressBar(getattr(self.stderr, "_out", self.stderr))
        try:
            imp = jobs.run_import(imp.pk, on_progress=bar.update)
        except KeyboardInterrupt:
            bar.finish()
            imp = jobs.record_interruption(imp.pk)
            raise CommandError(f"import {imp.pk}: {imp.error}") from None
        bar.finish(imp)
        for line in summary(imp):
            self.stdout.write(line)
        if imp.status == Import.Status.FAILED:
            raise CommandError(f"{path.name}: {imp.error}")
