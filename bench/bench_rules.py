"""Rule sync speed: labnet (python-iptables) versus iptables-legacy-restore of the same text.

For 10, 100, 1,000 and 5,000 services with 3 endpoints each, on 2 nodes (two namespaces made
for the run): a full sync, and a resync after one endpoint of one service changed. The
baseline loads the identical rules (labnet's restore text) with iptables-legacy-restore into
the same kind of fresh netns.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labnet.kernel import iptables, nsfs  # noqa: E402
from labnet.kubeproxy.rules import ProxyOptions, jump_rules, render_nodes  # noqa: E402
from labnet.services_plan import PlanEndpoint, PlanService, PlanServicePort  # noqa: E402


def services(n: int, moved: int | None = None) -> list[PlanService]:
    result = []
    for i in range(n):
        eps = tuple(PlanEndpoint(f"172.16.{1 + j % 2}.{(i * 3 + j) % 250 + 2}", 8080,
                                 f"node{1 + j % 2}") for j in range(3))
        if moved == i:
            eps = (*eps[:2], PlanEndpoint("172.16.2.251", 8080, "node2"))
        ip = f"172.19.{i // 250}.{i % 250 + 1}"
        result.append(PlanService("default", f"svc{i}", "ClusterIP", ip,
                                  (PlanServicePort("http", "TCP", 80, "8080", 0, eps),)))
    return result


def fresh(name: str) -> None:
    if nsfs.exists(name):
        nsfs.delete(name)
    nsfs.create(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000,5000")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_rules.py needs root")
    jumps = [(t, r.chain, r.args) for t, r in jump_rules()]
    opts = [ProxyOptions(f"node{i}", (f"192.168.255.{10 + i}",), "172.16.0.0/16")
            for i in (1, 2)]
    start = time.perf_counter()
    iptables._load_iptc()
    print(f"importing python-iptables: {time.perf_counter() - start:.3f} s (once per labnet "
          "process, not in the figures below)")
    print(f"{'services':>8} {'rules':>7} | {'labnet full':>11} {'restore':>9} {'ratio':>6} | "
          f"{'1-endpoint resync':>17} | {'shapes':>6}")
    try:
        for n in [int(x) for x in args.sizes.split(",")]:
            nodes = ["benchr-a", "benchr-b"]
            base = ["benchr-c", "benchr-d"]
            for name in nodes + base:
                fresh(name)
            rulesets = render_nodes(services(n), opts)
            count = sum(len(r) for t in rulesets[0].chains().values() for r in t.values())
            start = time.perf_counter()
            jobs = [(ns, iptables.plan_tables(rs, None, jumps))
                    for ns, rs in zip(nodes, rulesets, strict=True)]
            report = iptables.apply_nodes(jobs)
            full = time.perf_counter() - start
            start = time.perf_counter()
            for ns, rs in zip(base, rulesets, strict=True):
                subprocess.run(["ip", "netns", "exec", ns, "iptables-legacy-restore"],
                               input=rs.restore_text().encode(), check=True)
            baseline = time.perf_counter() - start
            # one endpoint of one service moves: render again, diff, rewrite what changed
            start = time.perf_counter()
            changed = render_nodes(services(n, moved=n // 2), opts)
            iptables.apply_nodes([
                (ns, iptables.plan_tables(new, old.chains(), jumps))
                for ns, old, new in zip(nodes, rulesets, changed, strict=True)])
            resync = time.perf_counter() - start
            shapes = report["templates"]
            print(f"{n:>8} {count:>7} | {full:>9.3f} s {baseline:>7.3f} s "
                  f"{full / baseline:>5.2f}x | {resync * 1000:>14.1f} ms | {shapes:>6}")
            for name in nodes + base:
                nsfs.delete(name)
    finally:
        for name in ("benchr-a", "benchr-b", "benchr-c", "benchr-d"):
            if nsfs.exists(name):
                nsfs.delete(name)
    print("2 nodes each. full: labnet's install of rules already rendered, against "
          "iptables-legacy-restore of the same text (process start included, as kube-proxy "
          "pays it); resync: render both nodes again + diff + rewrite the changed chains")


if __name__ == "__main__":
    main()
