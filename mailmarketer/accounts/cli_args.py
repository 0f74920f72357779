"""The arguments of the commands in accounts (createuser, token, rotatekey, genkey), shared by the
management commands and the `mailmarketer` command line (mailmarketer/cli.py), so both accept
exactly the same options and `--help` works before any configuration is read."""

from __future__ import annotations


def createuser_arguments(parser) -> None:
    parser.add_argument("--email", required=True, help="the staff member's email (their login)")
    parser.add_argument(
        "--workspace",
        required=True,
        metavar="SLUG",
        help="workspace slug; created (named after the slug) when it does not exist",
    )
    parser.add_argument("--role", required=True, help=_roles_help())
    parser.add_argument("--name", default="", help="display name")
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the password from FILE ('-' for standard input). Without it the password "
        "is asked for when standard input is a terminal; otherwise the user gets no password "
        "and sets one with the password-reset link",
    )


def _roles_help() -> str:
    # permissions.py needs no configuration to import, so the help can list the real roles.
    from mailmarketer.accounts.permissions import Role

    return "one of: " + ", ".join(Role.values)


def token_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create a token and print it (only the token, on standard output)",
        description="Create an API token. Only the token is printed on standard output, so "
        "TOKEN=$(mailmarketer token create ...) works; it is shown this once and stored hashed.",
    )
    create.add_argument("--workspace", required=True, metavar="SLUG")
    create.add_argument("--role", required=True, help=_roles_help())
    create.add_argument("--name", required=True, help="what the token is for")
    listing = actions.add_parser("list", help="list a workspace's tokens")
    listing.add_argument("--workspace", required=True, metavar="SLUG")
    revoke = actions.add_parser("revoke", help="revoke a token by its prefix")
    revoke.add_argument("--workspace", required=True, metavar="SLUG")
    revoke.add_argument(
        "--prefix", required=True, help="the token's prefix, as `token list` shows it"
    )


def rotatekey_arguments(parser) -> None:
    parser.add_argument(
        "--generate",
        action="store_true",
        help="for the embedded default only (no MM_ENCRYPTION_KEY set): generate a new key "
        "into the data directory, re-encrypt every secret under it and drop the old key. "
        "Stop the web and worker processes first",
    )


def genkey_arguments(parser) -> None:
    """genkey takes no arguments."""


COMMANDS = {
    "createuser": ("create a staff user and give them a role in a workspace", createuser_arguments),
    "token": ("create, list and revoke API tokens", token_arguments),
    "rotatekey": ("re-encrypt every secret under the primary encryption key", rotatekey_arguments),
    "genkey": ("print a new encryption key (for MM_ENCRYPTION_KEY)", genkey_arguments),
}
