"""Fuzz lab files and manifests at scale: the properties of tests/unit/test_fuzz_spec.py (never a
traceback, every rejection `file:line: message`, every acceptance plans), with random seeds and
many examples, and figures.

    .venv/bin/python bench/fuzz_spec.py                 # 12,000 examples (3,000 per strategy)
    .venv/bin/python bench/fuzz_spec.py -n 30000 --seed 7

Prints the examples run, accepted and rejected per strategy, the time, the slowest example, and
the first property that failed (shrunk by hypothesis) if one did; exits 1 then.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.test_fuzz_spec import (  # noqa: E402
    check,
    mutated_documents,
    mutated_manifest_files,
    mutated_texts,
    random_yaml,
)

STRATEGIES = {
    "mutated documents": mutated_documents,
    "mutated texts": mutated_texts,
    "random YAML": random_yaml,
    "manifest files": mutated_manifest_files,
}


def run(name: str, strategy, examples: int, chosen_seed: int | None) -> dict:
    stats = {"name": name, "run": 0, "accepted": 0, "rejected": 0, "slowest": 0.0,
             "slowest_text": "", "failure": None}

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(strategy())
    def property_holds(text) -> None:
        try:
            outcome = check(text)
        except BaseException:
            stats["failing_text"] = text  # the last one is hypothesis' shrunk example
            raise
        stats["run"] += 1
        stats["accepted" if outcome.accepted else "rejected"] += 1
        if outcome.seconds > stats["slowest"]:
            stats["slowest"], stats["slowest_text"] = outcome.seconds, text

    if chosen_seed is not None:
        property_holds = seed(chosen_seed)(property_holds)
    started = time.perf_counter()
    try:
        property_holds()
    except Exception as exc:  # hypothesis re-raises the shrunk failure
        stats["failure"] = (f"{type(exc).__name__}: {exc}\n  input: "
                            f"{stats.get('failing_text', '?')!r}")
    stats["seconds"] = time.perf_counter() - started
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--examples", type=int, default=12_000,
                        help="examples in all, split over the strategies (default 12,000)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default random)")
    args = parser.parse_args()
    per = max(1, args.examples // len(STRATEGIES))
    rows = [run(name, strategy, per, args.seed) for name, strategy in STRATEGIES.items()]
    print(f"{'strategy':<20} {'examples':>9} {'accepted':>9} {'rejected':>9} {'time':>8} "
          f"{'slowest':>9}")
    for r in rows:
        print(f"{r['name']:<20} {r['run']:>9} {r['accepted']:>9} {r['rejected']:>9} "
              f"{r['seconds']:>7.1f}s {r['slowest'] * 1000:>7.1f}ms")
    total = {k: sum(r[k] for r in rows) for k in ("run", "accepted", "rejected", "seconds")}
    slowest = max(rows, key=lambda r: r["slowest"])
    print(f"{'all':<20} {total['run']:>9} {total['accepted']:>9} {total['rejected']:>9} "
          f"{total['seconds']:>7.1f}s {slowest['slowest'] * 1000:>7.1f}ms")
    text = str(slowest["slowest_text"])
    print(f"slowest example ({slowest['name']}, {len(text)} characters): {text[:300]!r}"
          f"{'…' if len(text) > 300 else ''}")
    failed = [r for r in rows if r["failure"]]
    for r in failed:
        print(f"FAILED ({r['name']}): {r['failure']}")
    if not failed:
        print("every property held: no traceback, every rejection file:line: message, every "
              "acceptance planned")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
