"""The plan's link records: one per veth, macvlan and VXLAN peering, agreeing with the plan."""

from pathlib import Path

from labnet.input.labfile import load_default, parse_lab_text
from labnet.plan import make_plan, plan_links
from labnet.plan.links import MACVLAN, VETH, VXLAN


def test_every_link_of_the_default_lab():
    plan = make_plan(load_default())
    links = plan_links(plan)
    veths = [x for x in links if x.kind == VETH]
    # one underlay port per node and one for the external host, one veth per pod
    assert len(veths) == len(plan.nodes) + 1 + len(plan.pods)
    n = len(plan.nodes)
    assert len([x for x in links if x.kind == VXLAN]) == n * (n - 1) // 2
    for node in plan.nodes:
        (uplink,) = [x for x in veths if x.b.netns == node.netns]
        assert (uplink.a.netns, uplink.a.master) == (plan.underlay_netns, "br0")
        assert uplink.a.ifname == node.underlay_port
        assert uplink.b.address == f"{node.underlay_ip}/{plan.underlay_prefixlen}"
        assert uplink.mtu == plan.network.mtu
    for pod in plan.pods:
        (veth,) = [x for x in veths if x.b.netns == pod.netns]
        assert (veth.a.netns, veth.a.ifname, veth.a.master) == (
            plan.node(pod.node).netns, pod.host_veth, "cni0")
        assert veth.b.address == f"{pod.ip}/{plan.network.node_cidr_mask}"
        assert veth.mtu == plan.pod_mtu and veth.attributes["hairpin"] is True
    keys = [x.key for x in links]
    assert len(keys) == len(set(keys))


def test_a_lab_across_hosts_has_macvlan_uplinks_and_no_switch():
    spec = parse_lab_text("name: x\nnodes: [node1, node2, node3]\nhosts:\n"
                          "  - {name: a, nodes: [node1, node2], interface: ens3}\n"
                          "  - {name: b, nodes: [node3], interface: ens4}\n", "<t>", Path("."))
    plan = make_plan(spec)
    links = plan_links(plan)
    uplinks = [x for x in links if x.kind == MACVLAN]
    assert [(x.a.ifname, x.b.netns) for x in uplinks] == [
        ("ens3", plan.node("node1").netns), ("ens3", plan.node("node2").netns),
        ("ens4", plan.node("node3").netns)]
    assert not [x for x in links if plan.underlay_netns in (x.a.netns, x.b.netns)]
    vxlan = {(x.a.owner, x.b.owner) for x in links if x.kind == VXLAN}
    assert vxlan == {("node:node1", "node:node2"), ("node:node1", "node:node3"),
                     ("node:node2", "node:node3")}
