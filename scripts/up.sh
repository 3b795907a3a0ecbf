#!/usr/bin/env bash
# Set up (scripts/setup.sh), bring up the built-in default lab, and show it working:
# pod to pod across nodes, a Service's ClusterIP answering curl but not ping, a NodePort.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
labnet=.venv/bin/labnet
$labnet up
echo
$labnet status || true
read -r pod_ip vip node_ip < <($labnet up --dry-run -o json | .venv/bin/python -c '
import json, sys
plan = json.load(sys.stdin)
pod = [p for p in plan["pods"] if p["node"] == "node2" and p["name"] != "client"][0]
svc = [s for s in plan["services"] if s["name"] == "my-nginx"][0]
print(pod["ip"], svc["cluster_ip"], plan["nodes"][0]["underlay_ip"])')
show() { echo; echo "\$ labnet exec $*"; $labnet exec "$@" || true; }
show client -- curl -s -m 5 "http://$pod_ip/"                 # pod to pod, over VXLAN
show client -- curl -s -m 5 "http://$vip/"                    # the ClusterIP: iptables DNAT
show client -- curl -s -m 5 "http://my-nginx/"               # by name: the cluster DNS
show client -- ping -c 2 -W 1 "$vip"                          # ...no one owns it: no answer
show external -- curl -s -m 5 "http://$node_ip:30080/"        # a NodePort from outside
echo
echo "The ClusterIP $vip answers curl (kube-proxy's rules DNAT it to a pod) but not ping."
echo "See the rules: sudo $labnet rules node1 | grep my-nginx"
echo "The lab stays up; 'sudo $labnet down' removes it."
