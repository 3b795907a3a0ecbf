"""The resolv.conf kubelet writes for a pod (reference §8; kubelet pkg/kubelet/network/dns).

Every pod of a lab has dnsPolicy ClusterFirst, the default. kubelet gives such a pod the cluster
DNS (its `--cluster-dns`) as the only nameserver, the search list `<ns>.svc.<zone> svc.<zone>
<zone>` and `options ndots:5` — when kubelet has a cluster DNS address. Without one, kubelet
records a MissingClusterDNS event and falls back to dnsPolicy Default: the pod gets the node's
resolv.conf (`--resolv-conf`).

labnet's kubelet has `--cluster-dns` = network.clusterDNS exactly when some Service of the lab
holds that ClusterIP: the built-in kube-system/kube-dns (always, unless `dns.enabled: false`),
or, with the built-in DNS off, a Service of the user's own in front of their own DNS server
(examples/own-dns.yaml). That is how an operator configures kubelet (kubeadm sets clusterDNS to
the address its CoreDNS Service takes), and it keeps both promises: a lab with
`dns.enabled: false` and no DNS Service of its own is a cluster whose kubelet has no
`--cluster-dns` (its pods see the node's resolv.conf, which in labnet is the machine's own: no
file is written), and a user's DNS Service at the cluster DNS address serves every pod.

The decision is made again whenever the lab changes, as a kubelet restarted with the new flag
would: a file written earlier is left in place when the Service goes away (kubelet does not
rewrite a running pod's resolv.conf either); a pod gets the file once the Service is there.
"""

from __future__ import annotations

from labnet.plan import Plan, PlanPod, PlanService


def cluster_dns_service(plan: Plan) -> PlanService | None:
    """The Service at network.clusterDNS (the built-in kube-dns, or the user's own), if any:
    whether labnet's kubelet has a `--cluster-dns`."""
    address = str(plan.network.cluster_dns)
    return next((s for s in plan.services if s.cluster_ip == address), None)


def resolv_conf(plan: Plan, pod: PlanPod) -> str | None:
    """The file's text, or None: the pod keeps the node's file. None for the built-in DNS pod
    itself (CoreDNS runs with dnsPolicy Default) and when kubelet has no cluster DNS (no Service
    holds network.clusterDNS: ClusterFirst falls back to Default). The host's search domains
    are not appended, as kubelet would: the lab is sealed, and they would only send queries
    nowhere."""
    if pod.is_dns or cluster_dns_service(plan) is None:
        return None
    zone = plan.network.cluster_domain
    return (f"search {pod.namespace}.svc.{zone} svc.{zone} {zone}\n"
            f"nameserver {plan.network.cluster_dns}\n"
            "options ndots:5\n")
