"""The fault campaign: SIGKILL a labnet command at a random moment, then `labnet down`, and
look for anything left behind — optionally while another tool runs `ip netns add / exec / del`
of its own namespace all the while. Importable from inside a sealed mount namespace (no
pytest here); every lab name goes to the run's ledger before the lab exists."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from labnet.pytest_plugin import record_lab
from tests.integration.leftovers import lab_inodes, leftovers
from tests.manifests import PORT_8080, bare_pods, deployment, document, lab_text, service


def lab_file(name: str) -> str:
    """~40 pods on 3 nodes: 30 replicas, 9 bare pods, the DNS pod."""
    return lab_text(deployment(replicas=30), service(), bare_pods(9, app="web"), name=name,
                    nodes=3)


EXTRA = document(deployment("more", replicas=12, containers=PORT_8080))
KINDS = ("up", "apply", "up", "scale", "up", "restart")


def labnet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labnet", *args], capture_output=True,
                          text=True, timeout=timeout)


class OtherTool:
    """Another tool using `ip netns` for its own namespace, over and over, until stopped."""

    def __init__(self, tag: str) -> None:
        self.tag, self.rounds, self.errors = tag, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.stop.is_set():
            name = f"{self.tag}o{self.rounds % 2}"
            for argv in (["ip", "netns", "add", name],
                         ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                         ["ip", "netns", "del", name]):
                result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                if result.returncode != 0:
                    self.errors.append(f"{' '.join(argv)}: {result.stderr.strip()}")
            self.rounds += 1

    def __enter__(self) -> OtherTool:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


def command_for(kind: str, name: str, path: Path, extra: Path) -> list[str]:
    return {
        "up": ["up", str(path)],
        "apply": ["apply", "--lab", name, "-f", str(extra)],
        "scale": ["scale", "--lab", name, "deployment/web", "--replicas", "5"],
        "restart": ["restart", "--lab", name, "pod", "p0"],
    }[kind]


def one_run(index: int, kind: str, delay: float, directory: Path, interleave: bool) -> dict:
    name = record_lab(f"f{os.getpid() % 100000}r{index}")
    path = directory / f"{name}.yaml"
    path.write_text(lab_file(name))
    extra = directory / "extra.yaml"
    extra.write_text(EXTRA)
    outcome = {"run": index, "kind": kind, "delay": round(delay, 3), "errors": []}
    tool = OtherTool(name) if interleave else None
    if tool:
        tool.__enter__()
    try:
        if kind != "up":
            ready = labnet("up", str(path))
            if ready.returncode != 0:
                outcome["errors"].append(f"setup up: {ready.stderr.strip()}")
        proc = subprocess.Popen([sys.executable, "-m", "labnet",
                                 *command_for(kind, name, path, extra)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.kill()
        _, err = proc.communicate(timeout=60)
        outcome["killed"] = proc.returncode == -9
        if "Traceback" in err:
            outcome["errors"].append(f"{kind}: {err.strip()[-300:]}")
        inodes = lab_inodes(name)
        outcome["netns_at_kill"] = len(inodes)
        down = labnet("down", name)
        if down.returncode not in (0, 4) or "Traceback" in down.stderr:  # 4: nothing was built
            outcome["errors"].append(f"down exited {down.returncode}: {down.stderr.strip()}")
    finally:
        if tool:
            tool.__exit__()
    if tool:
        outcome["other_tool_rounds"] = tool.rounds
        outcome["errors"] += tool.errors
        outcome["errors"] += [f"left by the other tool: {n}" for n in
                              (f"{name}o0", f"{name}o1") if os.path.exists(f"/run/netns/{n}")]
    outcome["leftovers"] = leftovers(name, inodes)
    return outcome


def calibrate(directory: Path) -> float:
    """How long an uninterrupted `labnet up` of the campaign's lab takes here."""
    name = record_lab(f"f{os.getpid() % 100000}cal")
    path = directory / f"{name}.yaml"
    path.write_text(lab_file(name))
    start = time.monotonic()
    result = labnet("up", str(path))
    took = time.monotonic() - start
    labnet("down", name)
    assert result.returncode == 0, result.stderr
    return took


def campaign(runs: int, seed: int, interleave: bool = False) -> dict:
    """`runs` SIGKILLed commands, each followed by `down`; kill moments uniform over the time
    an uninterrupted command takes (a few land after it finished: counted, not hidden)."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        span = calibrate(directory) * 1.1
        results = []
        for i in range(runs):
            kind = KINDS[i % len(KINDS)]
            # changes to a running lab take less time than building it
            delay = rng.uniform(0.0, span if kind == "up" else span * 0.7)
            results.append(one_run(i, kind, delay, directory, interleave))
    return {"seed": seed, "span": round(span, 3), "runs": results}
