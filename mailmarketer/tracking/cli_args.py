"""The arguments of `importlogs`, shared by the management command and the `mailmarketer`
command line (mailmarketer/cli.py)."""

from __future__ import annotations


def importlogs_arguments(parser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="access log files, plain or gzip (.gz)"
    )
    parser.add_argument(
        "--site",
        required=True,
        metavar="SITE",
        help="the site the hits belong to: its id, its snippet key, or its domain",
    )
    parser.add_argument(
        "--workspace", metavar="SLUG", help="the workspace, when --site is a domain several have"
    )
    parser.add_argument(
        "--format",
        default="combined",
        metavar="FORMAT",
        help="combined (the default), common, nginx-json, or an nginx log_format string such "
        "as '$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent'",
    )
    parser.add_argument(
        "--static-ext",
        default=None,
        metavar="EXT,EXT",
        help="extensions counted apart as static assets (default: css,js,png,jpg,svg,woff2,...)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on standard error")
    parser.add_argument(
        "--no-overlap",
        dest="overlap",
        action="store_false",
        help="write in the parsing thread instead of a second one (slower; for debugging)",
    )


COMMANDS = {
    "importlogs": (
        "import web server access logs (Apache/nginx) as website hits",
        importlogs_arguments,
    ),
}
