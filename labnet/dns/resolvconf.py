"""The resolv.conf kubelet writes for a pod with dnsPolicy ClusterFirst (reference §8)."""

from __future__ import annotations

from labnet.plan import Plan, PlanPod


def resolv_conf(plan: Plan, pod: PlanPod) -> str | None:
    """The file's text, or None for the cluster DNS pod itself (CoreDNS runs with dnsPolicy
    Default: it keeps the host's file). The host's search domains are not appended, as kubelet
    would: the lab is sealed, and they would only send queries nowhere."""
    if pod.is_dns:
        return None
    zone = plan.network.cluster_domain
    return (f"search {pod.namespace}.svc.{zone} svc.{zone} {zone}\n"
            f"nameserver {plan.network.cluster_dns}\n"
            "options ndots:5\n")
