"""A living cluster: apply, delete, scale and restart on a running lab."""

from __future__ import annotations

import threading

from labnet.kernel import nsfs
from labnet.lab import Lab
from tests.integration.conftest import (
    POD_PYTHON,
    answered_by,
    kernel_rules,
    labnet_cli,
    parse_whoami,
    wait_for,
)
from tests.manifests import bare_pod, lab_text, service

SVC = """apiVersion: v1
kind: Service
metadata: {name: pinned}
spec:
  clusterIP: 172.19.7.7
  selector: {app: my-nginx}
  ports: [{port: 80}]
"""


def nginx(lab) -> dict[str, str]:
    return {p.name: p.ip for p in lab.running_plan().pods if p.labels.get("app") == "my-nginx"}


def rules(lab) -> dict[str, str]:
    return {node: kernel_rules(lab, node) for node in ("node1", "node2")}


def test_scale_up_and_down(labnet_lab):
    lab = labnet_lab()
    for replicas in (5, 1, 2):
        result = labnet_cli("scale", "--lab", lab.name, "deployment/my-nginx",
                            "--replicas", str(replicas))
        assert result.returncode == 0, result.stderr
        live = nginx(lab)
        assert len(live) == replicas
        seen = answered_by(lab, "client", "http://my-nginx/", 40 if replicas > 1 else 10)
        assert set(seen) == set(live)  # exactly the live pods answer


def test_delete_pods(labnet_lab):
    lab = labnet_lab()
    victim = sorted(nginx(lab))[0]
    result = labnet_cli("delete", "--lab", lab.name, "pod", victim)
    assert result.returncode == 0 and "makes a new one" in result.stdout
    assert victim not in nginx(lab) and len(nginx(lab)) == 2  # the Deployment replaced it
    client_netns = lab.pod("client").netns  # this lab's own: another lab may have a client too
    result = labnet_cli("delete", "--lab", lab.name, "pod/client")
    assert result.returncode == 0 and "pod/client deleted" in result.stdout
    assert all(p.name != "client" for p in lab.running_plan().pods)
    assert client_netns not in nsfs.list_netns()


def test_restart_gives_a_new_ip_and_the_service_stays(labnet_lab):
    lab = labnet_lab()
    before = nginx(lab)
    victim = sorted(before)[0]
    old_ip = before[victim]
    results, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            r = lab.exec("client", ["curl", "-s", "-m", "2", "http://my-nginx/"])
            results.append((r.returncode, r.stdout))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        result = labnet_cli("restart", "--lab", lab.name, "pod", victim)
        assert result.returncode == 0, result.stderr
        after_restart = len(results)  # the new pod is ready once restart returns
        stop.wait(3)
    finally:
        stop.set()
        worker.join()
    after = nginx(lab)
    assert victim not in after and len(after) == 2
    new_name = (set(after) - set(before)).pop()
    assert after[new_name] != old_ip
    for text in rules(lab).values():  # the old IP left every node's rules
        assert old_ip not in text and after[new_name] in text
    later = results[after_restart + 1:]  # the one in flight when restart returned may fail
    assert later and all(code == 0 for code, _ in later), later[:3]
    assert all(parse_whoami(text)["ip"] != old_ip for _, text in later)
    assert set(answered_by(lab, "client", "http://my-nginx/")) == set(after)


def test_delete_a_service_and_apply_it_again(labnet_lab, tmp_path):
    lab = labnet_lab()
    path = tmp_path / "svc.yaml"
    path.write_text(SVC)
    assert labnet_cli("apply", "--lab", lab.name, "-f", str(path)).returncode == 0
    assert lab.exec("client", ["curl", "-s", "-m", "3", "http://pinned/"]).returncode == 0
    result = labnet_cli("delete", "--lab", lab.name, "-f", str(path))
    assert result.returncode == 0 and "service/pinned deleted" in result.stdout
    gone = lab.exec("client", ["curl", "-s", "-m", "2", "http://172.19.7.7/"])
    assert gone.returncode != 0
    assert "NXDOMAIN" in lab.exec("client", ["dig", "pinned.default.svc.cluster.local"]).stdout
    assert labnet_cli("apply", "--lab", lab.name, "-f", str(path)).returncode == 0
    assert lab.running_plan().service("default/pinned").cluster_ip == "172.19.7.7"
    assert lab.exec("client", ["curl", "-s", "-m", "3", "http://pinned/"]).returncode == 0


