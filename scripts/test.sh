#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole suite: lint, unit tests, and the integration
# tests that build real namespaces (as root). Any lab a failed test left is cleaned at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
.venv/bin/ruff check labnet tests bench || exit 1
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
status=$?
.venv/bin/labnet clean >/dev/null 2>&1 || true
exit $status
