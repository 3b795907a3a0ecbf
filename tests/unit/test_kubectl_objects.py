"""The lab's Kubernetes objects (labnet/kubectl/objects.py) for a hand-built plan, status report
and manifests, compared field by field with the objects the API server returns for the same
cluster: the shapes are the Kubernetes API reference's (core/v1 Pod, Service, Endpoints, Node,
Namespace; discovery.k8s.io/v1 EndpointSlice), written out literally here."""

from __future__ import annotations

import re

from labnet.kubectl import Cluster
from labnet.kubectl.objects import object_uid
from labnet.model import Probe
from labnet.plan import (
    Plan,
    PlanContainer,
    PlanEndpoint,
    PlanNetwork,
    PlanNode,
    PlanPod,
    PlanPort,
    PlanService,
    PlanServicePort,
)
from labnet.status import (
    AgentStatus,
    ExternalStatus,
    NodeStatus,
    PodStatus,
    ProcessStatus,
    ServiceStatus,
    StatusReport,
    UnderlayStatus,
)

CREATED = "2024-05-01T12:00:00Z"
NETWORK = PlanNetwork(underlay_cidr="192.168.255.0/24", pod_cidr="172.16.0.0/16",
                      node_cidr_mask=24, service_cidr="172.19.0.0/16",
                      cluster_dns="172.19.0.10", cluster_domain="cluster.local", vxlan_vni=1,
                      vxlan_port=8472, mtu=1500, dns_ttl=5)
NODE_INFO = {"architecture": "amd64", "kernelVersion": "6.1.0-18-amd64",
             "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)"}

WEB_A, WEB_B = "web-5d8f7c9b4-abcde", "web-5d8f7c9b4-fghij"
DNS_POD = "coredns-7db6d8ff4d-x2x9v"
HTTP = PlanPort(80, "TCP", "http")


def node(name: str, index: int, labels: dict) -> PlanNode:
    return PlanNode(name, index, f"t1-{name}", f"192.168.255.{10 + index}", f"t1-{name}-u",
                    f"172.16.{index}.0/24", f"172.16.{index}.1", f"172.16.{index}.0",
                    "02:00:00:00:00:0" + str(index), labels)


def pod(namespace: str, name: str, node_name: str, ip: str, labels: dict, containers,
        owner: str = "") -> PlanPod:
    return PlanPod(namespace, name, f"t1-{namespace}-{name}", node_name, ip, f"veth{ip[-1]}",
                   labels, owner, tuple(containers))


def ep(ip: str, port: int, node_name: str, pod_key: str = "", ready: bool = True):
    return PlanEndpoint(ip, port, node_name, ready=ready, pod=pod_key)


WEB_EPS = (ep("172.16.1.3", 80, "node1", f"default/{WEB_A}"),
           ep("172.16.2.2", 80, "node2", f"default/{WEB_B}"))
DNS_EPS = (ep("172.16.2.4", 53, "node2", f"kube-system/{DNS_POD}"),)

