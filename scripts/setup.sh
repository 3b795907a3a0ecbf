#!/usr/bin/env bash
# Install everything labnet needs on a fresh Debian/Ubuntu machine, as root:
# system packages (iproute2, iptables, nftables, curl, ping, tcpdump, conntrack, dig) and a
# virtualenv at .venv with labnet and its test tools. Safe to run again: it only installs what
# is missing.
# --bench also installs what the benchmarks compare with (dnsperf, dnsmasq).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (sudo scripts/setup.sh): it installs system packages" >&2
  exit 1
fi

packages=(iproute2 iptables nftables iputils-ping curl tcpdump conntrack bind9-dnsutils procps
          util-linux graphviz)  # nftables: the nft CLI of proxyMode: nftables
if [ "${1:-}" = "--bench" ]; then  # what bench/ compares labnet with
  packages+=(dnsperf dnsmasq-base)
fi
# python3 may come from elsewhere (pyenv); ask apt for it only when there is none with venv
if ! { command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' 2>/dev/null; }; then
  packages+=(python3 python3-venv)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup.sh: labnet needs Python >= 3.11, this is {sys.version.split()[0]}")
PY

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[test]'
echo "setup.sh: ready: .venv/bin/labnet"
