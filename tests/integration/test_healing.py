"""A lab that heals itself: the pod agent and each kube-proxy worker come back by themselves
when they die, without duplicates; a change that fails half-way leaves the lab as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from labnet.agent import control
from labnet.kernel import nsfs
from tests.fingerprint import fingerprint
from tests.integration.conftest import kernel_rules, labnet_cli, parse_whoami, wait_for
from tests.manifests import SEED

COMMAND_POD = """
  - apiVersion: v1
    kind: Pod
    metadata: {name: worker}
    spec:
      nodeName: node2
      containers:
        - {name: loop, command: [/bin/sh, -c, "while true; do sleep 1; done"]}
"""


def by_name(lab) -> bool:
    result = lab.exec("client", ["curl", "-s", "-m", "0.5", "http://my-nginx/"], timeout=5)
    return result.returncode == 0 and parse_whoami(result.stdout).get("pod", "").startswith(
        "my-nginx-")


def commands_in(netns: str) -> list[int]:
    """The pod command's own processes (its shell; the `sleep` it runs comes and goes)."""
    found = []
    for pid in nsfs.pids_in({nsfs.inode(netns)}):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"/bin/sh\0-c\0while true"):
                    found.append(pid)
        except OSError:
            continue
    return found


def test_a_killed_agent_is_back_within_two_seconds_without_duplicates(labnet_lab):
    lab = labnet_lab(text=SEED + COMMAND_POD)
    worker_netns = lab.pod("worker").netns
    assert wait_for(lambda: len(commands_in(worker_netns)) == 1)
    before = commands_in(worker_netns)
    (old_temp,) = (lab.state.root / "tempdirs").read_text().split()
    assert os.path.isdir(old_temp)  # its fork server's socket is there
    old = lab.state.agent_pid()
    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()
    assert wait_for(lambda: by_name(lab), 5)
    took = time.monotonic() - killed
    assert took < 2.0, f"curl by name came back after {took:.2f} s"
    status = lab.status()
    assert status.agent.pid != old and status.agent.restarts == 1
    assert status.agent.state == "running"
    assert not os.path.exists(old_temp)  # the new agent removed what the killed one left
    # the command the dead agent started was ended, and exactly one runs again
    assert wait_for(lambda: len(commands_in(worker_netns)) == 1), (
        commands_in(worker_netns), nsfs.pids_in({nsfs.inode(worker_netns)}))
    time.sleep(1.5)  # a duplicate would show up by now (the supervisor's backoff is shorter)
    now = commands_in(worker_netns)
    assert len(now) == 1 and now != before
    assert status.pod("worker").processes[0].running


def test_a_killed_kube_proxy_worker_comes_back_and_gets_later_changes(labnet_lab):
    lab = labnet_lab()
    node2 = lab.running_plan().node("node2").netns
    pid = lab.status().node("node2").proxy_pid
    os.kill(pid, signal.SIGKILL)
    # the rules stay in the kernel while the worker is down: the ClusterIP keeps answering
    assert by_name(lab)
    assert wait_for(lambda: lab.status().node("node2").proxy_restarts == 1, 5)
    assert lab.status().healthy
    result = labnet_cli("scale", "--lab", lab.name, "deployment/my-nginx", "--replicas", "4")
    assert result.returncode == 0, result.stderr
    ips = {p.ip for p in lab.running_plan().pods if p.name.startswith("my-nginx-")}
    rules = kernel_rules(lab, "node2")
    assert len(ips) == 4 and all(f"{ip}/32" in rules for ip in ips), rules
    assert node2 in {n.netns for n in lab.status().nodes}


def test_status_says_restarting_or_down(labnet_lab):
    lab = labnet_lab()
    supervisor = control.supervisor_alive(lab.state)
    os.kill(supervisor, signal.SIGSTOP)  # frozen: it cannot start the agent again yet
    try:
        os.kill(lab.state.agent_pid(), signal.SIGKILL)
        assert wait_for(lambda: control.agent_alive(lab.state) is None)
        status = labnet_cli("status", "--lab", lab.name)
        assert status.returncode == 1 and "RESTARTING" in status.stdout
    finally:
        os.kill(supervisor, signal.SIGCONT)
    assert wait_for(lambda: by_name(lab), 5)
    # both gone: down, and `up` brings it back
    os.kill(control.supervisor_alive(lab.state), signal.SIGKILL)
    os.kill(lab.state.agent_pid(), signal.SIGKILL)
    assert wait_for(lambda: control.agent_alive(lab.state) is None)
    status = labnet_cli("status", "--lab", lab.name)
    assert "NOT RUNNING" in status.stdout
    assert labnet_cli("up", str(lab.path)).returncode == 0
    assert by_name(lab)


def test_a_change_that_fails_half_way_leaves_the_lab_as_it_was(labnet_lab, tmp_path):
    lab = labnet_lab()
    before = fingerprint(lab.name)
    netns_before = sorted(n for n in nsfs.list_netns() if n.startswith(f"{lab.name}-"))
    rules_before = {n: kernel_rules(lab, n) for n in ("node1", "node2")}
    # the kernel step will fail: the namespace the new pod needs is someone else's
    foreign = f"{lab.name}-default-late"
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    manifest = tmp_path / "more.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: early}\nspec: {containers: [{name: c}]}\n"
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: late}\n"
        "spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n")
    try:
        result = labnet_cli("apply", "--lab", lab.name, "-f", str(manifest))
        assert result.returncode == 3, result.stderr
        assert f"netns {foreign} exists but labnet did not make it" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        after = fingerprint(lab.name)
        after["netns"] = [n for n in after["netns"] if n[0] != f"/run/netns/{foreign}"]
        assert after == before  # desired state, plan, processes, namespaces, rules
        assert sorted(n for n in nsfs.list_netns()
                      if n.startswith(f"{lab.name}-") and n != foreign) == netns_before
        assert {n: kernel_rules(lab, n) for n in ("node1", "node2")} == rules_before
        assert lab.status().healthy is False  # only the foreign netns with its prefix
        assert by_name(lab)
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=False)
    assert lab.status().healthy


def test_down_finds_an_agent_and_supervisor_whose_pid_files_are_gone(labnet_lab):
    """As after an `up` killed between starting the supervisor and writing its pid file."""
    from tests.integration.leftovers import lab_inodes, leftovers

    lab = labnet_lab()
    inodes = lab_inodes(lab.name)
    for name in ("supervisor.pid", "agent.pid"):
        (lab.state.root / name).unlink()
    result = labnet_cli("down", lab.name)
    assert result.returncode == 0, result.stderr
    assert leftovers(lab.name, inodes) == []
