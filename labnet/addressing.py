"""Where things sit in the lab's address space: pure functions of the network settings.

Validation (how many nodes fit) and planning (which address each node gets) both read these, so
they live beside the model rather than in either stage.
"""

from __future__ import annotations

import ipaddress

from labnet.model import MAX_NODES, NetworkSpec, NodeSpec

FIRST_NODE_HOST = 11  # nodes are .11, .12, … on the underlay, as in the article


def load_balancer_pool(underlay: ipaddress.IPv4Network) -> tuple[int, int]:
    """LoadBalancer addresses (as ints, inclusive): the top quarter of the underlay, below the
    external host (the broadcast address - 1)."""
    base = int(underlay.network_address)
    return base + underlay.num_addresses * 3 // 4, int(underlay.broadcast_address) - 2


def max_nodes(network: NetworkSpec) -> int:
    """Node i (1-based) gets the i-th node-sized slice of podCIDR and host .10+i on the underlay,
    below the LoadBalancer pool."""
    by_pods = 2 ** (network.node_cidr_mask - network.pod_cidr.prefixlen) - 1
    pool_start, _ = load_balancer_pool(network.underlay_cidr)
    by_underlay = pool_start - int(network.underlay_cidr.network_address) - FIRST_NODE_HOST
    return max(0, min(by_pods, by_underlay, MAX_NODES))


def node_pod_cidr(network: NetworkSpec, index: int) -> ipaddress.IPv4Network:
    """Node `index` (1-based) gets slice `index` of podCIDR."""
    size = 2 ** (32 - network.node_cidr_mask)
    return ipaddress.IPv4Network((int(network.pod_cidr.network_address) + index * size,
                                  network.node_cidr_mask))


def node_address(network: NetworkSpec, node: NodeSpec, index: int) -> ipaddress.IPv4Address:
    """A node's underlay address: the one it names, else host .10 + index."""
    return node.address or network.underlay_cidr.network_address + FIRST_NODE_HOST - 1 + index


def external_address(network: NetworkSpec) -> ipaddress.IPv4Address:
    """The `external` host: the address below the underlay's broadcast."""
    return network.underlay_cidr.broadcast_address - 1


def pods_per_node(network: NetworkSpec) -> int:
    """Pod addresses of a node's slice: all but network, gateway (.1) and broadcast."""
    return 2 ** (32 - network.node_cidr_mask) - 3
