"""Cluster DNS throughput and latency: labnet's server against dnsmasq, in one run.

Brings up a one-node lab with SERVICES services, starts dnsmasq inside the cluster DNS pod's
own netns on port 5353 (same address, same path: only the server differs), serving the same A
records (from a hosts file), and from a client pod:
  - dnsperf at full speed against each server (queries per second),
  - a paced load of 1,000 queries per second for a few seconds against each, with every
    round trip timed (p50/p99 latency).
Needs dnsperf and dnsmasq (`sudo scripts/setup.sh --bench` installs them). Run as root.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnslib import DNSRecord  # noqa: E402

from labnet import lab as labmod  # noqa: E402
from labnet.kernel import nsfs  # noqa: E402
from labnet.lab import Lab  # noqa: E402


def lab_yaml(services: int) -> str:
    items = ["  - apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: web}\n"
             "    spec:\n      replicas: 2\n      selector: {matchLabels: {app: web}}\n"
             "      template:\n        metadata: {labels: {app: web}}\n        spec:\n"
             "          containers: [{name: c, ports: [{containerPort: 80}]}]\n",
             "  - {apiVersion: v1, kind: Pod, metadata: {name: client}, spec: "
             "{containers: [{name: c}]}}\n"]
    items += [f"  - {{apiVersion: v1, kind: Service, metadata: {{name: svc{i}}}, spec: "
              f"{{selector: {{app: web}}, ports: [{{port: 80}}]}}}}\n" for i in range(services)]
    return "name: benchdns\nnodes: 1\nmanifests:\n" + "".join(items)


def dnsperf(netns: str, server: str, port: int, queries: Path, seconds: int) -> float:
    out = subprocess.run(["ip", "netns", "exec", netns, "dnsperf", "-s", server, "-p",
                          str(port), "-d",
                          str(queries), "-l", str(seconds), "-c", "4", "-q", "200", "-t", "2"],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    match = re.search(r"Queries per second:\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if not match:
        raise RuntimeError(f"dnsperf said: {out[-500:]}")
    return float(match.group(1)), int(lost.group(1)) if lost else 0


def paced_latency(netns: str, server: str, port: int, names: list[str], rate: int,
                  seconds: float) -> tuple[float, float, int]:
    """Send `rate` queries per second, one at a time from one socket, timing each."""
    with nsfs.entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    rtts, lost = [], 0
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        due = start + i * interval
        while (now := time.perf_counter()) < due:
            time.sleep(min(due - now, 0.0005))
        packet = DNSRecord.question(names[i % len(names)]).pack()
        sent = time.perf_counter()
        sock.sendto(packet, (server, port))
        try:
            sock.recv(4096)
            rtts.append(time.perf_counter() - sent)
        except TimeoutError:
            lost += 1
    sock.close()
    rtts.sort()
    return (rtts[len(rtts) // 2] * 1000, rtts[int(len(rtts) * 0.99)] * 1000, lost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_dns.py needs root")
    for tool in ("dnsperf", "dnsmasq"):
        if not shutil.which(tool):
            sys.exit(f"bench_dns.py needs {tool}: sudo scripts/setup.sh --bench")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lab.yaml"
        path.write_text(lab_yaml(args.services))
        lab = Lab.load(path)
        lab.up()
        dnsmasq = None
        try:
            plan = lab.running_plan()
            zone = plan.network.cluster_domain
            names = [f"svc{i}.default.svc.{zone}" for i in range(args.services)]
            hosts = Path(tmp) / "hosts"
            hosts.write_text("".join(f"{plan.service(f'default/svc{i}').cluster_ip} {n}\n"
                                     for i, n in enumerate(names)))
            queries = Path(tmp) / "queries"
            queries.write_text("".join(f"{n} A\n" for n in names))
            dns_pod = next(p for p in plan.pods if p.namespace == "kube-system")
            client = lab.pod("client").netns
            dnsmasq = subprocess.Popen(
                ["ip", "netns", "exec", dns_pod.netns, "dnsmasq", "--keep-in-foreground",
                 "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}", "--port=5353",
                 f"--listen-address={dns_pod.ip}", "--bind-interfaces", "--cache-size=10000",
                 "--user=root", "--pid-file="],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            print(f"{args.services} services; client pod -> DNS pod {dns_pod.ip} (labnet :53, "
                  f"dnsmasq :5353, same netns); dnsperf {args.seconds} s each, 4 clients")
            rows = {}
            for label, server, port in (("labnet", dns_pod.ip, 53),
                                        ("labnet via ClusterIP", plan.network.cluster_dns,
                                         53),
                                        ("dnsmasq", dns_pod.ip, 5353)):
                qps, lost = dnsperf(client, server, port, queries, args.seconds)
                p50, p99, late = paced_latency(client, server, port, names, 1000, 5)
                rows[label] = qps
                print(f"  {label:<22} {qps:>9.0f} queries/s (lost {lost}) | at 1,000 q/s: "
                      f"p50 {p50:.3f} ms, p99 {p99:.3f} ms, lost {late}")
            print(f"  labnet / dnsmasq throughput: {rows['labnet'] / rows['dnsmasq']:.2f}")
        finally:
            if dnsmasq:
                dnsmasq.send_signal(signal.SIGTERM)
                dnsmasq.wait(5)
            labmod.down("benchdns")


if __name__ == "__main__":
    main()
