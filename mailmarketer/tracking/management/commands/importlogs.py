"""`mailmarketer importlogs FILE... --site S [--format F]`: access logs into website hits.

Progress on standard error (lines, rate, how far through the file); a summary on standard
output: lines, stored, duplicates (already imported), bots, static assets, bad lines with the
numbers of the first ones. Exit status 1 when a file cannot be read or the format is unknown;
bad lines do not make it fail (they are reported, never stored)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from mailmarketer.tracking.cli_args import COMMANDS, importlogs_arguments
from mailmarketer.tracking.logs import STATIC_EXTENSIONS, FormatError, Importer
from mailmarketer.tracking.models_web import Site


def find_site(ident: str, workspace: str | None) -> Site:
    sites = Site.objects.all()
    if workspace:
        sites = sites.filter(workspace__slug=workspace)
    query = Q(key=ident) | Q(domain=ident.lower())
    if ident.isdigit():
        query |= Q(pk=int(ident))
    found = list(sites.filter(query)[:2])
    if not found:
        raise CommandError(f"--site {ident!r}: no such site (give its id, key or domain)")
    if len(found) > 1:
        raise CommandError(f"--site {ident!r}: several workspaces have it; add --workspace")
    return found[0]


class Command(BaseCommand):
    help = COMMANDS["importlogs"][0]

    def add_arguments(self, parser):
        importlogs_arguments(parser)

    def handle(self, *args, **options):
        site = find_site(options["site"], options.get("workspace"))
        paths = [Path(f) for f in options["files"]]
        for path in paths:
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
        static = STATIC_EXTENSIONS
        if options.get("static_ext") is not None:
            static = [e.strip() for e in options["static_ext"].split(",") if e.strip()]
        started = time.monotonic()
        last = [0.0]

        def progress(name, lines, done, size):
            now = time.monotonic()
            if now - last[0] < 1 and done < size:
                return
            last[0] = now
            rate = lines / max(now - started, 1e-6)
            share = f"{100 * done / size:5.1f}%" if size else ""
            sys.stderr.write(f"\r{name}: {share} {lines:,} lines, {rate:,.0f} lines/s ")
            sys.stderr.flush()

        try:
            importer = Importer(
                site,
                options["format"],
                static_extensions=static,
                progress=None if options.get("quiet") else progress,
                overlap=options.get("overlap", True),
            )
        except FormatError as exc:
            raise CommandError(f"--format: {exc}") from exc
        try:
            totals = importer.run(paths)
        except OSError as exc:
            raise CommandError(f"cannot read the log: {exc}") from exc
        if not options.get("quiet"):
            sys.stderr.write("\n")
        elapsed = time.monotonic() - started
        summary = totals.summary()
        self.stdout.write(
            f"{summary['lines']:,} lines in {elapsed:.1f} s "
            f"({summary['lines'] / max(elapsed, 1e-6):,.0f} lines/s): "
            f"{summary['stored']:,} stored, {summary['duplicates']:,} already imported, "
            f"{summary['bots']:,} bots, {summary['static']:,} static assets, "
            f"{summary['bad']:,} bad lines"
        )
        if totals.bad_lines:
            listed = ", ".join(f"{name}:{number}" for name, number in totals.bad_lines)
            more = " ..." if totals.bad > len(totals.bad_lines) else ""
            self.stdout.write(f"bad lines: {listed}{more}")