PLAN = Plan(
    lab="t1", network=NETWORK, underlay_netns="t1-underlay", external_netns="t1-external",
    external_ip="192.168.255.254",
    nodes=(node("node1", 1, {"kubernetes.io/hostname": "node1", "kubernetes.io/os": "linux"}),
           node("node2", 2, {"kubernetes.io/hostname": "node2", "kubernetes.io/os": "linux",
                             "node-role.kubernetes.io/control-plane": ""})),
    pods=(
        pod("default", "client", "node1", "172.16.1.2", {"app": "client"},
            [PlanContainer("client")]),
        pod("default", WEB_A, "node1", "172.16.1.3", {"app": "web", "pod-template-hash":
                                                      "5d8f7c9b4"},
            [PlanContainer("nginx", ports=(HTTP,),
                           readiness=Probe("http", 80, "/healthz", period=5))],
            "Deployment/web"),
        pod("default", WEB_B, "node2", "172.16.2.2", {"app": "web", "pod-template-hash":
                                                      "5d8f7c9b4"},
            [PlanContainer("nginx", ports=(HTTP,),
                           readiness=Probe("http", 80, "/healthz", period=5))],
            "Deployment/web"),
        pod("default", "worker", "node2", "172.16.2.3", {"app": "worker"},
            [PlanContainer("loop", ("sh", "-c", "sleep 1"))]),
        pod("kube-system", DNS_POD, "node2", "172.16.2.4",
            {"k8s-app": "kube-dns", "pod-template-hash": "7db6d8ff4d"},
            [PlanContainer("coredns", ports=(PlanPort(53, "UDP", "dns"),
                                             PlanPort(53, "TCP", "dns-tcp"),
                                             PlanPort(9153, "TCP", "metrics")), server="dns")],
            "Deployment/coredns"),
    ),
    namespaces=("default", "kube-system", "kube-public", "kube-node-lease", "team-a"),
    services=(
        PlanService("default", "web", "ClusterIP", "172.19.0.20",
                    (PlanServicePort("http", "TCP", 80, "http", 0, WEB_EPS),),
                    selector={"app": "web"}),
        PlanService("default", "web-np", "NodePort", "172.19.0.21",
                    (PlanServicePort("", "TCP", 80, "80", 30080, WEB_EPS),),
                    external_traffic_local=True, selector={"app": "web"}),
        PlanService("default", "web-lb", "LoadBalancer", "172.19.0.22",
                    (PlanServicePort("", "TCP", 80, "80", 31000, WEB_EPS),),
                    load_balancer_ips=("203.0.113.10",), session_affinity_timeout=10800,
                    health_check_node_port=32000, external_traffic_local=True,
                    selector={"app": "web"}),
        PlanService("default", "web-headless", "ClusterIP", "None",
                    (PlanServicePort("", "TCP", 80, "80", 0, WEB_EPS),),
                    selector={"app": "web"}),
        PlanService("default", "db", "ExternalName", "", external_name="db.example.com"),
        PlanService("default", "legacy", "ClusterIP", "172.19.0.23",
                    (PlanServicePort("", "TCP", 5432, "5432", 0,
                                     (ep("192.0.2.10", 5432, ""),)),),
                    external_ips=("198.51.100.7",)),
        PlanService("kube-system", "kube-dns", "ClusterIP", "172.19.0.10",
                    (PlanServicePort("dns", "UDP", 53, "53", 0, DNS_EPS),
                     PlanServicePort("dns-tcp", "TCP", 53, "53", 0, DNS_EPS),
                     PlanServicePort("metrics", "TCP", 9153, "9153", 0,
                                     (ep("172.16.2.4", 9153, "node2",
                                         f"kube-system/{DNS_POD}"),))),
                    selector={"k8s-app": "kube-dns"}),
    ),
)

STATUS = StatusReport(
    lab="t1", agent=AgentStatus(4242, True, 0, 4241, "running"),
    underlay=UnderlayStatus("t1-underlay", "192.168.255.0/24"),
    external=ExternalStatus("t1-external", "192.168.255.254"), network=NETWORK,
    nodes=(NodeStatus("node1", "t1-node1", "192.168.255.11", "172.16.1.0/24", 3),
           NodeStatus("node2", "t1-node2", "192.168.255.12", "172.16.2.0/24", 3,
                      missing=("route 172.16.1.0/24 via flannel.1",))),
    pods=(PodStatus("default", "client", "172.16.1.2", "node1", "t1-default-client"),
          PodStatus("default", WEB_A, "172.16.1.3", "node1", "x", ("80/TCP",), ("80/TCP",)),
          PodStatus("default", WEB_B, "172.16.2.2", "node2", "x", ("80/TCP",), ("80/TCP",),
                    missing=("readiness (not answering yet)",)),
          PodStatus("default", "worker", "172.16.2.3", "node2", "x",
                    processes=(ProcessStatus("loop", ("sh", "-c", "sleep 1"), None, False, 3,
                                             1),),
                    missing=("process loop",)),
          PodStatus("kube-system", DNS_POD, "172.16.2.4", "node2", "x")),
    services=(ServiceStatus("default", "web", "ClusterIP", "172.19.0.20", "<none>",
                            ("80/TCP",), ("172.16.1.3:80",)),
              ServiceStatus("default", "web-np", "NodePort", "172.19.0.21", "<none>",
                            ("80:30080/TCP",), ("172.16.1.3:80",)),
              ServiceStatus("default", "web-lb", "LoadBalancer", "172.19.0.22", "203.0.113.10",
                            ("80:31000/TCP",), ("172.16.1.3:80",)),
              ServiceStatus("default", "web-headless", "ClusterIP", "None", "<none>",
                            ("80/TCP",), ("172.16.1.3:80",)),
              ServiceStatus("default", "db", "ExternalName", "<none>", "<none>"),
              ServiceStatus("default", "legacy", "ClusterIP", "172.19.0.23", "198.51.100.7",
                            ("5432/TCP",), ("192.0.2.10:5432",)),
              ServiceStatus("kube-system", "kube-dns", "ClusterIP", "172.19.0.10", "<none>",
                            ("53/UDP", "53/TCP", "9153/TCP"),
                            ("172.16.2.4:53", "172.16.2.4:9153"))),
)

