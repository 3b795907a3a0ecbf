#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole suite: lint, unit tests, and the integration
# tests that build real namespaces (as root). Every lab the tests make is named in a ledger
# before it is built; afterwards exactly those are taken down (a killed or failed test may have
# left one) — never any other lab on this machine, such as the user's running `demo`.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
.venv/bin/ruff check labnet tests bench || exit 1
ledger=$(mktemp "${TMPDIR:-/tmp}/labnet-test-labs.XXXXXX") || exit 1
export LABNET_TEST_LEDGER=$ledger
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
status=$?
sort -u "$ledger" | while read -r lab; do
  .venv/bin/labnet down "$lab" >/dev/null 2>&1 || true   # "no lab named …": already down
done
rm -f "$ledger"
exit $status
