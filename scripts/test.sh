#!/usr/bin/env bash
# Run every check: lint, migrations, then the whole suite on SQLite and on PostgreSQL.
#   DATABASE_URL_POSTGRES overrides the PostgreSQL server used (default: the local one).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements-dev.txt
export DJANGO_SETTINGS_MODULE=tests.settings
unset DATABASE_URL
echo "==> lint"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> types"
DEBUG=true .venv/bin/mypy  # DEBUG: the Django plugin imports the settings, which need no secrets then
echo "==> migrations are up to date"
.venv/bin/python manage.py makemigrations --check --dry-run
if [[ ! -x /usr/bin/chromium && "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing Debian's chromium (the browser tests drive it headless)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "==> tests on SQLite"
.venv/bin/pytest "$@"
echo "==> tests on PostgreSQL"
DATABASE_URL="${DATABASE_URL_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}" .venv/bin/pytest "$@"