MANIFESTS = [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "labels": {"app": "client"}},
     "spec": {"nodeName": "node1", "containers": [{"name": "client", "image": "busybox"}]}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}},
                           "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                                                    "ports": [{"containerPort": 80,
                                                               "name": "http"}]}]}}}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker", "namespace": "default",
                                                     "labels": {"app": "worker"}},
     "spec": {"containers": [{"name": "loop", "image": "busybox", "command": ["sh", "-c"],
                              "args": ["sleep 1"]}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-lb",
                                                         "labels": {"tier": "edge"}},
     "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
     "metadata": {"name": "legacy-1", "labels": {"kubernetes.io/service-name": "legacy"}},
     "addressType": "IPv4",
     "endpoints": [{"addresses": ["192.0.2.10"], "conditions": {"ready": True}}],
     "ports": [{"name": "", "port": 5432, "protocol": "TCP"}]},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a",
                                                           "labels": {"team": "a"}}},
]


def hand_cluster() -> Cluster:
    return Cluster(PLAN, STATUS, MANIFESTS, CREATED, NODE_INFO)


def uid(kind: str, namespace: str, name: str) -> str:
    return object_uid("t1", kind, namespace, name)


def find(objects: list[dict], name: str) -> dict:
    return next(o for o in objects if o["metadata"]["name"] == name)


def test_a_deployments_pod_that_is_not_ready():
    got = find(hand_cluster().list("pods"), WEB_B)
    assert got == {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": WEB_B, "namespace": "default",
            "labels": {"app": "web", "pod-template-hash": "5d8f7c9b4"},
            "uid": uid("Pod", "default", WEB_B), "creationTimestamp": CREATED,
            "generateName": "web-5d8f7c9b4-",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": "web-5d8f7c9b4",
                                 "uid": uid("ReplicaSet", "default", "web-5d8f7c9b4"),
                                 "controller": True, "blockOwnerDeletion": True}]},
        "spec": {
            "containers": [{
                "name": "nginx", "image": "nginx:1.27",
                "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80,
                                               "scheme": "HTTP"},
                                   "periodSeconds": 5, "failureThreshold": 3,
                                   "successThreshold": 1}}],
            "nodeName": "node2", "restartPolicy": "Always"},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                 "message": "containers with unready status: [nginx]"},
                {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady",
                 "message": "containers with unready status: [nginx]"},
                {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "nginx", "ready": False, "restartCount": 0,
                                   "started": True, "state": {"running": {}},
                                   "image": "nginx:1.27"}],
            "hostIP": "192.168.255.12", "hostIPs": [{"ip": "192.168.255.12"}],
            "podIP": "172.16.2.2", "podIPs": [{"ip": "172.16.2.2"}]}}


def test_a_command_pod_in_crash_loop_keeps_its_command_and_args():
    got = find(hand_cluster().list("po"), "worker")
    assert got["spec"]["containers"] == [{"name": "loop", "image": "busybox",
                                          "command": ["sh", "-c"], "args": ["sleep 1"]}]
    assert got["status"]["containerStatuses"] == [{
        "name": "loop", "ready": False, "restartCount": 3, "started": False,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}, "image": "busybox"}]
    assert "ownerReferences" not in got["metadata"]


def test_pods_without_a_status_report_are_ready_and_keep_the_plans_command():
    cluster = Cluster(PLAN, None, [], CREATED)
    worker = find(cluster.list("pods"), "worker")
    assert worker["spec"]["containers"] == [{"name": "loop",
                                             "command": ["sh", "-c", "sleep 1"]}]
    assert worker["status"]["conditions"][1] == {"type": "Ready", "status": "True"}


