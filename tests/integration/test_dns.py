"""Cluster DNS for real: pods resolve services by name through the kube-dns ClusterIP."""

from __future__ import annotations

import socket
import struct
import sys

import pytest

from labnet.kernel import nsfs
from tests.integration.conftest import POD_PYTHON, labnet_cli, parse_whoami
from tests.manifests import (
    ALIAS,
    DB_SERVICE,
    HTTP_80,
    PORT_8080,
    bare_pod,
    db_pod,
    deployment,
    lab_text,
    namespace,
    service,
)

DNS_LAB = lab_text(
    namespace("shop"),
    deployment(replicas=2, containers=HTTP_80),
    service(ports="[{name: http, port: 80}]"),
    db_pod(0),
    DB_SERVICE,
    ALIAS,
    deployment("api", namespace="shop", containers=PORT_8080),
    service("api", "[{port: 80, targetPort: 8080}]", namespace="shop"),
    bare_pod("client", node="node1"),
)


@pytest.fixture(scope="module")
def dns_lab(labnet_module_lab):
    return labnet_module_lab(text=DNS_LAB)


def dig(lab, *args: str) -> str:
    result = lab.exec("client", ["dig", "+time=2", "+tries=1", *args])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def answers(text: str) -> list[list[str]]:
    """The ANSWER section of dig's output, each record split into fields."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            inside = True
        elif inside and not line.strip():
            break
        elif inside:
            out.append(line.split())
    return out


def test_pods_get_the_kubelet_resolv_conf(dns_lab):
    text = dns_lab.exec("client", ["cat", "/etc/resolv.conf"]).stdout
    assert text == ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                    "nameserver 172.19.0.10\noptions ndots:5\n")
    # ip netns exec sees the same file (labnet puts it in /etc/netns/<netns>/)
    netns = dns_lab.pod("client").netns
    import subprocess
    out = subprocess.run(["ip", "netns", "exec", netns, "cat", "/etc/resolv.conf"],
                         capture_output=True, text=True, timeout=10).stdout
    assert out == text


@pytest.mark.parametrize("url", ["http://web/", "http://web.default.svc.cluster.local/",
                                 "http://web.default/", "http://api.shop/"])
def test_curl_by_name(dns_lab, url):
    result = dns_lab.exec("client", ["curl", "-s", "-m", "5", url])
    assert result.returncode == 0, result.stderr
    assert parse_whoami(result.stdout)["pod"].startswith(url.split("/")[2].split(".")[0])


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_record_types_over_udp_and_tcp(dns_lab, transport):
    plan = dns_lab.running_plan()
    web = plan.service("default/web")
    a = answers(dig(dns_lab, transport, "web.default.svc.cluster.local", "A"))
    assert a == [["web.default.svc.cluster.local.", "5", "IN", "A", web.cluster_ip]]
    srv = answers(dig(dns_lab, transport, "_http._tcp.web.default.svc.cluster.local", "SRV"))
    assert srv[0][3:] == ["SRV", "0", "100", "80", "web.default.svc.cluster.local."]
    rev = ".".join(reversed(web.cluster_ip.split("."))) + ".in-addr.arpa"
    ptr = answers(dig(dns_lab, transport, rev, "PTR"))
    assert ptr[0][3:] == ["PTR", "web.default.svc.cluster.local."]
    txt = answers(dig(dns_lab, transport, "dns-version.cluster.local", "TXT"))
    assert txt[0][3:] == ["TXT", '"1.1.0"']
    cname = answers(dig(dns_lab, transport, "alias.default.svc.cluster.local", "A"))
    assert cname[0][3:] == ["CNAME", "web.default.svc.cluster.local."]
    assert cname[1][3:] == ["A", web.cluster_ip]
    db0 = dns_lab.pod("db-0")
    headless = answers(dig(dns_lab, transport, "db.default.svc.cluster.local", "A"))
    assert headless == [["db.default.svc.cluster.local.", "5", "IN", "A", db0.ip]]
    host = answers(dig(dns_lab, transport, "db-0.db.default.svc.cluster.local", "A"))
    assert host[0][4] == db0.ip


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
@pytest.mark.parametrize("name, qtype, status", [
    ("nope.default.svc.cluster.local", "A", "NXDOMAIN"),
    ("web.default.svc.cluster.local", "AAAA", "NOERROR"),
    ("web.nosuchns.svc.cluster.local", "A", "NXDOMAIN"),
])
def test_negative_answers_carry_the_soa(dns_lab, name, qtype, status, transport):
    text = dig(dns_lab, transport, name, qtype)
    assert f"status: {status}" in text and "flags: qr aa rd;" in text
    authority = text.split(";; AUTHORITY SECTION:")[1].strip().splitlines()[0].split()
    assert authority[:4] == ["cluster.local.", "5", "IN", "SOA"]
    assert authority[4:6] == ["ns.dns.cluster.local.", "hostmaster.cluster.local."]


def test_names_outside_the_cluster_are_refused_at_once(dns_lab):
    text = dig(dns_lab, "www.example.com.", "A")
    assert "status: REFUSED" in text


def test_malformed_packets_get_formerr_and_the_server_keeps_serving(dns_lab):
    dns_netns = next(p.netns for p in dns_lab.running_plan().pods
                     if p.namespace == "kube-system")
    client = dns_lab.pod("client").netns
    with nsfs.entered(client):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.settimeout(3)
        garbage = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x3fxx"
        sock.sendto(garbage, ("172.19.0.10", 53))
        reply = sock.recvfrom(512)[0]
        assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == 1  # FORMERR, same id
        sock.sendto(b"\x00", ("172.19.0.10", 53))  # too short: dropped, no crash
        for _ in range(200):  # a small flood of good and bad questions
            sock.sendto(garbage, ("172.19.0.10", 53))
    assert answers(dig(dns_lab, "web.default.svc.cluster.local"))
    # the server listens only inside its pod's netns: no socket of the agent in the root one
    import subprocess
    root = subprocess.run(["ss", "-lunp"], capture_output=True, text=True, timeout=10).stdout
    assert f"pid={dns_lab.state.agent_pid()}," not in root
    with nsfs.entered(dns_netns):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with probe, pytest.raises(OSError):
        probe.bind(("0.0.0.0", 53))  # taken: the DNS server is there


def test_labnet_dns_resolves_like_a_pod(dns_lab):
    result = labnet_cli("dns", "--lab", dns_lab.name, "api.shop")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "api.shop.default.svc.cluster.local." in lines[0] and "NXDOMAIN" in lines[0]
    assert "api.shop.svc.cluster.local." in lines[1] and "NOERROR" in lines[1]
    missing = labnet_cli("dns", "--lab", dns_lab.name, "nothing-here")
    assert missing.returncode == 1 and "NXDOMAIN" in missing.stdout


def test_answers_follow_the_lab(labnet_lab):
    lab = labnet_lab(text=DNS_LAB)
    assert "NXDOMAIN" in dig(lab, "extra.default.svc.cluster.local")
    added = service("extra", "[{port: 81}]", app="web")
    lab.up(DNS_LAB.replace(ALIAS, added + ALIAS).replace(DB_SERVICE, ""))
    extra = lab.running_plan().service("default/extra")
    assert answers(dig(lab, "extra.default.svc.cluster.local"))[0][4] == extra.cluster_ip
    assert "NXDOMAIN" in dig(lab, "db.default.svc.cluster.local")
    result = lab.exec("client", [sys.executable, "-c",
                                 "import socket; print(socket.gethostbyname('extra'))"])
    assert result.stdout.strip() == extra.cluster_ip


UPSTREAM = '''
import socket, struct
# a resolver in plain Python (the pod runs it as nobody, with the system's python3): every A
# question gets 192.0.2.7
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 53))
while True:
    data, peer = sock.recvfrom(4096)
    end = 12
    while data[end]:
        end += data[end] + 1
    question = data[12:end + 5]
    qtype = struct.unpack("!H", data[end + 1:end + 3])[0]
    answer = (struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + bytes([192, 0, 2, 7])) if qtype == 1 else b""
    head = data[:2] + struct.pack("!HHHHH", 0x8180, 1, 1 if answer else 0, 0, 0)
    sock.sendto(head + question + answer, peer)
'''


def test_opt_in_upstream_forwards_outside_names(labnet_lab):
    """With `dns.upstream`, names outside the cluster go to that resolver (here a pod of the
    lab playing the upstream: the lab stays sealed)."""
    import json

    upstream = f"[{{name: dns, command: {json.dumps([POD_PYTHON, '-c', UPSTREAM])}}}]"
    text = lab_text(bare_pod("upstream", node="node2", containers=upstream),
                    bare_pod("client", node="node1"), settings="dns: {upstream: [172.16.2.2]}\n")
    lab = labnet_lab(text=text)
    assert lab.pod("upstream").ip == "172.16.2.2"
    for _ in range(50):  # the upstream program needs a moment to start
        reply = dig(lab, "www.example.com.", "A")
        if "192.0.2.7" in reply:
            break
        import time
        time.sleep(0.1)
    assert answers(reply)[0][3:] == ["A", "192.0.2.7"]
    assert "status: NOERROR" in reply
    # cluster names are still answered by the cluster DNS itself
    assert answers(dig(lab, "kube-dns.kube-system.svc.cluster.local"))[0][4] == "172.19.0.10"


def test_junk_and_mutated_queries_leave_the_dns_bounded_and_answering(labnet_lab):
    """20,000 random and mutated packets (UDP and TCP) at the lab's cluster DNS, from a pod,
    through its ClusterIP (bench/fuzz_dns.py): the agent's memory stays bounded, and a valid
    question is answered right after."""
    import json
    from pathlib import Path

    lab = labnet_lab()
    fuzz = Path(__file__).resolve().parents[2] / "bench" / "fuzz_dns.py"
    result = lab.exec("client", [sys.executable, str(fuzz), "--server", "172.19.0.10",
                                 "--packets", "20000", "--seconds", "60", "--idle", "12",
                                 "--pid", str(lab.state.agent_pid()), "--json",
                                 "--name", "kube-dns.kube-system.svc.cluster.local",
                                 "--expect", "172.19.0.10"], timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    rss = figures["rss_mb"]
    assert rss["after"]["VmRSS"] - rss["before"]["VmRSS"] < 50, rss
    assert all(check["ok"] for check in figures["check"].values()), figures["check"]
    assert lab.status().healthy
