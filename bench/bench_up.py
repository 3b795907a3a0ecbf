"""Lab build and teardown speed and memory: labnet versus a shell script of `ip` commands."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labnet import lab as labmod  # noqa: E402
from labnet.lab import Lab  # noqa: E402
from labnet.plan import make_plan

SIZES_FULL = [(2, 1), (2, 10), (2, 100), (2, 500), (10, 1), (10, 10), (10, 100), (10, 500)]
SIZES_QUICK = [(2, 1), (2, 10), (2, 100), (2, 500)]


def lab_yaml(name: str, nodes: int, pods: int) -> str:
    items = "".join(
        f"  - {{apiVersion: v1, kind: Pod, metadata: {{name: p{i}}}, spec: "
        f"{{containers: [{{name: c, ports: [{{containerPort: 80}}]}}]}}}}\n" for i in range(pods))
    return f"name: {name}\nnodes: {nodes}\nmanifests:\n{items}"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def shell_script(plan) -> tuple[str, str]:
    """The same namespaces, links, addresses and routes with `ip` commands, and its teardown."""
    up = ["set -e", f"ip netns add {plan.underlay_netns}",
          f"ip -n {plan.underlay_netns} link add br0 type bridge",
          f"ip -n {plan.underlay_netns} link set br0 up"]
    down = []
    prefix = plan.underlay_prefixlen
    for node in plan.nodes:
        ns = node.netns
        up += [f"ip netns add {ns}", f"ip -n {ns} link set lo up",
               f"ip -n {plan.underlay_netns} link add {node.underlay_port} type veth peer name "
               f"eth0 netns {ns}",
               f"ip -n {plan.underlay_netns} link set {node.underlay_port} master br0 up",
               f"ip -n {ns} addr add {node.underlay_ip}/{prefix} dev eth0",
               f"ip -n {ns} link set eth0 up",
               f"ip -n {ns} link add cni0 type bridge",
               f"ip -n {ns} addr add {node.gateway}/24 dev cni0",
               f"ip -n {ns} link set cni0 up"]
        down.append(f"ip netns del {ns}")
    for pod in plan.pods:
        node = plan.node(pod.node)
        up += [f"ip netns add {pod.netns}", f"ip -n {pod.netns} link set lo up",
               f"ip -n {node.netns} link add {pod.host_veth} type veth peer name eth0 netns "
               f"{pod.netns}",
               f"ip -n {node.netns} link set {pod.host_veth} master cni0 up",
               f"ip -n {pod.netns} addr add {pod.ip}/24 dev eth0",
               f"ip -n {pod.netns} link set eth0 up",
               f"ip -n {pod.netns} route add default via {node.gateway}"]
        down.append(f"ip netns del {pod.netns}")
    down.append(f"ip netns del {plan.underlay_netns}")
    return "\n".join(up) + "\n", "\n".join(down) + "\n"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(nodes: int, pods: int, workdir: Path) -> dict:
    name = f"bench{nodes}x{pods}"
    path = workdir / f"{name}.yaml"
    path.write_text(lab_yaml(name, nodes, pods))
    lab = Lab.load(path)
    up_s = timed(lab.up)
    agent = lab.state.agent_pid()
    agent_kb = rss_kb(agent) if agent else 0
    down_s = timed(lambda: labmod.down(name))

    # the same names and addresses, built again by the shell script once labnet's lab is gone
    script_up, script_down = shell_script(make_plan(Lab.load(path).spec))
    (workdir / "up.sh").write_text(script_up)
    (workdir / "down.sh").write_text(script_down)
    sh_up = timed(lambda: subprocess.run(["bash", str(workdir / "up.sh")], check=True))
    sh_down = timed(lambda: subprocess.run(["bash", str(workdir / "down.sh")], check=True))
    return {"nodes": nodes, "pods": pods, "up_ms": up_s * 1000 / pods,
            "down_ms": down_s * 1000 / pods, "sh_up_ms": sh_up * 1000 / pods,
            "sh_down_ms": sh_down * 1000 / pods, "up_total_s": up_s, "agent_kb": agent_kb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_up.py needs root")
    rows = []
    baseline_agent = None
    with tempfile.TemporaryDirectory() as tmp:
        for nodes, pods in SIZES_QUICK if args.quick else SIZES_FULL:
            row = bench(nodes, pods, Path(tmp))
            if pods == 1 and baseline_agent is None:
                baseline_agent = row["agent_kb"]
            rows.append(row)
    print(f"{'nodes':>5} {'pods':>5} | {'labnet up':>10} {'ip script':>10} {'ratio':>6} | "
          f"{'labnet down':>11} {'ip script':>10} | {'up total':>9} | {'agent RSS':>10} "
          f"{'per pod':>9}")
    for r in rows:
        per_pod = (r["agent_kb"] - (baseline_agent or 0)) / max(1, r["pods"] - 1)
        print(f"{r['nodes']:>5} {r['pods']:>5} | {r['up_ms']:>7.2f} ms {r['sh_up_ms']:>7.2f} ms "
              f"{r['sh_up_ms'] / r['up_ms']:>5.1f}x | {r['down_ms']:>8.2f} ms "
              f"{r['sh_down_ms']:>7.2f} ms | {r['up_total_s']:>7.2f} s | "
              f"{r['agent_kb'] / 1024:>7.1f} MB {per_pod:>6.0f} kB")
    print("ms are per pod; ratio = ip script time / labnet time (higher is better for labnet);"
          " agent per pod = (agent RSS - RSS with 1 pod) / (pods - 1)")


if __name__ == "__main__":
    main()