def test_a_load_balancer_service():
    got = find(hand_cluster().list("svc"), "web-lb")
    assert got == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web-lb", "namespace": "default", "labels": {"tier": "edge"},
                     "uid": uid("Service", "default", "web-lb"),
                     "creationTimestamp": CREATED},
        "spec": {"clusterIP": "172.19.0.22", "clusterIPs": ["172.19.0.22"],
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "internalTrafficPolicy": "Cluster",
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 31000}],
                 "selector": {"app": "web"}, "sessionAffinity": "ClientIP",
                 "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                 "type": "LoadBalancer", "externalTrafficPolicy": "Local",
                 "allocateLoadBalancerNodePorts": True, "healthCheckNodePort": 32000},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10", "ipMode": "VIP"}]}}}


def test_headless_external_name_and_named_target_port_services():
    services = hand_cluster().list("services")
    headless = find(services, "web-headless")["spec"]
    assert (headless["clusterIP"], headless["clusterIPs"]) == ("None", ["None"])
    assert find(services, "db")["spec"] == {"externalName": "db.example.com",
                                            "sessionAffinity": "None", "type": "ExternalName"}
    assert find(services, "db")["status"] == {"loadBalancer": {}}
    assert find(services, "web")["spec"]["ports"] == [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]
    assert find(services, "legacy")["spec"]["externalIPs"] == ["198.51.100.7"]
    assert "selector" not in find(services, "legacy")["spec"]
    # the built-in cluster DNS Service has no manifest: labelled as kubeadm labels it
    assert find(services, "kube-dns")["metadata"]["labels"] == {"k8s-app": "kube-dns"}


def test_endpoints_put_unready_pods_in_not_ready_addresses():
    got = find(hand_cluster().list("ep"), "web")
    assert got == {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default", "uid": uid("Endpoints", "default",
                                                                        "web"),
                     "creationTimestamp": CREATED},
        "subsets": [{
            "addresses": [{"ip": "172.16.1.3", "nodeName": "node1",
                           "targetRef": {"kind": "Pod", "name": WEB_A, "namespace": "default",
                                         "uid": uid("Pod", "default", WEB_A)}}],
            "notReadyAddresses": [{"ip": "172.16.2.2", "nodeName": "node2",
                                   "targetRef": {"kind": "Pod", "name": WEB_B,
                                                 "namespace": "default",
                                                 "uid": uid("Pod", "default", WEB_B)}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]}


def test_endpoints_of_a_service_whose_ports_have_different_addresses():
    dns = find(hand_cluster().list("endpoints"), "kube-dns")
    assert [[a["ip"] for a in s["addresses"]] for s in dns["subsets"]] == [["172.16.2.4"]]
    assert dns["subsets"][0]["ports"] == [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        {"name": "metrics", "port": 9153, "protocol": "TCP"}]
    names = {o["metadata"]["name"] for o in hand_cluster().list("endpoints")}
    assert names == {"web", "web-np", "web-lb", "web-headless", "kube-dns"}  # no selector: none


def test_the_endpointslice_controllers_slice():
    slices = hand_cluster().list("endpointslices")
    web = [s for s in slices
           if s["metadata"]["labels"]["kubernetes.io/service-name"] == "web"]
    assert len(web) == 1
    got = web[0]
    assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{5}", got["metadata"]["name"])
    name = got["metadata"]["name"]
    assert got == {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": name, "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/managed-by":
                       "endpointslice-controller.k8s.io",
                       "kubernetes.io/service-name": "web"},
            "uid": uid("EndpointSlice", "default", name), "creationTimestamp": CREATED,
            "generateName": "web-",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                 "uid": uid("Service", "default", "web"), "controller": True,
                                 "blockOwnerDeletion": True}]},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["172.16.1.3"],
             "conditions": {"ready": True, "serving": True, "terminating": False},
             "nodeName": "node1",
             "targetRef": {"kind": "Pod", "name": WEB_A, "namespace": "default",
                           "uid": uid("Pod", "default", WEB_A)}},
            {"addresses": ["172.16.2.2"],
             "conditions": {"ready": False, "serving": False, "terminating": False},
             "nodeName": "node2",
             "targetRef": {"kind": "Pod", "name": WEB_B, "namespace": "default",
                           "uid": uid("Pod", "default", WEB_B)}}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    # the same name on every call: drawn from the lab, the Service and its ports
    assert [s["metadata"]["name"] for s in hand_cluster().list("endpointslices")] == \
        [s["metadata"]["name"] for s in slices]


