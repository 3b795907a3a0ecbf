#!/usr/bin/env bash
# Provision a machine (a Vagrant VM, or this one) for labnet: install everything, bring up the
# default lab and show it working. Idempotent: running it again changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/labnet up ${1:+"$1"}
.venv/bin/labnet status
