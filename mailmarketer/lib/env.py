"""Strict readers for settings that come from the environment.

Each one names the variable in its error, so a typo stops start-up with a message that says what
to fix, instead of a default silently taking over. Booleans accept only true/false/1/0 (the
healthchecks habit: "yes-ish" values are refused, because `MM_DEBUG=no` meaning True would be a
disaster). Any `NAME` may instead be given as `NAME_FILE`, a path whose contents are the value,
for secrets mounted as files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit


class ConfigError(Exception):
    """A setting from the environment is missing or malformed; the message names it."""

    def __init__(self, name: str, problem: str):
        self.name = name
        super().__init__(f"{name}: {problem}")


_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def raw(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The value of NAME, or the contents of the file NAME_FILE points at, or None."""
    env = os.environ if env is None else env
    value = env.get(name)
    file_name = env.get(f"{name}_FILE")
    if value is not None and file_name is not None:
        raise ConfigError(name, f"set either {name} or {name}_FILE, not both")
    if file_name is not None:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE", f"cannot read {file_name!r}: {exc.strerror}") from exc
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str | None = None, env: Mapping[str, str] | None = None):
    value = raw(name, env)
    return default if value is None else value


def env_bool(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    value = raw(name, env)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, f"expected true or false, got {value!r}")


def env_int(
    name: str,
    default: int,
    env: Mapping[str, str] | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = raw(name, env)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(name, f"expected a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ConfigError(name, f"must be at most {maximum}, got {number}")
    return number


def env_list(name: str, default: list[str], env: Mapping[str, str] | None = None) -> list[str]:
    value = raw(name, env)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ConfigError(name, f"empty item in comma-separated list {value!r}")
    return items


def env_url(
    name: str,
    default: str | None,
    schemes: tuple[str, ...],
    env: Mapping[str, str] | None = None,
) -> str | None:
    value = raw(name, env)
    if value is None:
        return default
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ConfigError(name, f"must start with one of {allowed}; got {value!r}")
    if parts.scheme != "sqlite" and not parts.hostname:
        raise ConfigError(name, f"has no host name: {value!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(name, f"has an invalid port: {value!r}") from None
    return value


def env_path(name: str, default: Path, env: Mapping[str, str] | None = None) -> Path:
    value = raw(name, env)
    return default if value is None else Path(value).expanduser().resolve()