def test_headless_slices_and_user_written_slices():
    slices = hand_cluster().list("endpointslice.discovery.k8s.io")
    headless = next(s for s in slices
                    if s["metadata"]["labels"]["kubernetes.io/service-name"] == "web-headless")
    assert headless["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    assert headless["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]
    legacy = find(slices, "legacy-1")
    assert legacy == {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "legacy-1", "labels": {"kubernetes.io/service-name": "legacy"},
                     "namespace": "default", "uid": uid("EndpointSlice", "default",
                                                         "legacy-1"),
                     "creationTimestamp": CREATED},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.10"], "conditions": {"ready": True}}],
        "ports": [{"name": "", "port": 5432, "protocol": "TCP"}]}


def test_a_service_without_endpoints_keeps_one_empty_slice():
    empty = PlanService("default", "none", "ClusterIP", "172.19.0.30",
                        (PlanServicePort("", "TCP", 80, "80"),), selector={"app": "none"})
    plan = Plan(**{**PLAN.__dict__, "services": (empty,)})
    (got,) = Cluster(plan, None, [], CREATED).list("endpointslices")
    assert (got["endpoints"], got["ports"]) == (None, None)


def test_nodes():
    nodes = hand_cluster().list("nodes")
    assert find(nodes, "node2") == {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node2",
                     "labels": {"kubernetes.io/hostname": "node2", "kubernetes.io/os": "linux",
                                "node-role.kubernetes.io/control-plane": ""},
                     "uid": uid("Node", "", "node2"), "creationTimestamp": CREATED},
        "spec": {"podCIDR": "172.16.2.0/24", "podCIDRs": ["172.16.2.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.255.12"},
                                 {"type": "Hostname", "address": "node2"}],
                   "conditions": [{"type": "Ready", "status": "False",
                                   "reason": "KubeletNotReady",
                                   "message": "missing: route 172.16.1.0/24 via flannel.1"}],
                   "nodeInfo": NODE_INFO}}
    assert find(nodes, "node1")["status"]["conditions"][0]["status"] == "True"


def test_namespaces():
    namespaces = hand_cluster().list("ns")
    assert [n["metadata"]["name"] for n in namespaces] == [
        "default", "kube-node-lease", "kube-public", "kube-system", "team-a"]
    assert find(namespaces, "team-a") == {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-a",
                     "labels": {"kubernetes.io/metadata.name": "team-a", "team": "a"},
                     "uid": uid("Namespace", "", "team-a"), "creationTimestamp": CREATED},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def test_lists_are_sorted_as_the_api_server_lists_them():
    pods = hand_cluster().list("pods")
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods] == [
        ("default", "client"), ("default", WEB_A), ("default", WEB_B), ("default", "worker"),
        ("kube-system", DNS_POD)]


def test_uids_are_stable_and_distinct():
    one, two = hand_cluster().list("pods"), hand_cluster().list("pods")
    assert [p["metadata"]["uid"] for p in one] == [p["metadata"]["uid"] for p in two]
    assert len({p["metadata"]["uid"] for p in one}) == len(one)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        one[0]["metadata"]["uid"])


def test_a_load_balancer_keeps_the_ingress_its_manifest_wrote():
    written = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-lb"},
               "spec": {"type": "LoadBalancer"},
               "status": {"loadBalancer": {"ingress": [
                   {"ip": "203.0.113.10", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]}}}
    got = find(Cluster(PLAN, STATUS, [written], CREATED).list("svc"), "web-lb")
    assert got["status"]["loadBalancer"]["ingress"] == [
        {"ip": "203.0.113.10", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]


def test_creation_time_is_when_the_lab_was_made(tmp_path):
    import os

    from labnet.kubectl.host import host_node_info, lab_created
    from labnet.state import StateDir

    state = StateDir("t1", root=tmp_path)
    state.ensure()
    state.lock_path.write_text("")
    os.utime(state.lock_path, (1714564800, 1714564800))
    state.write("plan.json", "{}")  # a later write does not move the lab's time
    assert lab_created(state) == "2024-05-01T12:00:00Z"
    os_release = tmp_path / "os-release"
    os_release.write_text('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 '
                          '(bookworm)"\n')
    info = host_node_info(os_release)
    assert info["osImage"] == "Debian GNU/Linux 12 (bookworm)"
    assert info["operatingSystem"] == "linux" and info["kernelVersion"] == os.uname().release
