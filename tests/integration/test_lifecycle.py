"""up/down leave the machine exactly as it was; crashes and interrupts are cleaned up."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labnet.kernel import mounts, nsfs
from tests.integration.conftest import labnet_cli, parse_whoami
from tests.manifests import NO_PORTS, bare_pod, bare_pods, lab_text


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return result.stdout if result.returncode == 0 else f"<{argv[0]} failed: {result.returncode}>"


def root_sysctls() -> dict[str, str]:
    paths = ["/proc/sys/net/ipv4/ip_forward", *glob.glob("/proc/sys/net/ipv4/conf/all/*"),
             *glob.glob("/proc/sys/net/bridge/*"), *glob.glob("/proc/sys/net/ipv6/conf/all/*")]
    values = {}
    for path in sorted(paths):
        try:
            values[path] = Path(path).read_text()
        except OSError:
            continue
    return values


def machine_snapshot(lab: str) -> dict[str, object]:
    """What lab `lab` must never leave behind, and what no lab may change: the root network
    namespace. Only this lab's own objects are listed, so other labs running beside the test
    (the user's `demo`) neither disturb the comparison nor are touched by it."""
    prefix = f"{lab}-"
    return {
        "netns": [n for n in nsfs.list_netns() if n.startswith(prefix)],
        "links": run("ip", "-o", "link", "show"),
        "addresses": run("ip", "-o", "addr", "show"),
        "routes": run("ip", "route", "show", "table", "all"),
        "rules": run("ip", "rule", "show"),
        "iptables-legacy": strip_comments(run("iptables-legacy-save")),
        "iptables-nft": strip_comments(run("iptables-nft-save")),
        "sysctls": root_sysctls(),
        "mounts": sorted(m.mount_point for m in mounts.mountinfo()
                         if m.mount_point.startswith(f"/run/netns/{prefix}")),
        "run-labnet": sorted(glob.glob(f"/run/labnet/{lab}/**", recursive=True)),
        "etc-netns": sorted(glob.glob(f"/etc/netns/{prefix}*/**", recursive=True)),
        "etc-resolv.conf": _read("/etc/resolv.conf"),
        "agents": sorted(p for p in glob.glob("/proc/[0-9]*/cmdline")
                         if b"\0--lab\0" + lab.encode() + b"\0" in _read(p)),
    }


def strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def test_up_then_down_leaves_the_machine_as_it_was(labnet_lab):
    lab = labnet_lab(up=False)
    before = machine_snapshot(lab.name)
    lab.up()
    during = machine_snapshot(lab.name)
    assert len(during["netns"]) == len(before["netns"]) + len(lab.running_plan().all_netns())
    assert during["agents"] and during["mounts"]
    # nothing of the lab shows in the root namespace while it runs either
    for key in ("links", "addresses", "routes", "rules", "iptables-legacy", "iptables-nft",
                "sysctls"):
        assert during[key] == before[key], key
    result = labnet_cli("down", lab.name)
    assert result.returncode == 0, result.stderr
    assert machine_snapshot(lab.name) == before


def test_down_after_sigkilled_up_cleans_everything(labnet_lab):
    lab = labnet_lab(text=lab_text(bare_pods(150), nodes=3), up=False)
    name = lab.name
    before = machine_snapshot(name)
    proc = subprocess.Popen([sys.executable, "-m", "labnet", "up", str(lab.path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            built = [n for n in nsfs.list_netns() if n.startswith(f"{name}-")]
            if len(built) >= 40:
                break
            time.sleep(0.005)
        proc.kill()
        proc.wait()
        assert built, "up never got going"
        assert [n for n in nsfs.list_netns() if n.startswith(f"{name}-")]
        result = labnet_cli("down", name)
        assert result.returncode == 0, result.stderr
    finally:
        proc.kill()
        lab.down(missing_ok=True)
    assert machine_snapshot(name) == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_up_rolls_back(labnet_lab, sig):
    lab = labnet_lab(text=lab_text(bare_pods(150, containers=NO_PORTS)), up=False)
    name = lab.name
    before = machine_snapshot(name)
    proc = subprocess.Popen([sys.executable, "-m", "labnet", "up", str(lab.path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len([n for n in nsfs.list_netns() if n.startswith(f"{name}-")]) >= 20:
                break
            time.sleep(0.005)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "interrupted" in err
    finally:
        proc.kill()
        lab.down(missing_ok=True)
    assert machine_snapshot(name) == before


def test_failure_half_way_rolls_back_and_spares_foreign_netns(labnet_lab):
    lab = labnet_lab(up=False)  # the default lab
    name = lab.name
    foreign = f"{name}-default-client"  # someone else's namespace, under a name the plan wants
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    before = machine_snapshot(name)
    try:
        result = labnet_cli("up", str(lab.path))
        assert result.returncode == 3
        assert f"netns {foreign} exists but labnet did not make it" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert machine_snapshot(name) == before  # rolled back; the foreign netns is still there
        assert nsfs.exists(foreign)
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=False)
        lab.down(missing_ok=True)


def test_pod_command_udp_echo_and_processes_end_with_down(labnet_lab):
    text = lab_text("""\
  - apiVersion: v1
    kind: Pod
    metadata: {name: web}
    spec:
      nodeName: node2
      containers:
        - name: py
          command: [python3, -m, http.server, "8080", --bind, 0.0.0.0]
          ports: [{containerPort: 8080}]
        - name: echo
          ports: [{containerPort: 5353, protocol: UDP}]
""", bare_pod("client", node="node1"))
    lab = labnet_lab(text=text)
    web = lab.pod("web")
    for _ in range(50):  # the program needs a moment to start
        result = lab.exec("client", ["curl", "-s", "-m", "2", f"http://{web.ip}:8080/"])
        if result.returncode == 0:
            break
        time.sleep(0.1)
    assert "Directory listing for /<" in result.stdout  # it starts in "/", as a container
    udp = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
           "s.settimeout(3); s.sendto(b'hello labnet', (sys.argv[1], 5353)); "
           "print(s.recvfrom(100)[0].decode())")
    echo = lab.exec("client", [sys.executable, "-c", udp, web.ip])
    assert echo.stdout.strip() == "hello labnet", echo.stderr
    pod = lab.status().pod("web")
    assert pod.listening == ("5353/UDP",) and pod.processes[0].running
    pid = pod.processes[0].pid
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == nsfs.inode(web.netns)
    lab.down()
    assert not Path(f"/proc/{pid}").exists()


def test_two_labs_side_by_side_and_down_all(labnet_lab):
    a, b = labnet_lab(), labnet_lab()
    assert a.exec("client", ["ping", "-c1", "-W2", a.pod("client").ip]).returncode == 0
    # same addresses in both labs, fully separate
    assert a.pod("client").ip == b.pod("client").ip
    listed = labnet_cli("list").stdout.split()
    assert a.name in listed and b.name in listed
    result = labnet_cli("status")
    assert result.returncode != 0 and "several labs are running" in result.stderr
    assert labnet_cli("down", a.name).returncode == 0
    assert b.status().healthy
    nginx = next(p for p in b.running_plan().pods if p.node == "node2")
    answer = parse_whoami(b.exec("client", ["curl", "-s", "-m", "3", f"http://{nginx.ip}"]).stdout)
    assert answer["pod"] == nginx.name


def test_not_root_is_said_plainly():
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
         "labnet", "up"], capture_output=True, text=True, timeout=30, cwd="/")
    assert result.returncode == 77
    assert "labnet needs root" in result.stderr and "sudo" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_commands_on_one_lab_never_interleave(labnet_lab):
    """While one command holds the lab's lock, another waits for it, then runs."""
    import threading

    lab = labnet_lab()
    release = threading.Event()
    holding = threading.Event()

    def hold():
        with lab.state.locked():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    down = subprocess.Popen([sys.executable, "-m", "labnet", "down", lab.name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    assert down.poll() is None  # still waiting for the lock
    assert lab.status().healthy
    release.set()
    holder.join()
    out, err = down.communicate(timeout=30)
    assert down.returncode == 0, err
    assert not [n for n in nsfs.list_netns() if n.startswith(f"{lab.name}-")]
