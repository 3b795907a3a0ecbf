"""Changes to a running lab: how long `scale`, `apply` and a pod restart take until every
node's rules are in place (the commands return only then), for labs of 10, 100 and 1,000
services on 2 nodes."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labnet import lab as labmod  # noqa: E402
from labnet.input.yamlsrc import load_documents  # noqa: E402
from labnet.lab import Lab  # noqa: E402


def lab_yaml(services: int) -> str:
    items = ["  - apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: web}\n"
             "    spec:\n      replicas: 2\n      selector: {matchLabels: {app: web}}\n"
             "      template:\n        metadata: {labels: {app: web}}\n        spec:\n"
             "          containers: [{name: c, ports: [{containerPort: 80}]}]\n"]
    items += [f"  - {{apiVersion: v1, kind: Service, metadata: {{name: svc{i}}}, spec: "
              f"{{selector: {{app: web}}, ports: [{{port: 80}}]}}}}\n" for i in range(services)]
    return "name: benchlive\nnodes: 2\nmanifests:\n" + "".join(items)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_living.py needs root")
    print(f"{'services':>8} | {'scale 2->3':>10} {'apply 1 svc':>11} {'restart pod':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(x) for x in args.sizes.split(",")]:
            path = Path(tmp) / "lab.yaml"
            path.write_text(lab_yaml(n))
            Lab.load(path).up()
            try:
                lab = Lab.attach("benchlive")
                scale = timed(lambda lab=lab: lab.scale("default", "web", 3))
                extra = load_documents(
                    "apiVersion: v1\nkind: Service\nmetadata: {name: extra}\n"
                    "spec: {selector: {app: web}, ports: [{port: 8080, targetPort: 80}]}\n",
                    "bench")
                apply = timed(lambda lab=lab, extra=extra: lab.apply(extra))
                pod = next(p.name for p in lab.running_plan().pods
                           if p.labels.get("app") == "web")
                restart = timed(lambda lab=lab, pod=pod: lab.delete_pod("default", pod,
                                                                        restart=True))
                print(f"{n:>8} | {scale * 1000:>7.0f} ms {apply * 1000:>8.0f} ms "
                      f"{restart * 1000:>8.0f} ms")
            finally:
                labmod.down("benchlive")
    print("each: validate the whole desired state, plan, converge the kernel (only what "
          "changed), agent reload (pods, DNS) and kube-proxy sync on every node")


if __name__ == "__main__":
    main()
