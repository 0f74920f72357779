"""All settings, in one file, from the environment (see docs/settings.md and .env.example).

A bare checkout runs on SQLite under var/ with no configuration (with MM_DEBUG=true, which
`make run` sets). A malformed value stops start-up with an error naming the variable.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet

from mailmarketer.lib.datafiles import DEFAULT_DATA_DIR, private_dir, private_sqlite
from mailmarketer.lib.env import (
    ConfigError,
    env_bool,
    env_int,
    env_list,
    env_path,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BASE_DIR.parent

DEBUG = env_bool("MM_DEBUG", False)
DATA_DIR = env_path("MM_DATA_DIR", DEFAULT_DATA_DIR)
# People's data lives under it (database, imports, outbox, keys): the service's user only.
private_dir(DATA_DIR)
OUTBOX_DIR = DATA_DIR / "outbox"

# /metrics (web/metrics.py) answers only with `Authorization: Bearer <MM_METRICS_TOKEN>`; unset,
# it is not there at all. The processes of one host share their counters through files in
# METRICS_DIR (prometheus_client's multiprocess mode reads the variable when it is imported, so
# it is set here, before anything imports it).
METRICS_TOKEN = env_str("MM_METRICS_TOKEN")
METRICS_DIR = DATA_DIR / "metrics"
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(private_dir(METRICS_DIR)))


def _key_file(path: Path, make) -> str:
    """Read a generated key from the data directory, creating it (mode 0600) the first time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = make()
        fd = path.open("x")  # fails if another process created it meanwhile
        path.chmod(0o600)
        with fd:
            fd.write(value + "\n")
        return value
    except FileExistsError:
        return path.read_text().strip()


SECRET_KEY = env_str("MM_SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ConfigError(
            "MM_SECRET_KEY",
            "is required (a long random string) unless MM_DEBUG=true; refusing to start",
        )
    SECRET_KEY = _key_file(DATA_DIR / "secret.key", lambda: secrets.token_urlsafe(50))
elif len(SECRET_KEY) < 32 and not DEBUG:
    raise ConfigError("MM_SECRET_KEY", "is too short: use at least 32 random characters")

# Old keys still accepted when checking signatures (sessions, unsubscribe links already sent),
# so the secret key can be rotated without breaking every link in every inbox.
SECRET_KEY_FALLBACKS = env_list("MM_SECRET_KEY_FALLBACKS", [])

BASE_URL = env_url("MM_BASE_URL", "http://127.0.0.1:8000", ("http", "https")).rstrip("/")
_base = urlsplit(BASE_URL)
HTTPS = _base.scheme == "https"

DATABASE_URL = env_url(
    "MM_DATABASE_URL",
    f"sqlite:///{DATA_DIR / 'mailmarketer.sqlite3'}",
    ("sqlite", "postgres", "postgresql"),
)
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
except ValueError as exc:  # pragma: no cover - dj_database_url's own message is clear
    raise ConfigError("MM_DATABASE_URL", str(exc)) from exc
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE makes a write transaction take the
    # write lock at BEGIN, so two processes never deadlock upgrading read locks (the classic
    # "database is locked" surprise); the busy timeout waits for the lock instead of failing.
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
        ),
    }
    if _db["NAME"] and _db["NAME"] != ":memory:":
        private_sqlite(Path(_db["NAME"]))
    _db["TEST"] = {"NAME": env_str("MM_TEST_SQLITE_NAME")}
    # Kept between a worker's rounds too: closing checkpoints the WAL, twice a round (issue 13).
    _db["CONN_MAX_AGE"] = env_int("MM_DB_CONN_MAX_AGE", 60, minimum=0)
else:
    _db["CONN_MAX_AGE"] = env_int("MM_DB_CONN_MAX_AGE", 60, minimum=0)
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {})["connect_timeout"] = 5
    # Each test run makes its own throwaway database, so parallel runs never collide.
    _db["TEST"] = {"NAME": env_str("MM_TEST_PG_NAME")}
DATABASES = {"default": _db}
IS_SQLITE = _db["ENGINE"].endswith("sqlite3")

_enc = env_list("MM_ENCRYPTION_KEY", [])
if not _enc:
    if not IS_SQLITE:
        raise ConfigError(
            "MM_ENCRYPTION_KEY",
            "is required with PostgreSQL: every web and worker process must share the same key "
            "(generate one with `mailmarketer genkey`)",
        )
    # One key a line, the first one primary: `rotatekey --generate` writes "new, old" while it
    # re-encrypts, so a crash half-way still leaves every secret readable.
    _enc = _key_file(DATA_DIR / "encryption.key", lambda: Fernet.generate_key().decode()).split()
