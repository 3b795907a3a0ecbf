"""What a kube-proxy sync rewrites: the one decision, for full and partial syncs (pure).

A node's rules are a `Snapshot`: for each table, each chain by name with the rules it holds.
The chain's name is its key; its rules are compared by value, so the decision does not depend
on how they were rendered (rules reused from a RenderCache are the same objects, which makes
comparing them cheap, but a re-rendered identical chain is recognised as unchanged too).

- full sync (no trusted record of the kernel: the first sync of a worker, or after a failure):
  every chain is written, and the installer deletes the chains its producer owns that are not
  wanted (kube-proxy's "-X stale"), then ensures the jumps from the built-in chains;
- partial sync: the chains whose rules changed or are new are rewritten, the chains of the last
  sync that are gone are deleted, the rest is not touched. A table with nothing to do is
  neither read nor committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labnet.kubeproxy.rules import SHARED_CHAINS, Rule, Ruleset, Table

Snapshot = dict[str, dict[str, tuple[Rule, ...]]]  # table -> chain -> its rules, in order


@dataclass
class TableChange:
    """What one table of one node gets in one sync, whatever the backend."""

    table: str
    rewrite: dict[str, list[tuple[str, ...]]]  # chain -> every rule's argv, in order
    delete: list[str] = field(default_factory=list)  # chains of the last sync that must go
    full: bool = False  # no trusted record: delete unknown chains the producer owns too
    jumps: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # full only
    cleanup: bool = False  # remove all the producer owns, jumps from built-in chains included


def _own_chains(part: Table) -> dict[str, tuple[Rule, ...]]:
    """The chains one service port owns outright (its SVC/SVL/EXT/FW/SEP chains), computed
    once per rendered fragment: a fragment reused from the cache brings its answer along."""
    cached = part.__dict__.get("_own")
    if cached is None or cached[0] != len(part.rules):
        grouped: dict[str, list[Rule]] = {c: [] for c in part.chains if c not in SHARED_CHAINS}
        for rule in part.rules:
            if rule.chain in grouped:
                grouped[rule.chain].append(rule)
        cached = (len(part.rules), {c: tuple(rules) for c, rules in grouped.items()})
        part.__dict__["_own"] = cached
    return cached[1]


def snapshot(ruleset: Ruleset) -> Snapshot:
    """Every chain of the ruleset with its rules: service ports' own chains from their
    fragments, the shared chains (KUBE-SERVICES, KUBE-NODEPORTS, …) in canonical order."""
    result: Snapshot = {}
    for index, table in enumerate(ruleset.tables()):
        chains: dict[str, tuple[Rule, ...]] = {}
        shared: dict[str, list[Rule]] = {c: [] for c in table.chains if c in SHARED_CHAINS}
        for rule in table.rules:
            if rule.chain in shared:
                shared[rule.chain].append(rule)
        for chain, rules in table.chain_rules_of(shared).items():
            chains[chain] = tuple(rules)
        for parts in ruleset.fragments:
            chains.update(_own_chains(parts[index]))
        result[table.name] = chains
    return result


def decide(now: Snapshot, before: Snapshot | None,
           jumps: list[tuple[str, str, tuple[str, ...]]]) -> list[TableChange]:
    """The changes that make a node that holds `before` (None: unknown) hold `now`."""
    changes = []
    for table, chains in now.items():
        if before is None:
            changes.append(TableChange(
                table, {c: [r.args for r in rules] for c, rules in chains.items()}, [], True,
                [(chain, args) for t, chain, args in jumps if t == table]))
            continue
        old = before.get(table, {})
        rewrite = {c: [r.args for r in rules] for c, rules in chains.items()
                   if old.get(c) != rules}
        delete = sorted(set(old) - set(chains))
        if rewrite or delete:
            changes.append(TableChange(table, rewrite, delete))
    return changes
