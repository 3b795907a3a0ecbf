"""kube-proxy's nftables mode for real (`proxyMode: nftables`): Services answer through the
table `ip kube-proxy` in every node, partial syncs end where a full load ends, and switching a
running lab's mode leaves no rule of the other mode."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from labnet.kubeproxy.modes import backend_for
from tests.integration.conftest import answered_by, labnet_cli, parse_whoami, wait_for
from tests.manifests import bare_pod, deployment, lab_text, service

MANIFESTS = (
    deployment("my-nginx", replicas=2),
    bare_pod("client", node="node1"),
    bare_pod("client2", node="node2"),
    service("my-nginx"),
    service("empty", app="nothing"),
    service("my-nginx-np", "[{port: 80, nodePort: 30080}]", app="my-nginx", type="NodePort"),
)
IPTABLES_LAB = lab_text(*MANIFESTS)
NFT_LAB = lab_text(*MANIFESTS, settings="proxyMode: nftables\n")
NODES = ("node1", "node2")


@pytest.fixture(scope="module")
def nft_lab(labnet_module_lab):
    return labnet_module_lab(text=NFT_LAB)


def nginx_pods(lab) -> set[str]:
    return {p.name for p in lab.running_plan().pods if p.labels.get("app") == "my-nginx"}


def curl(lab, target: str, url: str, timeout: int = 3) -> subprocess.CompletedProcess:
    return lab.exec(target, ["curl", "-s", "-m", str(timeout), url])


def has_nft_table(lab, node: str) -> bool:
    out = lab.exec(f"node/{node}", ["nft", "list", "tables"]).stdout
    return "table ip kube-proxy" in out


def iptables_kube_chains(lab, node: str) -> list[str]:
    out = lab.exec(f"node/{node}", ["iptables-legacy-save"]).stdout
    return [line for line in out.splitlines() if "KUBE-" in line]


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "handle"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def normalised(listing: str) -> dict:
    """`nft -j list table` with handles removed: objects sorted, rules in order per chain,
    set/map elements sorted."""
    objects, rules = [], {}
    for item in json.loads(listing)["nftables"]:
        if "metainfo" in item:
            continue
        item = _strip(item)
        if "rule" in item:
            rules.setdefault(item["rule"]["chain"], []).append(json.dumps(item, sort_keys=True))
            continue
        for kind in ("set", "map"):
            if kind in item and "elem" in item[kind]:
                item[kind]["elem"] = sorted(item[kind]["elem"], key=json.dumps)
        objects.append(json.dumps(item, sort_keys=True))
    return {"objects": sorted(objects), "rules": rules}


def kernel_table(lab, node: str) -> dict:
    result = lab.exec(f"node/{node}", ["nft", "-j", "list", "table", "ip", "kube-proxy"])
    assert result.returncode == 0, result.stderr
    return normalised(result.stdout)


def fresh_load(text: str) -> dict:
    """The same ruleset loaded by `nft -f` into an empty network namespace of its own."""
    script = "nft -f - && nft -j list table ip kube-proxy"
    result = subprocess.run(["unshare", "-n", "sh", "-c", script], input=text,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return normalised(result.stdout)


# --- Services in nftables mode ------------------------------------------------------------

@pytest.mark.parametrize("client", ["client", "client2"])
def test_cluster_ip_balances_over_both_pods(nft_lab, client):
    seen = answered_by(nft_lab, client, f"http://{nft_lab.service_ip('my-nginx')}/")
    assert set(seen) == nginx_pods(nft_lab)
    assert sum(seen.values()) == 40


def test_ping_to_the_cluster_ip_gets_no_answer(nft_lab):
    ping = nft_lab.exec("client", ["ping", "-c", "2", "-W", "1", nft_lab.service_ip("my-nginx")])
    assert ping.returncode != 0 and "100% packet loss" in ping.stdout


def test_node_port_from_the_external_host(nft_lab):
    for node in nft_lab.running_plan().nodes:
        result = curl(nft_lab, "external", f"http://{node.underlay_ip}:30080/")
        assert result.returncode == 0, (node.name, result.stderr)
        assert parse_whoami(result.stdout)["pod"] in nginx_pods(nft_lab)


def test_service_without_endpoints_is_rejected_at_once(nft_lab):
    start = time.monotonic()
    result = curl(nft_lab, "client", f"http://{nft_lab.service_ip('empty')}/", 5)
    assert result.returncode == 7  # connection refused: reject-chain via no-endpoint-services
    assert time.monotonic() - start < 2


def test_rules_show_the_nft_table_and_no_iptables_chain(nft_lab):
    result = labnet_cli("rules", "--lab", nft_lab.name, "node1")
    assert result.returncode == 0, result.stderr
    assert "table ip kube-proxy" in result.stdout
    assert "service-ips" in result.stdout
    for node in NODES:
        assert iptables_kube_chains(nft_lab, node) == [], node
    status = labnet_cli("status", "--lab", nft_lab.name)
    assert "kube-proxy: nftables mode" in status.stdout.splitlines()[0], status.stdout


def test_the_kernel_holds_what_a_full_load_makes(nft_lab):
    plan = nft_lab.running_plan()
    backend = backend_for("nftables")
    for node in NODES:
        assert kernel_table(nft_lab, node) == fresh_load(backend.node_text(plan, node)), node


# --- partial syncs, mode switches, down ---------------------------------------------------

def converged(lab) -> bool:
    plan = lab.running_plan()
    backend = backend_for("nftables")
    return all(kernel_table(lab, n) == fresh_load(backend.node_text(plan, n)) for n in NODES)


def test_scale_is_a_partial_sync_that_ends_where_a_full_load_ends(labnet_lab):
    lab = labnet_lab(text=NFT_LAB)
    before = {e.ip for e in lab.running_plan().service("default/my-nginx").ports[0].endpoints}
    report, _ = lab.lab.scale("default", "my-nginx", 3)
    # a partial sync: only my-nginx's and my-nginx-np's chains and elements, not the table
    full = backend_for("nftables").node_text(lab.running_plan(), "node1", sync_only=True)
    whole = sum(1 for line in full.splitlines() if line.startswith("add rule "))
    assert set(report.rules) == set(NODES)
    for node in NODES:
        assert 0 < report.rules[node]["rules"] < whole / 2, (report.rules, whole)
    after = {e.ip for e in lab.running_plan().service("default/my-nginx").ports[0].endpoints}
    assert len(after) == 3 and before < after
    # stale chains are deleted a second after the sync that flushed them: wait that long
    assert wait_for(lambda: converged(lab), 15, 0.5)
    seen = answered_by(lab, "client", f"http://{lab.service_ip('my-nginx')}/", 60)
    assert len(seen) == 3
    lab.lab.scale("default", "my-nginx", 1)
    (kept,) = lab.running_plan().service("default/my-nginx").ports[0].endpoints
    assert wait_for(lambda: converged(lab), 15, 0.5)
    text = labnet_cli("rules", "--lab", lab.name, "node1").stdout
    assert f"{kept.ip}/80" in text and not any(f"{ip}/80" in text for ip in after - {kept.ip})
    seen = answered_by(lab, "client", f"http://{lab.service_ip('my-nginx')}/", 10)
    assert set(seen) == {kept.pod.split("/")[1]}


def test_switching_a_running_lab_between_modes_leaves_no_rule_of_the_other(labnet_lab):
    lab = labnet_lab(text=IPTABLES_LAB)
    url = f"http://{lab.service_ip('my-nginx')}/"
    for node in NODES:
        assert iptables_kube_chains(lab, node) and not has_nft_table(lab, node)
    lab.up(NFT_LAB)
    assert lab.running_plan().network.proxy_mode == "nftables"
    for node in NODES:
        assert has_nft_table(lab, node), node
        assert iptables_kube_chains(lab, node) == [], node
    assert set(answered_by(lab, "client", url, 20)) == nginx_pods(lab)
    assert "table ip kube-proxy" in labnet_cli("rules", "--lab", lab.name, "node2").stdout
    lab.up(IPTABLES_LAB)
    assert lab.running_plan().network.proxy_mode == "iptables"
    for node in NODES:
        assert not has_nft_table(lab, node), node
        assert iptables_kube_chains(lab, node), node
    assert set(answered_by(lab, "client", url, 20)) == nginx_pods(lab)
    assert "-A KUBE-SERVICES" in labnet_cli("rules", "--lab", lab.name, "node1").stdout
    lab.up(NFT_LAB)  # and down from nftables mode leaves nothing
    netns = lab.running_plan().all_netns()
    state = lab.state.root
    lab.down()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed.split() for name in netns)
    assert not state.exists()
