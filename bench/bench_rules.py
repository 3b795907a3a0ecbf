"""Rule sync speed: labnet's kube-proxy versus the mode's own loader of the same text.

For 10, 100, 1,000 and 5,000 services with 3 endpoints each, on 2 nodes (namespaces made for
the run): a full sync and a resync after one endpoint of one service moved, through the same
ProxyManager the pod agent runs (one worker per node, kept between syncs; rules of unchanged
services kept rendered). The baseline loads the identical rules into two more fresh namespaces:
iptables mode's restore text with iptables-legacy-restore, nftables mode's table with `nft -f`.

    bench_rules.py [--sizes 10,100,1000] [--modes iptables,nftables]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labnet.agent.proxy import ProxyManager  # noqa: E402
from labnet.kernel import iptables, nsfs  # noqa: E402
from labnet.kubeproxy.for_plan import all_node_rulesets  # noqa: E402
from labnet.kubeproxy.modes import backend_for  # noqa: E402
from labnet.plan import Plan, PlanEndpoint, PlanNetwork, PlanNode, PlanService, PlanServicePort

NETWORK = PlanNetwork(underlay_cidr="192.168.255.0/24", pod_cidr="172.16.0.0/16",
                      node_cidr_mask=24, service_cidr="172.19.0.0/16", cluster_dns="172.19.0.10",
                      cluster_domain="cluster.local", vxlan_vni=1, vxlan_port=8472, mtu=1500,
                      dns_ttl=5)


def services(n: int, moved: int | None = None) -> tuple[PlanService, ...]:
    result = []
    for i in range(n):
        eps = tuple(PlanEndpoint(f"172.16.{1 + j % 2}.{(i * 3 + j) % 250 + 2}", 8080,
                                 f"node{1 + j % 2}") for j in range(3))
        if moved == i:
            eps = (*eps[:2], PlanEndpoint("172.16.2.251", 8080, "node2"))
        ip = f"172.19.{i // 250}.{i % 250 + 1}"
        result.append(PlanService("default", f"svc{i}", "ClusterIP", ip,
                                  (PlanServicePort("http", "TCP", 80, "8080", 0, eps),)))
    return tuple(result)


def plan_for(netns: list[str], svcs: tuple[PlanService, ...]) -> Plan:
    nodes = tuple(PlanNode(f"node{i}", i, ns, f"192.168.255.{10 + i}", f"node{i}",
                           f"172.16.{i}.0/24", f"172.16.{i}.1", f"172.16.{i}.0",
                           "0a:00:00:00:00:0" + str(i)) for i, ns in enumerate(netns, 1))
    return Plan("bench", NETWORK, "bench-underlay", "bench-external", "192.168.255.254", nodes,
                (), services=svcs)


def fresh(name: str) -> None:
    if nsfs.exists(name):
        nsfs.delete(name)
    nsfs.create(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000,5000")
    parser.add_argument("--modes", default="iptables")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if os.geteuid() != 0:
        sys.exit("bench_rules.py needs root")
    start = time.perf_counter()
    iptables._load_iptc()
    print(f"importing python-iptables: {time.perf_counter() - start:.3f} s (once per process)")
    sizes = [int(x) for x in args.sizes.split(",")]
    if "iptables" in modes:
        iptables_table(sizes)
    if "nftables" in modes:
        nftables_table(sizes)


def iptables_table(sizes: list[int]) -> None:
    print(f"{'services':>8} {'rules':>7} | {'render':>8} {'install':>8} {'restore':>8} "
          f"{'ratio':>6} | {'warm full':>9} {'ratio':>6} | {'1-endpoint resync':>17}")
    names = ["benchr-a", "benchr-b", "benchr-c", "benchr-d"]
    try:
        for n in sizes:
            for name in names:
                fresh(name)
            proxy = ProxyManager()
            plan = plan_for(names[:2], services(n))
            start = time.perf_counter()
            all_node_rulesets(plan, proxy.cache)  # rendering alone, kept for the sync below
            render = time.perf_counter() - start
            start = time.perf_counter()
            proxy.sync(plan)
            full = time.perf_counter() - start
            texts = [rs.restore_text() for rs in all_node_rulesets(
                replace(plan, nodes=tuple(replace(x, netns=ns) for x, ns in
                                          zip(plan.nodes, names[2:], strict=True)))).values()]
            count = sum(len(t.rules)
                        for t in all_node_rulesets(plan, proxy.cache)["node1"].tables())
            start = time.perf_counter()
            for ns, text in zip(names[2:], texts, strict=True):
                subprocess.run(["ip", "netns", "exec", ns, "iptables-legacy-restore"],
                               input=text.encode(), check=True)
            baseline = time.perf_counter() - start
            start = time.perf_counter()
            moved = plan_for(names[:2], services(n, moved=n // 2))
            proxy.sync(moved)
            resync = time.perf_counter() - start
            proxy.installed.clear()  # forget what was synced: the next sync is full, warm
            start = time.perf_counter()
            proxy.sync(moved)
            warm = time.perf_counter() - start
            proxy.stop()
            print(f"{n:>8} {count:>7} | {render:>6.3f} s {full:>6.3f} s {baseline:>6.3f} s "
                  f"{full / baseline:>5.2f}x | {warm:>7.3f} s {warm / baseline:>5.2f}x | "
                  f"{resync * 1000:>14.1f} ms")
    finally:
        for name in names:
            if nsfs.exists(name):
                nsfs.delete(name)
    print("2 nodes each, one iptables worker per node, committing in parallel. render: both "
          "nodes' rulesets; install: a full sync of them (worker start, every chain written, "
          "commit); restore: iptables-legacy-restore of the same text, one process per node "
          "(start included); ratio = install / restore; warm full: a full sync by workers already "
          "running (as kube-proxy's periodic full sync); resync: everything after one endpoint "
          "moved (render with unchanged services reused, diff, rewrite the changed chains)")


def nftables_table(sizes: list[int]) -> None:
    print(f"\nnftables {'services':>8} | {'install':>8} {'nft -f':>8} {'ratio':>6} | "
          f"{'1-endpoint resync':>17}")
    backend = backend_for("nftables")
    names = ["benchr-a", "benchr-b", "benchr-c", "benchr-d"]
    try:
        for n in sizes:
            for name in names:
                fresh(name)
            proxy = ProxyManager(backend)
            plan = replace(plan_for(names[:2], services(n)),
                           network=replace(NETWORK, proxy_mode="nftables"))
            start = time.perf_counter()
            proxy.sync(plan)
            full = time.perf_counter() - start
            other = replace(plan, nodes=tuple(replace(x, netns=ns) for x, ns in
                                              zip(plan.nodes, names[2:], strict=True)))
            texts = [backend.node_text(other, node.name) for node in other.nodes]
            start = time.perf_counter()
            for ns, text in zip(names[2:], texts, strict=True):
                subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"],
                               input=text.encode(), check=True)
            baseline = time.perf_counter() - start
            moved = replace(plan, services=services(n, moved=n // 2))
            start = time.perf_counter()
            proxy.sync(moved)
            resync = time.perf_counter() - start
            proxy.stop()
            print(f"{'':>8} {n:>8} | {full:>6.3f} s {baseline:>6.3f} s {full / baseline:>5.2f}x | "
                  f"{resync * 1000:>14.1f} ms")
    finally:
        for name in names:
            if nsfs.exists(name):
                nsfs.delete(name)
    print("nftables mode, 2 nodes: install = labnet's first sync (worker start, the other "
          "mode's cleanup, the table's transaction); nft -f = the same table loaded by nft, one "
          "process per node; resync = one endpoint moved: a partial transaction")


if __name__ == "__main__":
    main()