for _key in _enc:
    try:
        Fernet(_key.encode())
    except (ValueError, TypeError):
        raise ConfigError(
            "MM_ENCRYPTION_KEY",
            "each comma-separated key must be 32 url-safe base64-encoded bytes "
            "(generate one with `mailmarketer genkey`)",
        ) from None
ENCRYPTION_KEYS = _enc
ENCRYPTION_KEY_FILE = DATA_DIR / "encryption.key"

ALLOWED_HOSTS = env_list(
    "MM_ALLOWED_HOSTS", [_base.hostname or "127.0.0.1", "127.0.0.1", "localhost"]
)
CSRF_TRUSTED_ORIGINS = [f"{_base.scheme}://{_base.netloc}"]

SMTP_URL = env_url("MM_SMTP_URL", None, ("smtp", "smtps", "smtp+starttls"))
TLS_CERT = env_str("MM_TLS_CERT")
TLS_KEY = env_str("MM_TLS_KEY")
if bool(TLS_CERT) != bool(TLS_KEY):
    raise ConfigError(
        "MM_TLS_CERT" if TLS_KEY else "MM_TLS_KEY", "set MM_TLS_CERT and MM_TLS_KEY together"
    )
for _name, _value in (("MM_TLS_CERT", TLS_CERT), ("MM_TLS_KEY", TLS_KEY)):
    if _value and not Path(_value).is_file():
        raise ConfigError(_name, f"no such file: {_value!r}")

DEFAULT_FROM_EMAIL = env_str("MM_DEFAULT_FROM_EMAIL", f"Mail Marketer <noreply@{_base.hostname}>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The domain our system mail's Message-IDs are made on.
MESSAGE_ID_DOMAIN = _base.hostname or "localhost"
WORKER_IDLE_SLEEP = env_int("MM_WORKER_IDLE_SLEEP_MS", 500, minimum=10, maximum=60000) / 1000
LOG_LEVEL = env_str("MM_LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR"):
    raise ConfigError("MM_LOG_LEVEL", f"expected DEBUG, INFO, WARNING or ERROR, got {LOG_LEVEL!r}")

# plain: one readable line a record; json: one JSON object a line with the request id and the
# workspace, and no personal data (lib/logs.py), for a log collector.
LOG_FORMAT = env_str("MM_LOG_FORMAT", "plain").lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ConfigError("MM_LOG_FORMAT", f"expected plain or json, got {LOG_FORMAT!r}")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "django_tasks",
    "django_tasks_db",
    "ninja",
    "mailmarketer.accounts",
    "mailmarketer.audience",
    "mailmarketer.signup",
    "mailmarketer.tracking",
    "mailmarketer.campaigns",
    "mailmarketer.delivery",
    "mailmarketer.web",
    "mailmarketer.api",
]

MIDDLEWARE = [
    "mailmarketer.lib.logs.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "mailmarketer.lib.http.ContentSecurityPolicyMiddleware",
    "mailmarketer.lib.http.PrivateByDefaultMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mailmarketer.urls"
WSGI_APPLICATION = "mailmarketer.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "mailmarketer.web.context.shell",
            ],
        },
    },
]

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "app-home"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    # Kept only so that a hash made by another hasher can still be checked and upgraded.
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_RESET_TIMEOUT = 60 * 60 * 2

