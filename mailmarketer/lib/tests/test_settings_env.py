"""Start-up refuses insecure or malformed configuration, naming the variable.

Each case imports the real settings module in a fresh interpreter with a controlled environment,
because settings are read once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mailmarketer.lib.env import ConfigError, env_bool, env_int, env_list, env_url

GOOD_KEY = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdDE="


def load_settings(tmp_path, **env):
    base = {
        "PATH": os.environ.get("PATH", ""),
        "MM_DATA_DIR": str(tmp_path),
    }
    base.update(env)
    code = (
        "import mailmarketer.settings as s;"
        "print('HTTPS', s.HTTPS, 'SSL', getattr(s, 'SECURE_SSL_REDIRECT', False),"
        " 'HSTS', getattr(s, 'SECURE_HSTS_SECONDS', 0),"
        " 'SECURE_COOKIE', getattr(s, 'SESSION_COOKIE_SECURE', False), 'DEBUG', s.DEBUG)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=base, capture_output=True, text=True, timeout=60
    )


def test_it_refuses_to_start_without_a_secret_key_unless_debug(tmp_path):
    result = load_settings(tmp_path)
    assert result.returncode != 0
    assert "MM_SECRET_KEY" in result.stderr
    assert "refusing to start" in result.stderr


def test_it_starts_in_debug_with_a_generated_secret_key(tmp_path):
    result = load_settings(tmp_path, MM_DEBUG="true")
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "secret.key"
    assert key_file.exists()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_it_refuses_a_short_secret_key(tmp_path):
    result = load_settings(tmp_path, MM_SECRET_KEY="short")
    assert result.returncode != 0
    assert "MM_SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MM_DEBUG", "yes"),
        ("MM_DATABASE_URL", "mysql://db/x"),
        ("MM_BASE_URL", "ftp://example.com"),
        ("MM_BASE_URL", "https://"),
        ("MM_SMTP_URL", "http://relay"),
        ("MM_SMTP_URL", "smtp://relay:notaport"),
        ("MM_LOGIN_FAILURE_LIMIT", "five"),
        ("MM_ALLOWED_HOSTS", "a,,b"),
        ("MM_TLS_CERT", "/nonexistent/cert.pem"),
        ("MM_ENCRYPTION_KEY", "not-a-fernet-key"),
    ],
)
def test_it_names_the_malformed_variable(tmp_path, name, value):
    env = {"MM_DEBUG": "true", name: value}
    if name == "MM_DEBUG":
        env = {name: value, "MM_SECRET_KEY": "x" * 40}
    if name == "MM_TLS_CERT":
        env["MM_TLS_KEY"] = "/nonexistent/key.pem"
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert name in result.stderr


def test_it_requires_a_shared_encryption_key_with_postgresql(tmp_path):
    result = load_settings(
        tmp_path, MM_DEBUG="true", MM_DATABASE_URL="postgres://postgres@127.0.0.1:5432/x"
    )
    assert result.returncode != 0
    assert "MM_ENCRYPTION_KEY" in result.stderr


def test_it_turns_on_https_protections_with_an_https_base_url(tmp_path):
    result = load_settings(tmp_path, MM_SECRET_KEY="k" * 40, MM_BASE_URL="https://mail.example.com")
    assert result.returncode == 0, result.stderr
    assert "HTTPS True SSL True HSTS 31536000 SECURE_COOKIE True DEBUG False" in result.stdout


def test_it_keeps_plain_http_without_https_protections(tmp_path):
    result = load_settings(tmp_path, MM_SECRET_KEY="k" * 40)
    assert result.returncode == 0, result.stderr
    assert "HTTPS False SSL False HSTS 0 SECURE_COOKIE False" in result.stdout


def test_it_reads_secrets_from_file_variables(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s" * 40 + "\n")
    result = load_settings(tmp_path, MM_SECRET_KEY_FILE=str(secret))
    assert result.returncode == 0, result.stderr


def test_it_refuses_both_a_value_and_a_file():
    with pytest.raises(ConfigError, match="MM_X"):
        env_bool("MM_X", False, env={"MM_X": "true", "MM_X_FILE": "/tmp/x"})


def test_it_parses_strict_booleans():
    assert env_bool("B", False, env={"B": "TRUE"}) is True
    assert env_bool("B", True, env={"B": "0"}) is False
    assert env_bool("B", True, env={}) is True
    with pytest.raises(ConfigError, match="B: expected true or false"):
        env_bool("B", False, env={"B": "on"})


def test_it_checks_integer_bounds():
    assert env_int("N", 3, env={"N": "7"}, minimum=1) == 7
    with pytest.raises(ConfigError, match="N: must be at least 1"):
        env_int("N", 3, env={"N": "0"}, minimum=1)


def test_it_splits_lists_and_checks_urls():
    assert env_list("L", [], env={"L": "a, b"}) == ["a", "b"]
    assert env_url("U", None, ("https",), env={"U": "https://x.test"}) == "https://x.test"
    with pytest.raises(ConfigError, match="U: has no host name"):
        env_url("U", None, ("https",), env={"U": "https:///path"})
