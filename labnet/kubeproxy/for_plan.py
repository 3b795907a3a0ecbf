"""A node's ruleset from the lab's plan: what kube-proxy on that node would write."""

from __future__ import annotations

from labnet.kubeproxy.rules import ProxyOptions, RenderCache, Ruleset, render, render_nodes
from labnet.plan import Plan, PlanNode


def options_for(plan: Plan, node: PlanNode) -> ProxyOptions:
    """kube-proxy's view of one node: its name, its IP, and the cluster CIDR (the pod CIDR)
    that tells pod traffic from traffic to masquerade."""
    return ProxyOptions(node.name, (node.underlay_ip,), str(plan.network.pod_cidr))


def node_ruleset(plan: Plan, node_name: str) -> Ruleset:
    return render(plan.services, options_for(plan, plan.node(node_name)))


def all_node_rulesets(plan: Plan, cache: RenderCache | None = None) -> dict[str, Ruleset]:
    """Every node's ruleset, sharing the rules that are the same everywhere."""
    rulesets = render_nodes(plan.services, [options_for(plan, n) for n in plan.nodes], cache)
    return {node.name: rs for node, rs in zip(plan.nodes, rulesets, strict=True)}
