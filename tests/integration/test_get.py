"""`labnet get` on a real lab, through the real CLI, read the way a kubectl user reads it:
`-o json | jq`, `-o jsonpath`, `-l`, `-o name`, one object by name, and the values checked
against the kernel (a pod's podIP is the address `ip` shows in it, a node's InternalIP its eth0).

jq is used where it is installed (`command -v jq`); without it the same filters are applied in
Python, so the test still runs (and says so in its output)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.integration.conftest import labnet_cli, wait_for

JQ = shutil.which("jq")


@pytest.fixture(scope="module")
def seed(labnet_module_lab):
    return labnet_module_lab()  # the default lab: client, my-nginx-* and Service my-nginx


def get(lab, *args: str) -> subprocess.CompletedProcess:
    return labnet_cli("get", "--lab", lab.name, *args)


def ok(lab, *args: str) -> str:
    result = get(lab, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def jq(text: str, program: str, fallback) -> list[str]:
    """`jq -r PROGRAM` of `text`, line by line (or `fallback(parsed)` without jq)."""
    if JQ is None:
        print(f"jq is not installed: {program!r} evaluated in Python")
        return [str(v) for v in fallback(json.loads(text))]
    result = subprocess.run([JQ, "-r", program], input=text, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def kernel_ipv4(lab, target: str, device: str = "eth0") -> str:
    """The IPv4 address `ip -4 addr` shows on `device` in a pod or a node."""
    shown = lab.exec(target, ["ip", "-4", "-o", "addr", "show", "dev", device], check=True)
    return re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", shown.stdout).group(1)


def nginx_pods(lab) -> list[str]:
    return sorted(p.name for p in lab.plan.pods if p.name.startswith("my-nginx-"))


def test_pods_json_through_jq_has_the_pods_real_addresses(seed):
    text = ok(seed, "pods", "-o", "json")
    assert jq(text, ".kind, .apiVersion, .metadata.resourceVersion",
              lambda d: [d["kind"], d["apiVersion"], d["metadata"]["resourceVersion"]]) == \
        ["List", "v1", ""]
    rows = jq(text, '.items[] | [.metadata.name, .status.podIP, .status.hostIP, .spec.nodeName, '
                    '.status.phase, (.status.conditions[] | select(.type == "Ready") | .status)]'
                    ' | @tsv',
              lambda d: ["\t".join([i["metadata"]["name"], i["status"]["podIP"],
                                    i["status"]["hostIP"], i["spec"]["nodeName"],
                                    i["status"]["phase"],
                                    next(c["status"] for c in i["status"]["conditions"]
                                         if c["type"] == "Ready")])
                         for i in d["items"]])
    seen = {}
    for row in rows:
        name, pod_ip, host_ip, node, phase, ready = row.split("\t")
        seen[name] = pod_ip
        assert pod_ip == kernel_ipv4(seed, name)
        assert host_ip == kernel_ipv4(seed, f"node/{node}")
        assert (phase, ready) == ("Running", "True")
    assert sorted(seen) == sorted(["client", *nginx_pods(seed)])  # default namespace only
    # every pod's podIPs, as jq users read them
    assert jq(text, ".items[].status.podIPs[0].ip",
              lambda d: [i["status"]["podIPs"][0]["ip"] for i in d["items"]]) == \
        [seen[name] for name in sorted(seen)]


def test_one_pod_by_name_is_the_object_itself(seed):
    pod = json.loads(ok(seed, "pod", "client", "-o", "json"))
    assert (pod["apiVersion"], pod["kind"], pod["metadata"]["name"],
            pod["metadata"]["namespace"]) == ("v1", "Pod", "client", "default")
    assert pod["status"]["podIP"] == kernel_ipv4(seed, "client")
    assert pod["spec"]["containers"][0]["image"] == "busybox"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", pod["metadata"]["creationTimestamp"])
    assert ok(seed, "pod/client", "-o", "jsonpath={.status.podIP}") == pod["status"]["podIP"]
    assert ok(seed, "pod", "client", "-o", "yaml").startswith("apiVersion: v1\nkind: Pod\n")


def test_jsonpath(seed):
    cluster_ip = ok(seed, "svc", "my-nginx", "-o", "jsonpath={.spec.clusterIP}")
    assert cluster_ip == seed.service_ip("my-nginx")
    assert "my-nginx" in seed.curl("client", f"http://{cluster_ip}/")  # and it answers
    names = ok(seed, "pods", "-o", "jsonpath={.items[*].metadata.name}").split(" ")
    assert names == sorted(["client", *nginx_pods(seed)])
    lines = ok(seed, "pods", "-A", "-o", 'jsonpath={range .items[*]}{.metadata.namespace}/'
               '{.metadata.name}{"\\t"}{.status.podIP}{"\\n"}{end}').splitlines()
    assert {line.split("\t")[0] for line in lines} == {p.key for p in seed.plan.pods}
    for line in lines:
        key, ip = line.split("\t")
        namespace, name = key.split("/")
        assert ip == seed.pod_ip(name, namespace)
    node_port = ok(seed, "svc", "my-nginx-nodeport", "-o", "jsonpath={.spec.ports[0].nodePort}")
    assert node_port == "30080"
    internal = ok(seed, "nodes", "-o", 'jsonpath={.items[?(@.metadata.name=="node1")]'
                  '.status.addresses[?(@.type=="InternalIP")].address}')
    assert internal == kernel_ipv4(seed, "node/node1") == seed.node_ip("node1")


def test_label_and_field_selectors(seed):
    assert ok(seed, "pods", "-l", "app=my-nginx", "-o", "name").splitlines() == \
        [f"pod/{n}" for n in nginx_pods(seed)]
    assert ok(seed, "pods", "-l", "app notin (my-nginx)", "-o", "name") == "pod/client\n"
    assert ok(seed, "pods", "-l", "app in (client, nothing),!pod-template-hash", "-o",
              "name") == "pod/client\n"
    assert ok(seed, "pods", "-A", "-l", "k8s-app", "-o", "name").startswith("pod/coredns-")
    assert ok(seed, "pods", "-A", "--field-selector", "spec.nodeName=node1,"
              "metadata.namespace=default", "-o", "name").splitlines() == sorted(
        f"pod/{p.name}" for p in seed.plan.pods if p.node == "node1" and p.namespace == "default")
    result = get(seed, "pods", "-l", "app in my-nginx")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ('Error from server (BadRequest): Unable to find "/v1, Resource=pods"'
                             ' that match label selector "app in my-nginx", field selector "": '
                             "unable to parse requirement: found 'my-nginx' expected: '('\n")


def test_services_endpoints_and_slices(seed):
    nginx_ips = sorted(seed.pod_ip(n) for n in nginx_pods(seed))
    text = ok(seed, "endpointslices", "-l", "kubernetes.io/service-name=my-nginx", "-o", "json")
    assert jq(text, ".items[].endpoints[] | select(.conditions.ready) | .addresses[0]",
              lambda d: [e["addresses"][0] for i in d["items"] for e in i["endpoints"]
                         if e["conditions"]["ready"]]) == nginx_ips
    assert jq(text, ".items[0].ports[0] | [.port, .protocol] | @tsv",
              lambda d: ["\t".join([str(d["items"][0]["ports"][0]["port"]),
                                    d["items"][0]["ports"][0]["protocol"]])]) == ["80\tTCP"]
    svc = json.loads(ok(seed, "svc", "my-nginx-nodeport", "-o", "json"))
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"] == [{"nodePort": 30080, "port": 80, "protocol": "TCP",
                                     "targetPort": 80}]
    table = ok(seed, "svc").splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert any(line.split()[:5] == ["my-nginx-nodeport", "NodePort",
                                    seed.service_ip("my-nginx-nodeport"), "<none>",
                                    "80:30080/TCP"] for line in table[1:])
    ep = ok(seed, "ep", "my-nginx").splitlines()
    assert ep[1].split()[1] == ",".join(f"{ip}:80" for ip in nginx_ips)


def test_tables_and_names(seed):
    pods = ok(seed, "pods", "-o", "wide").splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                               "NOMINATED", "NODE", "READINESS", "GATES"]
    for line in pods[1:]:
        name, ready, status, restarts, age, ip, node, *_ = line.split()
        assert (ready, status, restarts) == ("1/1", "Running", "0")
        assert re.fullmatch(r"\d+[smhdy].*", age) and ip == seed.pod_ip(name)
    header = pods[0]
    assert all(line.index(line.split()[5]) == header.index("IP") for line in pods[1:])
    assert ok(seed, "ns", "-o", "name").splitlines() == [
        "namespace/default", "namespace/kube-node-lease", "namespace/kube-public",
        "namespace/kube-system"]
    nodes = ok(seed, "nodes").splitlines()
    assert [line.split()[:2] for line in nodes[1:]] == [["node1", "Ready"], ["node2", "Ready"]]


def test_errors_read_as_kubectls(seed):
    result = get(seed, "pod", "nosuch")
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", 'Error from server (NotFound): pods "nosuch" not found\n')
    result = get(seed, "deployments")
    assert (result.returncode, result.stderr) == (
        1, 'error: the server doesn\'t have a resource type "deployments"\n')
    result = get(seed, "pods", "-n", "kube-public")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "", "No resources found in kube-public namespace.\n")


NOT_READY = """\
apiVersion: v1
kind: Pod
metadata: {name: never, labels: {app: my-nginx}}
spec:
  nodeName: node2
  containers:
    - name: c
      ports: [{containerPort: 80}]
      readinessProbe: {tcpSocket: {port: 9999}, periodSeconds: 1}
