"""Producers of netfilter rules on a node, and the chains each one owns.

kube-proxy is one producer; NetworkPolicy enforcement will be another. Each owns a set of
chain names and chain-name prefixes, and a full sync of one deletes only stale chains it owns:
what another producer wrote (or kubelet's KUBE-KUBELET-CANARY, or a user's chain) stays. `down`
removes everything with the namespace. A new producer is one entry in PRODUCERS; a unit test
checks that no two claim the same chain.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleProducer:
    name: str
    chains: frozenset[str]  # fixed chains it writes
    prefixes: tuple[str, ...]  # chains made per object (one Service port, one policy…)

    def owns(self, chain: str) -> bool:
        return chain in self.chains or chain.startswith(self.prefixes)


# kube-proxy's iptables mode: the chains it rewrites on every sync, and the per-service-port
# chains whose stale copies it deletes (`-X`), exactly the prefixes kube-proxy's
# isServiceChainName checks (KUBE-SVC-, KUBE-SVL-, KUBE-EXT-, KUBE-FW-, KUBE-SEP-)
KUBE_PROXY = RuleProducer(
    "kube-proxy",
    frozenset({"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL",
               "KUBE-FORWARD", "KUBE-FIREWALL", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"}),
    ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"),
)

PRODUCERS: tuple[RuleProducer, ...] = (KUBE_PROXY,)


def owner_of(chain: str) -> RuleProducer | None:
    return next((p for p in PRODUCERS if p.owns(chain)), None)
