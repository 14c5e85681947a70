"""Django settings: everything comes from the environment (django-environ, optional `.env`)."""

from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# Development-only placeholders. They are refused below unless DEBUG is on, so a
# production process can never start with a secret that is written in this file.
_DEV_SECRET_MARKER = "insecure-dev-only"
SECRET_KEY = env.str("SECRET_KEY", default=f"{_DEV_SECRET_MARKER}-django-secret-key")
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
APP_SERVER_SECRET_KEY = env.str(
    "APP_SERVER_SECRET_KEY", default=f"{_DEV_SECRET_MARKER}-app-server-jwt-secret"
)
HASH_KEY = env.str("HASH_KEY", default=f"{_DEV_SECRET_MARKER}-hash-key")

if not DEBUG:
    for _name in ("SECRET_KEY", "APP_SERVER_SECRET_KEY", "HASH_KEY"):
        _value = globals()[_name]
        if _DEV_SECRET_MARKER in _value or len(_value) < 32:
            raise ImproperlyConfigured(
                f"{_name} must be set to a real secret of at least 32 characters "
                "when DEBUG is off (see README.md, Configuration)."
            )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
# A larger request body is refused (400 JSON) before it is read. Django's default, 2.5 MB,
# holds any call log with a long transcript; the peer allows 50 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BODY_BYTES", default=2_621_440)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "import_export",
    "connector",
    "rules",
    "logs",
    "sscl",
]

MIDDLEWARE = [
    "config.middleware.ApiCorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

# App Connect's API paths run on this shorter chain (config/handlers.py): it authenticates
# with its own JWT and needs no session, CSRF, messages or admin history context.
API_MIDDLEWARE = [
    "config.middleware.ApiCorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# Persistent connections: connecting per request costs more than the whole query work
# of a lookup (../shared/perf.md).
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
# A health check costs a round trip per request; a broken connection is dropped after the
# request that finds it instead.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
# Gunicorn's worker class (config/gunicorn.conf.py sets it for its workers; elsewhere,
# Celery and management commands, plain threads). Under gevent, every request is a
# greenlet of one thread, so a connection per greenlet would be one per open client
# connection: gevent workers take theirs from a pool, and need PostgreSQL (a SQLite call
# blocks the whole worker, and a busy wait there would stall every request of it).
WEB_WORKER_CLASS = env.str("WEB_WORKER_CLASS", default="gthread")
if WEB_WORKER_CLASS not in ("gevent", "gthread"):
    raise ImproperlyConfigured("WEB_WORKER_CLASS must be gevent or gthread.")
_GREENLETS = WEB_WORKER_CLASS == "gevent"
if _GREENLETS and DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("gevent workers need PostgreSQL; on SQLite use WEB_WORKER_CLASS=gthread.")
# PostgreSQL: a psycopg connection pool per process (Django's OPTIONS["pool"]) of at most
# DB_POOL_MAX_SIZE connections. Under gevent workers (production's default on PostgreSQL)
# it is required, 40 by default: a request holds a connection for its milliseconds of SQL
# and gives it back before every CRM call (connector.db), so 40 serve hundreds of requests
# in flight. Under gthread workers, 0, the default, keeps one persistent connection per
# thread; a pool smaller than the threads of a process (WEB_THREADS) makes them give
# their connection back before every CRM call too, at the cost of a checkout after each
# CRM call, and a pool as large as the threads keeps connections for the whole request.
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=40 if _GREENLETS else 0)
WEB_THREADS = env.int("WEB_THREADS", default=40)  # as config/gunicorn.conf.py reads it
if DB_POOL_MAX_SIZE < 0:
    raise ImproperlyConfigured("DB_POOL_MAX_SIZE must be 0 (no pool) or a positive number.")
if _GREENLETS and not DB_POOL_MAX_SIZE:
    raise ImproperlyConfigured("gevent workers need a connection pool: DB_POOL_MAX_SIZE must be positive.")
_DB_POOLED = bool(DB_POOL_MAX_SIZE) and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    if DB_POOL_MAX_SIZE:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, DB_POOL_MAX_SIZE),
            "max_size": DB_POOL_MAX_SIZE,
            # a request waits this long for a free connection, then fails cleanly
            "timeout": env.float("DB_POOL_TIMEOUT_SECONDS", default=10.0),
        }
        # The pool keeps connections; Django must not also keep one per thread. A pooled
        # connection is checked when taken, without a round trip (connector/postgresql), so
        # one the server closed fails no request; CONN_HEALTH_CHECKS adds an empty query.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Parameters travel apart from the SQL, and psycopg prepares a statement once a
    # connection has run it DB_PREPARE_THRESHOLD times, so PostgreSQL neither parses nor
    # plans the hot queries again. Django turns preparing off unless asked; turned on, the
    # PostgreSQL backend's CPU per unknown-caller flow fell from 3.8 to 2.2 ms
    # (bench/profile.py). "off" turns it off, for poolers that cannot keep prepared
    # statements.
    prepare_threshold = env.str("DB_PREPARE_THRESHOLD", default="5").strip().lower()
    if prepare_threshold != "off" and not prepare_threshold.isdigit():
        raise ImproperlyConfigured("DB_PREPARE_THRESHOLD must be a whole number or 'off'.")
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("server_side_binding", True)
    options.setdefault("prepare_threshold", None if prepare_threshold == "off" else int(prepare_threshold))
    # Django's backend, with pooled connections checked when taken (connector/postgresql).
    DATABASES["default"]["ENGINE"] = "connector.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; the busy timeout makes writers queue
    # instead of failing with "database is locked"; IMMEDIATE takes the write lock at
    # BEGIN so two transactions never deadlock upgrading a read lock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Serve straight from the apps' static folders when collectstatic has not run (tests,