"""


def test_a_pod_that_never_gets_ready(labnet_lab):
    lab = labnet_lab()
    lab.apply(NOT_READY)
    never_ip = lab.pod_ip("never")
    assert wait_for(lambda: "never" in ok(lab, "pods"), 10)
    pod = json.loads(ok(lab, "pod", "never", "-o", "json"))
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert (ready["Ready"], ready["ContainersReady"]) == ("False", "False")
    assert pod["status"]["podIP"] == kernel_ipv4(lab, "never")
    row = next(line.split() for line in ok(lab, "pods").splitlines() if line.startswith("never"))
    assert row[1:3] == ["0/1", "Running"]
    endpoints = json.loads(ok(lab, "ep", "my-nginx", "-o", "json"))
    (subset,) = endpoints["subsets"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == [never_ip]
    assert never_ip not in [a["ip"] for a in subset["addresses"]]
    text = ok(lab, "endpointslices", "-l", "kubernetes.io/service-name=my-nginx", "-o", "json")
    assert jq(text, f'.items[].endpoints[] | select(.addresses[0] == "{never_ip}") | '
                    '.conditions.ready',
              lambda d: [str(e["conditions"]["ready"]).lower() for i in d["items"]
                         for e in i["endpoints"] if e["addresses"][0] == never_ip]) == ["false"]
    # and kube-proxy agrees: requests to the Service never reach it
    for _ in range(5):
        assert "never" not in lab.curl("client", "http://my-nginx/")
