#!/usr/bin/env bash
# Set up (scripts/setup.sh), bring up the built-in default lab, and show it working.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
labnet=.venv/bin/labnet
$labnet up
echo
$labnet status || true
target_ip=$($labnet up --dry-run -o json | .venv/bin/python -c \
  'import json,sys; p=json.load(sys.stdin)["pods"]; print([x for x in p if x["node"]=="node2"][0]["ip"])')
echo
echo "\$ labnet exec client -- curl -s http://$target_ip/      # node1 pod -> node2 pod, over VXLAN"
$labnet exec client -- curl -s -m 5 "http://$target_ip/"
echo
echo "The lab stays up: explore with 'sudo $labnet exec client -- ip route' and friends;"
echo "'sudo $labnet down' removes it."
