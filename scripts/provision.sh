#!/usr/bin/env bash
# Provision a machine (a Vagrant VM, or this one) for labnet: install everything, bring up a
# lab (the default one, or `provision.sh LAB_FILE [--host NAME]` for a lab over several
# machines) and show its status. Idempotent: running it again changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/labnet up "$@"
.venv/bin/labnet status || true
