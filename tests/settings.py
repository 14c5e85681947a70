"""Settings for the test suite: the project's settings with test-only secrets.

The database comes from DATABASE_URL as in production (SQLite when unset).
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-django-secret-key-0123456789abcdef")
os.environ.setdefault("APP_SERVER_SECRET_KEY", "test-only-app-server-jwt-secret-0123456789")
os.environ.setdefault("HASH_KEY", "test-only-hash-key-0123456789abcdef0123456789")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
os.environ.setdefault("CONN_MAX_AGE", "0")
# No connection pool in the test process (pytest-django's databases, threads of their own);
# the suites that run the production server give it one (tests/faults, tests/test_serving.py).
os.environ.setdefault("DB_POOL_MAX_SIZE", "0")
# Nothing may leave the machine: a RingCentral call the test did not fake goes nowhere.
os.environ.setdefault("RINGCENTRAL_SERVER", "http://127.0.0.1:9")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The admin's pages need no collectstatic manifest in tests.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
STATIC_ROOT.mkdir(exist_ok=True)  # noqa: F405 - whitenoise warns when it is missing
