#!/usr/bin/env bash
# Create .venv (Python 3.11) and install a requirements file into it when it changed.
#   scripts/bootstrap.sh requirements.txt | requirements-dev.txt
set -euo pipefail
cd "$(dirname "$0")/.."
reqs="${1:-requirements.txt}"
python="${PYTHON:-python3.11}"
if [[ ! -x .venv/bin/python ]]; then
    echo "==> creating .venv with $($python --version)"
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=".venv/.installed-$(basename "$reqs")"
digest="$(cat requirements*.txt | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$digest" ]]; then
    echo "==> installing $reqs"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$reqs"
    echo "$digest" >"$stamp"
fi