# Failed logins are counted from the audit log, so the limit holds across every web process.
LOGIN_FAILURE_LIMIT = env_int("MM_LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_IP_LIMIT = env_int("MM_LOGIN_FAILURE_IP_LIMIT", 30, minimum=1)
LOGIN_FAILURE_WINDOW = env_int("MM_LOGIN_FAILURE_WINDOW_S", 900, minimum=1)
# Password-reset mails per address in the same window (more are silently not sent).
PASSWORD_RESET_LIMIT = 3
INVITATION_MAX_AGE = 7 * 24 * 3600
SETUP_LINK_MAX_AGE = 7 * 24 * 3600

OTP_TOTP_ISSUER = "Mail Marketer"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("MM_SESSION_AGE_S", 14 * 24 * 3600, minimum=300)
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = env_int("MM_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = False
    # Behind a TLS-terminating proxy, trust its X-Forwarded-Proto only when told to.
    if env_bool("MM_BEHIND_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
USE_X_FORWARDED_FOR = env_bool("MM_BEHIND_PROXY", False)
# benchmarks/signup_bench.py's limit: GET /bench/constant answers without the database.
BENCH_CONSTANT_VIEW = env_bool("MM_BENCH_CONSTANT_VIEW", False)

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every start without it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if SMTP_URL:
    _smtp = urlsplit(SMTP_URL)
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _smtp.hostname
    EMAIL_PORT = _smtp.port or (
        465 if _smtp.scheme == "smtps" else 587 if "starttls" in _smtp.scheme else 25
    )
    EMAIL_HOST_USER = _smtp.username or ""
    EMAIL_HOST_PASSWORD = _smtp.password or ""
    EMAIL_USE_SSL = _smtp.scheme == "smtps"
    EMAIL_USE_TLS = _smtp.scheme == "smtp+starttls"
    EMAIL_TIMEOUT = 30
else:
    EMAIL_BACKEND = "mailmarketer.lib.outbox.OutboxBackend"

# Delivery engine (see mailmarketer/delivery/engine.py and docs/delivery.md).
DELIVERY_BATCH = env_int("MM_DELIVERY_BATCH", 200, minimum=1, maximum=5000)
# Workers renew the leases of the rows they hold every third of this (engine.Heartbeat), so it
# bounds how long a killed worker's rows wait, not how long a batch may take.
DELIVERY_LEASE_S = env_int("MM_DELIVERY_LEASE_S", 10, minimum=1)
# A click this soon after its message was delivered is a link scanner's (tracking/mail.py).
TRACKING_SCANNER_WINDOW_S = env_int("MM_TRACKING_SCANNER_WINDOW_S", 10, minimum=0)
DELIVERY_RETRY_DEADLINE_S = env_int("MM_DELIVERY_RETRY_DEADLINE_S", 2 * 24 * 3600, minimum=60)
DELIVERY_MAX_CONSECUTIVE_FAILURES = env_int("MM_DELIVERY_MAX_CONSECUTIVE_FAILURES", 50, minimum=1)
DELIVERY_MAX_LEASE_EXPIRIES = env_int("MM_DELIVERY_MAX_LEASE_EXPIRIES", 3, minimum=1)
DELIVERY_PROBE_MAX_S = env_int("MM_DELIVERY_PROBE_MAX_S", 60, minimum=1)
DELIVERY_PLAN_CHUNK = 5000
# The domain of VERP return paths (bounces+<token>@domain); empty: the domain of the campaign's
# From address, which a relay accepts as a sender (the host of MM_BASE_URL may be an IP address,
# which is no valid address domain).
BOUNCE_DOMAIN = env_str("MM_BOUNCE_DOMAIN", "")
# The bounce receiver (`mailmarketer bouncer`, delivery/bounces/receiver.py): the domains whose
# bounces@ and bounces+<token>@ addresses it accepts (default: MM_BOUNCE_DOMAIN), the largest
# message it takes (a DSN returning a 10 MB message is rare; bigger ones are refused with 552)
# and how many messages one client host may hand it per minute.
BOUNCER_DOMAINS = env_list("MM_BOUNCER_DOMAINS", [BOUNCE_DOMAIN] if BOUNCE_DOMAIN else [])
BOUNCER_MAX_BYTES = env_int("MM_BOUNCER_MAX_BYTES", 10 * 1024 * 1024, minimum=10_000)
BOUNCER_RATE_PER_MINUTE = env_int("MM_BOUNCER_RATE_PER_MINUTE", 6000, minimum=1)
# Bounce mailboxes (IMAP, delivery/bounces/mailbox.py): how often each is read, and a CA bundle
# to trust besides the system's (empty: the system's store only).
BOUNCE_IMAP_INTERVAL_S = env_int("MM_BOUNCE_IMAP_INTERVAL_S", 60, minimum=5)
BOUNCE_IMAP_CA_FILE = env_str("MM_BOUNCE_IMAP_CA_FILE", "")

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

NINJA_PAGINATION_PER_PAGE = 50

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "mailmarketer.lib.logs.JsonFormatter"},
    },
    "filters": {"context": {"()": "mailmarketer.lib.logs.ContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Mailman's bounce detectors log every detector they run (INFO) and every one that
        # chokes on a malformed message (ERROR, with a traceback): hostile mail would fill the
        # log. delivery/bounces/classify.py records what it found on the Bounce row instead.
        "flufl.bounce": {"level": "CRITICAL"},
        # aiosmtpd (the bounce receiver) logs every SMTP command at INFO, recipients included:
        # personal data in the log for each bounce.
        "mail.log": {"level": "WARNING"},
    },
}
if LOG_FORMAT == "json":
    # gunicorn logs through the same handler (web.py hands it this dict); its access lines
    # (the client's address, the query string) give way to our request events. In plain mode
    # gunicorn keeps its own handlers, so nothing is logged twice.
    LOGGING["loggers"]["gunicorn.error"] = {
        "handlers": ["console"],
        "level": LOG_LEVEL,
        "propagate": False,
    }
    LOGGING["loggers"]["gunicorn.access"] = {"handlers": [], "propagate": False}

# REST API: requests per minute per token (api/throttling.py); counted per process unless CACHES
# points at a shared cache.
API_RATE_PER_MINUTE = env_int("MM_API_RATE_PER_MINUTE", 600, minimum=1)

# Subscriber imports: the largest upload accepted (uploads above Django's 2.5 MB in-memory limit
# stream to a temporary file, never into memory). Compressed files count at their compressed size.
IMPORT_MAX_BYTES = env_int("MM_IMPORT_MAX_MB", 200, minimum=1) * 1024 * 1024
# How long an import's files that hold people's data (the error report, a failed import's
# upload kept for resuming) stay after the import ended; the worker removes them then.
IMPORT_FILE_RETENTION = timedelta(days=env_int("MM_IMPORT_FILE_RETENTION_DAYS", 7, minimum=1))
# Resources (lead magnets, docs/resources.md): the largest file staff may upload. Uploads above
# Django's in-memory limit stream to a temporary file; this bounds the data directory's growth.
RESOURCE_MAX_BYTES = env_int("MM_RESOURCE_MAX_MB", 25, minimum=1) * 1024 * 1024
# Request bodies read into memory (not file uploads, which stream to disk): room for the API's
# bulk add of 10,000 people per call (Django's default of 2.5 MB fits only ~250 bytes each).
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024

# Website tracking (tracking/views_web.py): hits per IP address per minute at /t/e, counted per
# web process; one address over it is refused (counted apart) without slowing anyone else.
TRACKING_IP_HITS_PER_MINUTE = env_int("MM_TRACKING_IP_HITS_PER_MINUTE", 600, minimum=1)
# Where hits go when the database cannot take them (tracking/spool.py); the worker replays it.
TRACKING_SPOOL_DIR = DATA_DIR / "spool"
# The tracking edge answers a hit once its spool line is written to the kernel (a web process
# killed right after loses nothing; the line is fdatasync'd within 50 ms); true: only once it
# is fdatasync'd, so a power loss loses nothing answered either, for ~20% more CPU per hit
# (docs/tracking.md, "The spool"). Sign-ups always wait for the sync.
TRACKING_SYNC_BEFORE_ANSWER = env_bool("MM_TRACKING_SYNC_BEFORE_ANSWER", False)
# Seconds a day's roll-up waits after being marked (tracking/rollup.py): a busy day is rebuilt
# at most this often.
TRACKING_ROLLUP_DELAY = env_int("MM_TRACKING_ROLLUP_DELAY", 60, minimum=0)
# Days email open and click events are kept (tracking/mail_retention.py); the campaign reports'
# roll-ups stay. About 13 months by default, so a year can be compared with the last.
TRACKING_EMAIL_EVENT_DAYS = env_int("MM_TRACKING_EMAIL_EVENT_DAYS", 395, minimum=1)

# The help pages at /app/help/ render the Markdown files of this directory (web/help.py): the
# repository's docs/, which mailmarketer/web/docs links to and the wheel carries.
DOCS_DIR = env_path("MM_DOCS_DIR", BASE_DIR / "web" / "docs")

# Campaign images (campaigns/images.py): uploaded pictures, one file per content hash, served
# at /i/<workspace>/<sha256>.<ext>. Several web hosts must share this directory (a volume).
IMAGES_DIR = DATA_DIR / "images"

# Staff uploads of access logs (tracking/uploads.py), in megabytes as stored (a .gz counts
# compressed).
TRACKING_LOG_UPLOAD_MAX_BYTES = env_int("MM_TRACKING_LOG_UPLOAD_MAX_MB", 1024, minimum=1) * 1024**2
