"""Run a piece of a test in a mount namespace of its own, with a fresh tmpfs over /run.

There /run/netns is a plain directory, as on a machine just booted, and /run/labnet is empty:
what runs inside sees only the namespaces it makes, so `labnet clean`, `down --all` or another
tool's `ip netns` cannot reach the user's labs (nor the bystander lab of the suite). The pid
namespace and /etc/netns are shared: leftover processes and files stay visible from outside.
`shared=True` makes that /run a shared mount, as systemd makes / on most machines.

The code runs with the project root as its working directory and prints its result as JSON on
its last line. A mount namespace ends with its last process, which would free whatever the
code leaked: so the code checks for leftovers itself, from the inside, before it returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def sealed(argv: list[str], fresh_run: bool = True, shared: bool = False,
           env: dict[str, str] | None = None, timeout: float = 600
           ) -> subprocess.CompletedProcess:
    """Run `argv` sealed. `fresh_run=False` keeps /run (its resolver files, say) and puts a
    tmpfs over /run/netns and /etc/netns only: give LABNET_RUN_DIR in `env` then."""
    if fresh_run:
        setup = "mount -t tmpfs labnet-test /run && mkdir -m 755 /run/netns"
        if shared:
            setup += " && mount --make-rshared /run"
    else:
        setup = ("mkdir -p /run/netns && mount -t tmpfs labnet-test /run/netns && "
                 "mount -t tmpfs labnet-test /etc/netns")
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if fresh_run:
        full.pop("LABNET_RUN_DIR", None)
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'{setup} && exec "$@"', "sealed", *argv],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=full)


def run_sealed(code: str, shared: bool = False, timeout: float = 600) -> object:
    """Python `code`, sealed; its result is the JSON on the last line of its output."""
    result = sealed([sys.executable, "-c", code], shared=shared, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