def test_apply_twice_changes_nothing(labnet_lab, tmp_path):
    lab = labnet_lab()
    path = tmp_path / "svc.yaml"
    path.write_text(SVC)
    first = labnet_cli("apply", "--lab", lab.name, "-f", str(path))
    assert "service/pinned created" in first.stdout
    plan, kernel = lab.state.plan_path.read_text(), rules(lab)
    second = labnet_cli("apply", "--lab", lab.name, "-f", "-", input=SVC)  # from stdin
    assert "service/pinned unchanged" in second.stdout
    assert "rules rewritten" not in second.stderr
    assert lab.state.plan_path.read_text() == plan
    assert rules(lab) == kernel


def test_a_rejected_change_leaves_the_lab_as_it_was(labnet_lab, tmp_path):
    lab = labnet_lab()
    plan, kernel, desired = (lab.state.plan_path.read_text(), rules(lab),
                             (lab.state.root / "desired.json").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(SVC.replace("clusterIP: 172.19.7.7", "clusterIP: 10.1.2.3"))
    result = labnet_cli("apply", "--lab", lab.name, "-f", str(bad))
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr and "not a usable address of serviceCIDR" in result.stderr
    for args in (["scale", "deployment/nosuch", "--replicas", "2"],
                 ["delete", "pod", "nosuch"], ["delete", "service", "nosuch"]):
        result = labnet_cli(*args, "--lab", lab.name)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert lab.state.plan_path.read_text() == plan
    assert (lab.state.root / "desired.json").read_text() == desired
    assert rules(lab) == kernel
    assert lab.status().healthy


def test_get_lists_in_kubectl_columns(labnet_lab):
    lab = labnet_lab()
    pods = labnet_cli("get", "--lab", lab.name, "pods").stdout.splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(pods) == 1 + 3 and all("Running" in line for line in pods[1:])
    services = labnet_cli("get", "--lab", lab.name, "svc", "-A").stdout
    assert "kube-dns" in services and "80:30080/TCP" in services
    import json
    items = json.loads(labnet_cli("get", "--lab", lab.name, "endpoints", "-o", "json").stdout)
    eps = {i["metadata"]["name"]: {f"{a['ip']}:{p['port']}" for s in i.get("subsets", [])
                                   for a in s.get("addresses", []) for p in s["ports"]}
           for i in items["items"]}
    assert eps["my-nginx"] == {f"{ip}:80" for ip in nginx(lab).values()}
    assert Lab.attach(lab.name).running_plan().lab == lab.name


READY_LAB = lab_text("""\
  - apiVersion: v1
    kind: Pod
    metadata: {name: quick, labels: {app: mix}}
    spec: {containers: [{name: c, ports: [{containerPort: 8080}]}]}
  - apiVersion: v1
    kind: Pod
    metadata: {name: slow, labels: {app: mix}}
    spec:
      containers:
        - name: c
          command: [PYTHON, -c, "import time, http.server as h; time.sleep(2); h.test(HandlerClass=h.SimpleHTTPRequestHandler, port=8080, bind='0.0.0.0')"]
          ports: [{containerPort: 8080}]
  - apiVersion: v1
    kind: Pod
    metadata: {name: never, labels: {app: mix}}
    spec:
      containers:
        - name: c
          ports: [{containerPort: 8080}]
          readinessProbe: {tcpSocket: {port: 9999}, periodSeconds: 1}
""", service("mix", "[{port: 80, targetPort: 8080}]"), bare_pod("client"))


def endpoints(lab) -> set[str]:
    import json
    mix = json.loads(labnet_cli("get", "--lab", lab.name, "ep", "mix", "-o", "json").stdout)
    return [f"{a['ip']}:{p['port']}" for s in mix.get("subsets", [])
            for a in s.get("addresses", []) for p in s["ports"]]


def test_readiness_decides_who_is_an_endpoint(labnet_lab):
    import os
    import signal

    lab = labnet_lab(text=READY_LAB.replace("PYTHON", POD_PYTHON))
    quick, slow = lab.pod("quick"), lab.pod("slow")
    # right after up: only what answers (the slow server sleeps first; `never` fails its probe)
    assert set(endpoints(lab)) == {f"{quick.ip}:8080"}
    assert set(answered_by(lab, "client", "http://mix/", 10)) == {"quick"}
    assert wait_for(lambda: set(endpoints(lab)) == {f"{quick.ip}:8080", f"{slow.ip}:8080"})
    pods = {p.name: p for p in lab.status().pods}
    assert not pods["never"].ready and "readiness" in " ".join(pods["never"].missing)
    # the slow pod's server dies: it leaves the endpoints (and comes back when restarted)
    pid = next(c.pid for c in pods["slow"].processes)
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: f"{slow.ip}:8080" not in endpoints(lab), 5)
    assert set(answered_by(lab, "client", "http://mix/", 10)) == {"quick"}
    assert wait_for(lambda: f"{slow.ip}:8080" in endpoints(lab), 15)
