"""The lab as the Kubernetes API would serve it: Pods, Services, Endpoints, EndpointSlices,
Nodes and Namespaces as the dicts `kubectl get -o json` prints (field names and shapes from the
Kubernetes API reference: core/v1 and discovery.k8s.io/v1).

Pure: built from the plan (what the lab is), the status report (what is ready now; None: as
the plan says) and the desired objects (the manifests as the user gave them: images, commands,
Service labels, status.loadBalancer, user EndpointSlices). labnet has no API server, so two
things an API server would store are made up here, openly:

- `metadata.uid` is a deterministic UUID (uuid5 of lab/kind/namespace/name), so the same
  object has the same uid on every `get` — and a pod recreated under the same name keeps it,
  which a real API server would not do;
- `metadata.creationTimestamp` is the one time labnet records for a lab (see `Cluster`), the
  same for every object of the lab.

What labnet does not model is left out rather than invented: no resourceVersion, no
managedFields, no resources/QoS, no condition transition times, no kubeletVersion.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labnet.kubectl.command import GetRequest, GetResult, run_get
from labnet.kubectl.resources import resource_for

if TYPE_CHECKING:  # types only: building objects reads them by attribute, nothing more
    import datetime as dt

    from labnet.plan import Plan, PlanPod, PlanService
    from labnet.status import PodStatus, ServiceStatus, StatusReport

__all__ = ["Cluster", "object_uid"]

# every uid labnet shows is uuid5(UID_SPACE, "<lab>/<kind>/<namespace>/<name>")
UID_SPACE = uuid.uuid5(uuid.NAMESPACE_URL, "labnet:kubernetes-objects")
MAX_SLICE_ENDPOINTS = 100  # the EndpointSlice controller's --max-endpoints-per-slice default
GENERATE_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # apiserver's generateName alphabet


def object_uid(lab: str, kind: str, namespace: str, name: str) -> str:
    return str(uuid.uuid5(UID_SPACE, f"{lab}/{kind}/{namespace}/{name}"))


def manifest_key(obj: Any) -> tuple[str, str, str]:
    if not isinstance(obj, dict):
        return ("", "", "")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    kind = str(obj.get("kind", ""))
    namespace = "" if kind in ("Namespace", "Node") else str(meta.get("namespace") or "default")
    return (kind, namespace, str(meta.get("name", "")))


def dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def target_port(text: str) -> int | str:
    """A Service port's targetPort as the API stores it (IntOrString)."""
    return int(text) if text.isdigit() else text


