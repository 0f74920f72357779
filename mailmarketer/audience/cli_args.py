"""The arguments of `import`, shared by the management command and the `mailmarketer` command
line (mailmarketer/cli.py), so both accept exactly the same options and `--help` works before
any configuration is read."""

from __future__ import annotations


def import_arguments(parser) -> None:
    parser.add_argument(
        "file",
        metavar="FILE",
        help="a CSV file with a header line: .csv, .csv.gz, or a .zip "
        "holding one CSV (UTF-8 or Latin-1; comma, semicolon or tab)",
    )
    parser.add_argument("--workspace", required=True, metavar="SLUG")
    parser.add_argument(
        "--list",
        dest="lists",
        action="append",
        default=[],
        metavar="SLUG",
        help="a list to subscribe people to; repeat for several (subscribe mode needs one)",
    )
    parser.add_argument(
        "--mode",
        choices=("subscribe", "update", "blocklist"),
        default="subscribe",
        help="subscribe: add people and subscribe them (the default); update: change existing "
        "subscribers' name and attributes; blocklist: blocklist the addresses",
    )
    parser.add_argument(
        "--confirmed",
        action="store_true",
        help="subscribe as confirmed (you hold their consent); needs --notice-text",
    )
    parser.add_argument(
        "--notice-text",
        default="",
        metavar="TEXT",
        help="the consent notice the people agreed to, kept with each consent record",
    )
    parser.add_argument(
        "--email-column",
        metavar="COLUMN",
        help="header name or number (from 1) of the email column (default: found by its name)",
    )
    parser.add_argument(
        "--name-column", metavar="COLUMN", help="header name or number of the name column"
    )
    parser.add_argument(
        "--attributes",
        choices=("merge", "overwrite"),
        default="merge",
        help="update mode: merge the file's attributes into the stored ones, or replace them",
    )


COMMANDS = {
    "import": ("import subscribers from a CSV file, showing progress", import_arguments),
}
