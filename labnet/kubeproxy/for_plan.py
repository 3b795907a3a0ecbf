"""A node's ruleset from the lab's plan: what kube-proxy on that node would write."""

from __future__ import annotations

from labnet.kubeproxy.rules import ProxyOptions, Ruleset, render
from labnet.plan import Plan, PlanNode


def options_for(plan: Plan, node: PlanNode) -> ProxyOptions:
    """kube-proxy's view of one node: its name, its IP, and the cluster CIDR (the pod CIDR)
    that tells pod traffic from traffic to masquerade."""
    return ProxyOptions(node.name, (node.underlay_ip,), str(plan.network["pod_cidr"]))


def node_ruleset(plan: Plan, node_name: str) -> Ruleset:
    return render(plan.services, options_for(plan, plan.node(node_name)))