@dataclass
class Cluster:
    """One lab's objects. `created`: RFC 3339 UTC (`2024-05-01T12:00:00Z`), the time the lab's
    state directory was made (labnet.Lab passes it); `node_info`: status.nodeInfo of every
    node (the nodes are network namespaces of one machine: its kernel, OS and architecture)."""

    plan: Plan
    status: StatusReport | None = None
    desired: list = field(default_factory=list)
    created: str = "1970-01-01T00:00:00Z"
    node_info: dict | None = None

    def __post_init__(self) -> None:
        # plain JSON data (the desired state's located mappings carry file positions)
        self.desired = json.loads(json.dumps(self.desired))
        self.manifests = {manifest_key(o): o for o in self.desired if isinstance(o, dict)}
        self.pod_status = {p.key: p for p in self.status.pods} if self.status else {}
        self.service_status = ({f"{s.namespace}/{s.name}": s for s in self.status.services}
                               if self.status else {})
        self.node_status = {n.name: n for n in self.status.nodes} if self.status else {}

    # --- common pieces --------------------------------------------------------------------

    def uid(self, kind: str, namespace: str, name: str) -> str:
        return object_uid(self.plan.lab, kind, namespace, name)

    def metadata(self, kind: str, name: str, namespace: str | None,
                 labels: dict | None = None) -> dict:
        meta: dict[str, Any] = {"name": name}
        if namespace is not None:
            meta["namespace"] = namespace
        if labels:
            meta["labels"] = dict(sorted(labels.items()))
        meta["uid"] = self.uid(kind, namespace or "", name)
        meta["creationTimestamp"] = self.created
        return meta

    def manifest(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.manifests.get((kind, namespace, name))

    def list(self, resource: str) -> list[dict]:
        """Every object of a resource type (`pods`, `svc`, `EndpointSlice`...) in every
        namespace, as the API server lists them."""
        return self.objects(resource_for(resource).kind)

    def get(self, request: GetRequest, now: dt.datetime | None = None) -> GetResult:
        """What `kubectl get` prints for `request` against this lab."""
        built: dict[str, list[dict]] = {}

        def objects_of(res) -> list[dict]:
            if res.kind not in built:
                built[res.kind] = self.objects(res.kind)
            return built[res.kind]

        return run_get(request, objects_of, now)

    def objects(self, kind: str) -> list[dict]:
        """Every object of `kind`, sorted as the API server lists them (namespace, name)."""
        build = {"Pod": self.pods, "Service": self.services, "Endpoints": self.endpoints,
                 "EndpointSlice": self.endpoint_slices, "Node": self.nodes,
                 "Namespace": self.namespaces}[kind]
        return sorted(build(), key=lambda o: (o["metadata"].get("namespace", ""),
                                              o["metadata"]["name"]))

    # --- Pods -------------------------------------------------------------------------------

    def pod_manifest_containers(self, pod: PlanPod) -> dict[str, dict]:
        """The containers the user wrote for this pod (its Pod, or its Deployment's template),
        by name: where images, commands and args come from."""
        spec = None
        if pod.owner.startswith("Deployment/"):
            dep = self.manifest("Deployment", pod.namespace, pod.owner.split("/", 1)[1])
            spec = dig(dep, "spec", "template", "spec")
        else:
            spec = dig(self.manifest("Pod", pod.namespace, pod.name), "spec")
        containers = dig(spec, "containers") if spec else None
        return {str(c.get("name")): c for c in containers or [] if isinstance(c, dict)}

    def pods(self) -> list[dict]:
        return [self.pod(p) for p in self.plan.pods]

    def pod(self, pod: PlanPod) -> dict:
        written = self.pod_manifest_containers(pod)
        report = self.pod_status.get(pod.key)
        ready = report.ready if report else True
        node = next((n for n in self.plan.nodes if n.name == pod.node), None)
        meta = self.metadata("Pod", pod.name, pod.namespace, pod.labels)
        template_hash = pod.labels.get("pod-template-hash")
        if pod.owner.startswith("Deployment/") and template_hash:
            replica_set = f"{pod.owner.split('/', 1)[1]}-{template_hash}"
            meta["generateName"] = f"{replica_set}-"
            meta["ownerReferences"] = [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set,
                "uid": self.uid("ReplicaSet", pod.namespace, replica_set),
                "controller": True, "blockOwnerDeletion": True}]
        containers, statuses = [], []
        for c in pod.containers:
            given = written.get(c.name, {})
            container: dict[str, Any] = {"name": c.name}
            if isinstance(given.get("image"), str) and given["image"]:
                container["image"] = given["image"]
            if isinstance(given.get("command"), list):
                container["command"] = [str(a) for a in given["command"]]
                if isinstance(given.get("args"), list):
                    container["args"] = [str(a) for a in given["args"]]
            elif c.argv:
                container["command"] = list(c.argv)
            if c.ports:
                container["ports"] = [{"containerPort": p.port, "protocol": p.protocol,
                                       **({"name": p.name} if p.name else {})}
                                      for p in c.ports]
            if c.readiness is not None:
                container["readinessProbe"] = probe(c.readiness)
            containers.append(container)
            statuses.append(self.container_status(c, container, report, ready))
        spec: dict[str, Any] = {"containers": containers, "nodeName": pod.node,
                                "restartPolicy": "Always"}
        if pod.hostname:
            spec["hostname"] = pod.hostname
        if pod.subdomain:
            spec["subdomain"] = pod.subdomain
        unready = [s["name"] for s in statuses if not s["ready"]]
        pod_ready = ready and not unready

        def condition(kind: str, ok: bool) -> dict:
            cond = {"type": kind, "status": "True" if ok else "False"}
            if not ok:
                cond |= {"reason": "ContainersNotReady",
                         "message": f"containers with unready status: [{' '.join(unready)}]"}
            return cond

        status: dict[str, Any] = {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"},
                           condition("Ready", pod_ready), condition("ContainersReady", pod_ready),
                           {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": statuses,
        }
        if node is not None:
            status["hostIP"] = node.underlay_ip
            status["hostIPs"] = [{"ip": node.underlay_ip}]
        status["podIP"] = pod.ip
        status["podIPs"] = [{"ip": pod.ip}]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
                "status": status}

    @staticmethod
    def container_status(c, container: dict, report: PodStatus | None, pod_ready: bool
                         ) -> dict:
        """A container's status: its command's process as the pod agent reports it (running,
        restarting, exited), or the pod's readiness for labnet's built-in servers."""
        process = next((p for p in report.processes if p.container == c.name), None) \
            if report else None
        state: dict[str, Any] = {"running": {}}
        last: dict[str, Any] = {}
        ready, restarts = pod_ready, 0
        if process is not None:
            restarts = process.restarts
            if process.last_exit is not None and restarts:
                last = {"terminated": {"exitCode": process.last_exit,
                                       "reason": "Completed" if process.last_exit == 0
                                       else "Error"}}
            if not process.running:
                ready = False
                if restarts:
                    state = {"waiting": {"reason": "CrashLoopBackOff"}}
                elif process.last_exit is not None:
                    state = {"terminated": {"exitCode": process.last_exit,
                                            "reason": "Completed" if process.last_exit == 0
                                            else "Error"}}
                else:
                    state = {"waiting": {"reason": "ContainerCreating"}}
        result: dict[str, Any] = {"name": c.name, "ready": ready, "restartCount": restarts,
                                  "started": "running" in state, "state": state}
        if last:
            result["lastState"] = last
        if "image" in container:
            result["image"] = container["image"]
        return result

    # --- Services ---------------------------------------------------------------------------

    def service_labels(self, svc: PlanService) -> dict[str, str]:
        written = self.manifest("Service", svc.namespace, svc.name)
        if written is None:
            # the built-in cluster DNS Service, labelled as its pods are (kubeadm's is too)
            return {"k8s-app": "kube-dns"} if svc.key == "kube-system/kube-dns" else {}
        labels = dig(written, "metadata", "labels")
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    def services(self) -> list[dict]:
        return [self.service(s) for s in self.plan.services]

    def service(self, svc: PlanService) -> dict:
        written = self.manifest("Service", svc.namespace, svc.name) or {}
        spec: dict[str, Any] = {}
        if svc.type != "ExternalName":
            spec["clusterIP"] = svc.cluster_ip
            spec["clusterIPs"] = [svc.cluster_ip]
            spec["ipFamilies"] = ["IPv4"]
            spec["ipFamilyPolicy"] = "SingleStack"
            spec["internalTrafficPolicy"] = "Local" if svc.internal_traffic_local else "Cluster"
        else:
            spec["externalName"] = svc.external_name
        if svc.ports:
            ports = []
            for p in svc.ports:
                port: dict[str, Any] = {"name": p.name} if p.name else {}
                port |= {"port": p.port, "protocol": p.protocol,
                         "targetPort": target_port(p.target_port)}
                if p.node_port:
                    port["nodePort"] = p.node_port
                ports.append(port)
            spec["ports"] = ports
        if svc.selector:
            spec["selector"] = dict(sorted(svc.selector.items()))
        if svc.session_affinity_timeout:
            spec["sessionAffinity"] = "ClientIP"
            spec["sessionAffinityConfig"] = {
                "clientIP": {"timeoutSeconds": svc.session_affinity_timeout}}
        else:
            spec["sessionAffinity"] = "None"
        spec["type"] = svc.type
        if svc.external_ips:
            spec["externalIPs"] = list(svc.external_ips)
        if svc.type in ("NodePort", "LoadBalancer"):
            spec["externalTrafficPolicy"] = "Local" if svc.external_traffic_local else "Cluster"
        if svc.type == "LoadBalancer":
            spec["allocateLoadBalancerNodePorts"] = True
            if svc.health_check_node_port:
                spec["healthCheckNodePort"] = svc.health_check_node_port
            if isinstance(dig(written, "spec", "loadBalancerIP"), str):
                spec["loadBalancerIP"] = written["spec"]["loadBalancerIP"]
            if svc.load_balancer_source_ranges:
                spec["loadBalancerSourceRanges"] = list(svc.load_balancer_source_ranges)
        if svc.publish_not_ready:
            spec["publishNotReadyAddresses"] = True
        balancer: dict[str, Any] = {}
        if svc.type == "LoadBalancer":
            given = dig(written, "status", "loadBalancer", "ingress")
            if isinstance(given, list) and given:
                # what a cloud controller (or MetalLB) wrote, kept as the API server keeps it
                balancer["ingress"] = copy.deepcopy(given)
            else:  # labnet's pool stands in for the cloud controller
                ingress = ([{"ip": ip, "ipMode": "VIP"} for ip in svc.load_balancer_ips]
                           + [{"ip": ip, "ipMode": "Proxy"}
                              for ip in svc.load_balancer_proxy_ips])
                if ingress:
                    balancer["ingress"] = ingress
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": self.metadata("Service", svc.name, svc.namespace,
                                          self.service_labels(svc)),
                "spec": spec, "status": {"loadBalancer": balancer}}

    # --- Endpoints and EndpointSlices (what the controllers make of a selector) --------------

    def endpoint_ready(self, svc: PlanService, report: ServiceStatus | None, ep) -> bool:
        """Ready as kube-proxy sees it now: in the status report's endpoints (which leave out
        pods that do not answer yet), or as the plan says without a report."""
        if report is None:
            return ep.ready
        return ep.address in report.endpoints

    def addresses(self, svc: PlanService) -> dict[str, dict]:
        """ip -> what the controllers know of that address: node, pod, hostname, ready and
        serving, and its (name, protocol, port) for each service port."""
        report = self.service_status.get(svc.key)
        found: dict[str, dict] = {}
        for port in svc.ports:
            for ep in port.endpoints:
                entry = found.setdefault(ep.ip, {
                    "node": ep.node, "pod": ep.pod, "hostname": ep.hostname,
                    "ready": True, "serving": True, "terminating": ep.terminating,
                    "ports": []})
                ready = self.endpoint_ready(svc, report, ep)
                pod = self.pod_status.get(ep.pod) if ep.pod else None
                entry["ready"] = entry["ready"] and ready
                entry["serving"] = entry["serving"] and (
                    (pod.ready if pod else ep.serving) if svc.publish_not_ready else ready)
                entry["ports"].append((port.name, port.protocol, ep.port))
        return found

    def target_ref(self, pod_key: str) -> dict | None:
        if not pod_key:
            return None
        namespace, name = pod_key.split("/", 1)
        return {"kind": "Pod", "name": name, "namespace": namespace,
                "uid": self.uid("Pod", namespace, name)}

    def managed(self, svc: PlanService) -> bool:
        """Services the endpoints controllers manage: those with a selector (not
        ExternalName); selectorless ones have the EndpointSlices their user wrote."""
        return svc.selector is not None and svc.type != "ExternalName"

    def controller_labels(self, svc: PlanService) -> dict[str, str]:
        labels = self.service_labels(svc)
        if svc.cluster_ip == "None":
            labels["service.kubernetes.io/headless"] = ""
        return labels

    def endpoints(self) -> list[dict]:
        return [self.endpoints_of(s) for s in self.plan.services if self.managed(s)]

    def endpoints_of(self, svc: PlanService) -> dict:
        """v1 Endpoints as the endpoints controller writes it: each port with the addresses
        that serve it, ports with the same addresses in one subset (RepackSubsets)."""
        found = self.addresses(svc)
        by_port: dict[tuple, set] = {}
        for ip, entry in found.items():
            for name, protocol, number in entry["ports"]:
                by_port.setdefault((name, protocol, number), set()).add((ip, entry["ready"]))
        groups: dict[frozenset, list] = {}
        for port, addrs in by_port.items():
            groups.setdefault(frozenset(addrs), []).append(port)
        subsets = []
        for addrs, ports in groups.items():
            subset: dict[str, Any] = {}
            ready = [self.endpoint_address(ip, found[ip]) for ip, ok in sorted(addrs) if ok]
            unready = [self.endpoint_address(ip, found[ip]) for ip, ok in sorted(addrs)
                       if not ok]
            if ready:
                subset["addresses"] = ready
            if unready:
                subset["notReadyAddresses"] = unready
            subset["ports"] = [{**({"name": n} if n else {}), "port": number, "protocol": proto}
                               for n, proto, number in ports]
            subsets.append(subset)
        subsets.sort(key=lambda s: (s.get("addresses") or s.get("notReadyAddresses"))[0]["ip"])
        result: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": self.metadata("Endpoints", svc.name, svc.namespace,
                                      self.controller_labels(svc))}
        if subsets:
            result["subsets"] = subsets
        return result

    def endpoint_address(self, ip: str, entry: dict) -> dict:
        address: dict[str, Any] = {"ip": ip}
        if entry["hostname"]:
            address["hostname"] = entry["hostname"]
        if entry["node"]:
            address["nodeName"] = entry["node"]
        if ref := self.target_ref(entry["pod"]):
            address["targetRef"] = ref
        return address

    def endpoint_slices(self) -> list[dict]:
        slices = []
        for svc in self.plan.services:
            if self.managed(svc):
                slices += self.slices_of(svc)
        for obj in self.desired:  # a selectorless Service's slices: as their user wrote them
            if manifest_key(obj)[0] == "EndpointSlice":
                slices.append(self.written_slice(obj))
        return slices

    def slices_of(self, svc: PlanService) -> list[dict]:
        """The EndpointSlices the EndpointSlice controller keeps for a Service with a selector:
        addresses grouped by the ports they serve, at most 100 endpoints a slice, named
        `<service>-<5 characters>` (generateName; here drawn from a hash, so stable)."""
        found = self.addresses(svc)
        groups: dict[tuple, list[str]] = {}
        for ip, entry in found.items():
            groups.setdefault(tuple(entry["ports"]), []).append(ip)
        if not groups:
            groups[()] = []  # the controller keeps one empty slice for a Service with none
        labels = self.controller_labels(svc) | {
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            "kubernetes.io/service-name": svc.name}
        owner = [{"apiVersion": "v1", "kind": "Service", "name": svc.name,
                  "uid": self.uid("Service", svc.namespace, svc.name),
                  "controller": True, "blockOwnerDeletion": True}]
        result = []
        for ports, ips in sorted(groups.items()):
            ips = sorted(ips)
            chunks = [ips[i:i + MAX_SLICE_ENDPOINTS]
                      for i in range(0, len(ips), MAX_SLICE_ENDPOINTS)] or [[]]
            for index, chunk in enumerate(chunks):
                name = self.slice_name(svc, f"{ports}/{index}")
                meta = self.metadata("EndpointSlice", name, svc.namespace, labels)
                meta["generateName"] = f"{svc.name[:58]}-"
                meta["ownerReferences"] = owner
                endpoints = [self.slice_endpoint(ip, found[ip]) for ip in chunk]
                result.append({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": meta, "addressType": "IPv4",
                    "endpoints": endpoints or None,
                    "ports": [{"name": n, "port": number, "protocol": proto}
                              for n, proto, number in ports] or None})
        return result

    def slice_name(self, svc: PlanService, group: str) -> str:
        digest = hashlib.sha256(f"{self.plan.lab}/{svc.key}/{group}".encode()).digest()
        suffix = "".join(GENERATE_NAME_CHARS[b % len(GENERATE_NAME_CHARS)] for b in digest[:5])
        return f"{svc.name[:58]}-{suffix}"

    def slice_endpoint(self, ip: str, entry: dict) -> dict:
        endpoint: dict[str, Any] = {
            "addresses": [ip],
            "conditions": {"ready": entry["ready"], "serving": entry["serving"],
                           "terminating": entry["terminating"]}}
        if entry["hostname"]:
            endpoint["hostname"] = entry["hostname"]
        if entry["node"]:
            endpoint["nodeName"] = entry["node"]
        if ref := self.target_ref(entry["pod"]):
            endpoint["targetRef"] = ref
        return endpoint

    def written_slice(self, obj: dict) -> dict:
        """A user's EndpointSlice as the API server would return it: as written, with its
        namespace, uid and creationTimestamp."""
        result = copy.deepcopy(obj)
        _, namespace, name = manifest_key(obj)
        meta = result.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["uid"] = self.uid("EndpointSlice", namespace, name)
        meta["creationTimestamp"] = self.created
        result.setdefault("endpoints", None)
        result.setdefault("ports", None)
        return result

    # --- Nodes and Namespaces ---------------------------------------------------------------

    def nodes(self) -> list[dict]:
        result = []
        for n in self.plan.nodes:
            report = self.node_status.get(n.name)
            ready = report.ready if report else True
            labels = {"kubernetes.io/hostname": n.name, **n.labels}
            condition = {"type": "Ready", "status": "True" if ready else "False",
                         "reason": "KubeletReady" if ready else "KubeletNotReady",
                         "message": "kubelet is posting ready status" if ready else
                         "missing: " + ", ".join(report.missing if report else ())}
            status: dict[str, Any] = {
                "addresses": [{"type": "InternalIP", "address": n.underlay_ip},
                              {"type": "Hostname", "address": n.name}],
                "conditions": [condition]}
            if self.node_info:
                status["nodeInfo"] = dict(self.node_info)
            result.append({"apiVersion": "v1", "kind": "Node",
                           "metadata": self.metadata("Node", n.name, None, labels),
                           "spec": {"podCIDR": n.pod_cidr, "podCIDRs": [n.pod_cidr]},
                           "status": status})
        return result

    def namespaces(self) -> list[dict]:
        result = []
        for name in self.plan.namespaces:
            written = dig(self.manifest("Namespace", "", name), "metadata", "labels")
            labels = ({str(k): str(v) for k, v in written.items()}
                      if isinstance(written, dict) else {})
            labels["kubernetes.io/metadata.name"] = name  # the API server sets it on each
            result.append({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": self.metadata("Namespace", name, None, labels),
                           "spec": {"finalizers": ["kubernetes"]},
                           "status": {"phase": "Active"}})
        return result


def probe(p) -> dict:
    """A readinessProbe as the API stores it (0 initialDelaySeconds left out, as omitempty
    does; no timeoutSeconds: labnet's probes have no setting for it)."""
    action: dict[str, Any]
    if p.kind == "http":
        action = {"httpGet": {"path": p.path, "port": p.port, "scheme": "HTTP"}}
    else:
        action = {"tcpSocket": {"port": p.port}}
    if p.initial_delay:
        action["initialDelaySeconds"] = p.initial_delay
    return {**action, "periodSeconds": p.period, "failureThreshold": p.failure_threshold,
            "successThreshold": p.success_threshold}