# the embedded default); production runs collectstatic first.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# django-fernet-encrypted-fields derives its Fernet keys from SECRET_KEY (and its
# fallbacks, for rotation) with this salt. A salt is not a secret.
SALT_KEY = ["appconnect-connector-credentials-v1"]

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

REST_FRAMEWORK = {
    "DEFAULT_PARSER_CLASSES": ["connector.api.parsers.NulFreeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "connector.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON without spaces, as Express's res.json sends it.
    "COMPACT_JSON": True,
    "UNICODE_JSON": True,
}

# /api/docs/ is for API users: descriptions come only from the texts given for the purpose
# (extend_schema, help_text, connector/api/schema.py), never from the developers' docstrings.
SPECTACULAR_SETTINGS = {
    "TITLE": "App Connect connector server",
    "DESCRIPTION": (
        "The HTTP API RingCentral App Connect's client calls to log calls and messages into a CRM. "
        "It answers as App Connect's own server does, and decides on the server what to do with "
        "callers the CRM does not know (the auto-logging rules, set by administrators).\n\n"
        "Log in first (POST /apiKeyLogin, or GET /oauth-callback for OAuth CRMs): the answer's "
        "jwtToken authenticates every other call, sent in the Authorization header after Bearer "
        "(or, for older clients, as the jwtToken query parameter). Bodies are JSON.\n\n"
        "Errors: invalid input is a 400 JSON naming each bad field (errors) with a message the "
        "client can show (returnMessage), and nothing is written; a missing or invalid JWT is a 400 "
        "in plain text (Please go to Settings and authorize CRM platform); a CRM session the CRM "
        "ended is a 401 (errorCode CRM_SESSION_REVOKED)."
    ),
    "VERSION": "0.1.0",
    "DISABLE_DOCSTRING_DESCRIPTIONS": True,
    # Bodies open on their fields, each with its description, rather than on a bare example.
    "SWAGGER_UI_SETTINGS": {"defaultModelRendering": "model", "defaultModelExpandDepth": 2},
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "TAGS": [
        {
            "name": "Server and platforms",
            "description": "Is the server up, and what each CRM platform offers.",
        },
        {
            "name": "Logging in to a CRM",
            "description": "Connect a user to their CRM and get the JWT for every other call.",
        },
        {"name": "Contacts", "description": "Find CRM contacts by number or name, and create them."},
        {
            "name": "Call logs",
            "description": "Log calls as CRM activities, check which are logged, and update them.",
        },
        {"name": "Message logs", "description": "Log SMS, MMS, fax and voicemail messages."},
        {
            "name": "Settings",
            "description": "The user's settings and the settings account administrators set for every "
            "user, the auto-logging rules among them.",
        },
    ],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "connector.api.schema.describe_enums",
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # PATCH /callLog is not a partial update: sessionId stays required.
    "COMPONENT_SPLIT_PATCH": False,
    "ENUM_NAME_OVERRIDES": {},
}

# App-specific settings, read through connector.conf.connector_settings.
_OUTBOUND_TIMEOUT = env.float("OUTBOUND_TIMEOUT_SECONDS", default=10.0)
CONNECTOR = {
    "PLATFORMS": {
        "builtin": "connector.crm.builtin.BuiltinCrmClient",
        # real CRMs: OAuth once their app is configured (README, "Connecting a CRM")
        "pipedrive": "connector.crm.pipedrive.PipedriveCrmClient",
        "hubspot": "connector.crm.hubspot.HubspotCrmClient",
        "clio": "connector.crm.clio.ClioCrmClient",
    },
    "DEFAULT_PLATFORM": "builtin",
    "RINGCENTRAL_SERVER": env.str("RINGCENTRAL_SERVER", default="https://platform.ringcentral.com"),
    # The server's own RingCentral app (JWT auth flow): what connected accounts' JWTs are
    # exchanged with (README, "Connecting a RingCentral account").
    "RINGCENTRAL_CLIENT_ID": env.str("RINGCENTRAL_CLIENT_ID", default=""),
    "RINGCENTRAL_CLIENT_SECRET": env.str("RINGCENTRAL_CLIENT_SECRET", default=""),
    "DEFAULT_PHONE_REGION": env.str("DEFAULT_PHONE_REGION", default="US"),
    "OUTBOUND_TIMEOUT_SECONDS": _OUTBOUND_TIMEOUT,
    # Connections per host in each outbound HTTP session's pool: as many as the threads of
    # a server process (WEB_THREADS), which may all call one CRM at once; under gevent,
    # 256 of the requests one worker may have in flight.
    "OUTBOUND_POOL_MAXSIZE": env.int("OUTBOUND_POOL_MAXSIZE", default=256 if _GREENLETS else WEB_THREADS),
    "OUTBOUND_HOST_MAP": {},  # filled from the environment below
    "OAUTH_APPS": {},  # likewise
    # A CRM's 429 is waited out inside the request when its Retry-After is this short.
    "OUTBOUND_RETRY_AFTER_CAP_SECONDS": env.float("OUTBOUND_RETRY_AFTER_CAP_SECONDS", default=2.0),
    "OUTBOUND_ATTEMPTS": env.int("OUTBOUND_ATTEMPTS", default=3),
    # Give the database connection back to the pool before each CRM call (see DB_POOL_MAX_SIZE).
    "DB_RELEASE_FOR_CRM_CALLS": _DB_POOLED and (_GREENLETS or DB_POOL_MAX_SIZE < WEB_THREADS),
    # How long a claimed call or message log belongs to the request that claimed it, from
    # the claim and again from the start of its CRM write; once it lapses (the request
    # died), the next request, retry or recovery task for the same log takes it over.
    # Default: long enough for a CRM write and one retry of it.
    "LOG_LEASE_SECONDS": env.float("LOG_LEASE_SECONDS", default=2 * _OUTBOUND_TIMEOUT + 5),
}
# Outbound requests for a host go to another base URL instead: "host=base-url,...", e.g.
# "api.hubapi.com=http://127.0.0.1:9101" (a CRM sandbox, or a fake in tests).
for _entry in env.list("OUTBOUND_HOST_MAP", default=[]):
    _host, _, _base = (part.strip() for part in _entry.partition("="))
    _parts = urlsplit(_base)
    if not _host or "/" in _host or _parts.scheme not in ("http", "https") or not _parts.hostname:
        raise ImproperlyConfigured(f"OUTBOUND_HOST_MAP: {_entry!r} is not host=http(s)://base-url.")
    CONNECTOR["OUTBOUND_HOST_MAP"][_host.lower()] = _base
# OAuth apps of the CRMs, with App Connect's variable names: <KEY>_CLIENT_ID,
# <KEY>_CLIENT_SECRET, and optionally <KEY>_ACCESS_TOKEN_URI and <KEY>_REDIRECT_URI (the
# connector knows its CRM's token URL; the redirect defaults to RingCentral's hosted page).
for _key in ("PIPEDRIVE", "HUBSPOT", "CLIO", "CLIO_EU", "CLIO_CA", "CLIO_AU"):
    CONNECTOR["OAUTH_APPS"][_key.lower()] = {
        "client_id": env.str(f"{_key}_CLIENT_ID", default=""),
        "client_secret": env.str(f"{_key}_CLIENT_SECRET", default=""),
        "token_url": env.str(f"{_key}_ACCESS_TOKEN_URI", default=""),
        "redirect_uri": env.str(f"{_key}_REDIRECT_URI", default=""),
    }
# More connectors without editing this file: "name=dotted.path.ToClient,name2=...".
for _entry in env.list("CRM_PLATFORMS_EXTRA", default=[]):
    _name, _, _path = (part.strip() for part in _entry.partition("="))
    if not _name or not _path:
        raise ImproperlyConfigured(f"CRM_PLATFORMS_EXTRA: {_entry!r} is not name=dotted.path.ToClient.")
    CONNECTOR["PLATFORMS"][_name] = _path

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Request lines can carry the legacy ?jwtToken= and ?rcAccessToken= credentials.
    "filters": {"redact": {"()": "config.logging.RedactCredentialsFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True

# Background work: Celery with a Redis broker in production; without a broker URL,
# tasks run eagerly in the calling process (the embedded default and the tests).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# `celery -A config beat`: the periodic work, fixed in code.
CELERY_BEAT_SCHEDULE = {
    # pending logs whose request died, failed ones the CRM may hold (logs.services.logs_recover)
    "recover-abandoned-logs": {"task": "logs.recover", "schedule": 60.0},
    # server-side logging: work whose task was lost or is due again; subscriptions' upkeep
    "sscl-sweep": {"task": "sscl.sweep", "schedule": 15.0},
    "sscl-maintain-subscriptions": {"task": "sscl.maintain_subscriptions", "schedule": 3600.0},
}
# Redis redelivers a task not acknowledged within this time; every countdown stays well under.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}

# Server-side call logging (sscl). PUBLIC_BASE_URL: the https address RingCentral delivers
# webhooks to (e.g. https://connector.example.com); SSCL_DISPATCH: "celery" with a broker,
# "thread" without (the embedded default), "inline" (tests).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="")
SSCL_DISPATCH = env.str("SSCL_DISPATCH", default="")
SSCL_FIRST_FETCH_DELAY_SECONDS = env.float("SSCL_FIRST_FETCH_DELAY_SECONDS", default=5.0)
SSCL_MAX_ATTEMPTS = env.int("SSCL_MAX_ATTEMPTS", default=8)
SSCL_EVENT_RETENTION_DAYS = env.int("SSCL_EVENT_RETENTION_DAYS", default=30)
