"""Pod records in CoreDNS's three `pods` modes, asked with dig from a pod, and labs without the
built-in cluster DNS: no kube-dns rules, pods keep the node's resolv.conf, and a DNS server of
the user's own behind their own kube-system/kube-dns answers `curl http://my-nginx`
(examples/own-dns.yaml)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from labnet.kernel.teardown import etc_netns_dir
from tests.integration.conftest import labnet_cli, parse_whoami
from tests.integration.test_dns import answers
from tests.manifests import bare_pod, lab_text, namespace

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own-dns.yaml"
POD_IN_SHOP = ("  - {apiVersion: v1, kind: Pod, metadata: {name: far, namespace: shop}, "
               "spec: {nodeName: node2, containers: [{name: c}]}}\n")


def mode_lab(mode: str | None) -> str:
    settings = f"dns: {{pods: {mode}}}\n" if mode else ""
    return lab_text(namespace("shop"), bare_pod("client", node="node1"), POD_IN_SHOP,
                    settings=settings)


def dig(lab, name: str, qtype: str = "A", *options: str) -> tuple[str, list[list[str]], str]:
    """(status, ANSWER records split into fields, the whole output) of dig from `client`."""
    result = lab.exec("client", ["dig", "+time=2", "+tries=1", *options, name, qtype])
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    status = text.split("status: ", 1)[1].split(",", 1)[0]
    return status, answers(text), text


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


@pytest.mark.parametrize("mode", [None, "insecure", "verified", "disabled"])
def test_pod_records_from_a_pod(labnet_lab, mode):
    lab = labnet_lab(text=mode_lab(mode))
    effective = mode or "insecure"  # kubeadm's Corefile: pods insecure
    assert lab.running_plan().network.dns_pods == effective
    client, far = lab.pod("client"), lab.pod("far", "shop")
    on = effective != "disabled"

    # A for the dashed IP of a pod of that namespace
    name = f"{dashed(client.ip)}.default.pod.cluster.local"
    status, records, text = dig(lab, name)
    if on:
        assert (status, records) == ("NOERROR", [[name + ".", "5", "IN", "A", client.ip]])
        assert "flags: qr aa rd;" in text
    else:
        assert (status, records) == ("NXDOMAIN", [])
    # A for a dashed IP no pod has: insecure only
    status, records, _ = dig(lab, "10-244-1-10.default.pod.cluster.local")
    if effective == "insecure":
        assert status == "NOERROR" and records[0][3:] == ["A", "10.244.1.10"]
    else:
        assert (status, records) == ("NXDOMAIN", [])
    # a pod's IP under another namespace than its own: verified says no
    status, records, _ = dig(lab, f"{dashed(far.ip)}.default.pod.cluster.local")
    assert (status, bool(records)) == (("NOERROR", True) if effective == "insecure"
                                       else ("NXDOMAIN", False))
    status, records, _ = dig(lab, f"{dashed(far.ip)}.shop.pod.cluster.local", "A", "+tcp")
    assert (status, [r[4] for r in records]) == (("NOERROR", [far.ip]) if on
                                                 else ("NXDOMAIN", []))
    # the namespace apex: NODATA (with the zone's SOA) while pod records are on
    status, records, text = dig(lab, "default.pod.cluster.local")
    assert (status, records) == (("NOERROR" if on else "NXDOMAIN"), [])
    authority = text.split(";; AUTHORITY SECTION:")[1].strip().splitlines()[0].split()
    assert authority[:4] == ["cluster.local.", "5", "IN", "SOA"]
    # a namespace that does not exist, a label that is no IP: NXDOMAIN in every mode
    for missing in ("10-244-1-10.nosuchns.pod.cluster.local", "nosuchns.pod.cluster.local",
                    "blah.default.pod.cluster.local"):
        assert dig(lab, missing)[:2] == ("NXDOMAIN", [])
    # AAAA of an IPv4 pod name: NODATA
    status, records, _ = dig(lab, name, "AAAA")
    assert (status, records) == (("NOERROR" if on else "NXDOMAIN"), [])


def test_labnet_dns_and_render_show_pod_records(labnet_lab):
    lab = labnet_lab(text=mode_lab(None))
    client = lab.pod("client")
    name = f"{dashed(client.ip)}.default.pod.cluster.local"
    result = labnet_cli("dns", "--lab", lab.name, name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [name + ".", "5", "IN", "A", client.ip] in [x.split() for x in result.stdout.splitlines()]
    zone = lab.lab.zone_text()
    assert "; pods insecure: " in zone and f"{name}. 5 IN A {client.ip}" in zone


def test_a_lab_without_the_built_in_dns(labnet_lab):
    lab = labnet_lab(text=lab_text(bare_pod("client", node="node1"),
                                   bare_pod("web", app="web", node="node2",
                                            containers="[{name: c, ports: [{containerPort: 80}]}]"),
                                   "  - {apiVersion: v1, kind: Service, metadata: {name: web}, "
                                   "spec: {selector: {app: web}, ports: [{port: 80}]}}\n",
                                   settings="dns: {enabled: false}\n"))
    plan = lab.running_plan()
    assert not [p for p in plan.pods if p.namespace == "kube-system"]
    assert not [s for s in plan.services if s.namespace == "kube-system"]
    for node in plan.nodes:  # the rules in the kernel, read back
        rules = lab.lab.installed_rules(node.name)
        assert "default/web" in rules
        assert "kube-dns" not in rules and "172.19.0.10" not in rules
    # kubelet without --cluster-dns: the pod keeps the node's resolv.conf (none is written)
    client = lab.pod("client")
    assert not (etc_netns_dir(client.netns) / "resolv.conf").exists()
    seen = lab.exec("client", ["cat", "/etc/resolv.conf"])
    assert seen.stdout == Path("/etc/resolv.conf").read_text()
    # nothing serves DNS at the cluster DNS address; the Service still answers by its IP
    web = plan.service("default/web")
    answer = lab.exec("client", ["curl", "-s", "-m", "5", f"http://{web.cluster_ip}/"])
    assert answer.returncode == 0 and parse_whoami(answer.stdout)["pod"].startswith("web")
    # a Service at the cluster DNS address, applied later: kubelet has --cluster-dns now, and
    # the pods get the ClusterFirst resolv.conf
    lab.apply("apiVersion: v1\nkind: Service\nmetadata: {name: kube-dns, namespace: kube-system}"
              "\nspec: {clusterIP: 172.19.0.10, selector: {k8s-app: kube-dns}, "
              "ports: [{name: dns, port: 53, protocol: UDP}]}\n")
    seen = lab.exec("client", ["cat", "/etc/resolv.conf"])
    assert seen.stdout == ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                           "nameserver 172.19.0.10\noptions ndots:5\n")


def test_own_dns_server_behind_a_user_kube_dns(labnet_lab):
    lab = labnet_lab(EXAMPLE)
    plan = lab.running_plan()
    assert not plan.network.dns_enabled
    assert plan.service("kube-system/kube-dns").cluster_ip == "172.19.0.10"
    rules = lab.lab.installed_rules("node1")
    # the user's Service (no endpoints until the server's readiness probe passes)
    assert "kube-system/kube-dns:dns" in rules and "172.19.0.10" in rules
    text = lab.exec("client", ["cat", "/etc/resolv.conf"]).stdout
    assert text == ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                    "nameserver 172.19.0.10\noptions ndots:5\n")
    deadline = time.monotonic() + 30
    while True:  # the server is a pod command: ready once its readiness probe passes
        result = lab.exec("client", ["curl", "-s", "-m", "5", "http://my-nginx/"])
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, result.stdout + result.stderr
    assert parse_whoami(result.stdout)["pod"].startswith("my-nginx-")
    # over TCP too, and the names it does not know are NXDOMAIN
    status, records, _ = dig(lab, "my-nginx.default.svc.cluster.local", "A", "+tcp")
    assert (status, [r[4] for r in records]) == ("NOERROR", ["172.19.0.80"])
    assert dig(lab, "nothing.default.svc.cluster.local")[0] == "NXDOMAIN"
    # labnet serves no DNS itself: the answers come from the pod's program
    assert not any(p.is_dns for p in plan.pods)
