"""Pods that hold against hostile neighbours: pod commands run unprivileged, a flood of
half-open connections does not starve other clients, a chatty program cannot fill /run."""

from __future__ import annotations

import subprocess
import sys
import time

from labnet.agent.podlog import LOG_MAX
from labnet.agent.servers import MAX_CONNECTIONS, REQUEST_DEADLINE
from labnet.names import log_file_name
from tests.integration.conftest import wait_for
from tests.manifests import PORT_80, bare_pod, lab_text

LAB = lab_text(bare_pod("web", node="node2", containers=PORT_80), """\
  - apiVersion: v1
    kind: Pod
    metadata: {name: who}
    spec:
      containers:
        - name: c
          command: [/bin/sh, -c, "id -u; id -g; grep CapEff /proc/self/status; cat /run/labnet/LAB/desired.json >/dev/null 2>&1 && echo secrets-readable; touch /tmp/mine && ls /tmp; sleep 1000"]
  - apiVersion: v1
    kind: Pod
    metadata: {name: chatty}
    spec:
      containers:
        - {name: c, command: [/bin/sh, -c, "head -c 12000000 /dev/zero | tr '\\\\0' x; sleep 1000"]}
  - apiVersion: v1
    kind: Pod
    metadata: {name: root}
    spec:
      containers:
        - name: c
          command: [/bin/sh, -c, "id -u; grep CapEff /proc/self/status; sleep 1000"]
          securityContext: {runAsUser: 0}
  - apiVersion: v1
    kind: Pod
    metadata: {name: admin}
    spec:
      containers:
        - name: c
          command: [/bin/sh, -c, "id -u; grep CapEff /proc/self/status; sleep 1000"]
          securityContext: {privileged: true}
  - apiVersion: v1
    kind: Pod
    metadata: {name: binder}
    spec:
      securityContext: {runAsUser: 1000}
      containers:
        - name: c
          command: [/usr/bin/python3, -m, http.server, "80"]
          ports: [{containerPort: 80}]
""", bare_pod("client", node="node1"))

FLOOD = """
import socket, sys, time
target = (sys.argv[1], 80)
held = []
for _ in range(1000):          # connections that never send a request
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(target)
    held.append(s)
time.sleep(0.5)
start = time.monotonic()
c = socket.create_connection(target, timeout=3)
c.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
body = b""
while chunk := c.recv(4096):
    body += chunk
took = round(time.monotonic() - start, 3)
slow = socket.create_connection(target, timeout=10)
slow.sendall(b"GET / HT")      # half a request: dropped at the deadline
began = time.monotonic()
try:
    slow.recv(1)
except OSError:
    pass
print(took, round(time.monotonic() - began, 1), body.split(b"\\r\\n")[0].decode(), flush=True)
time.sleep(30)                 # still holding the flood while the test counts
"""


def test_pods_hold_against_their_neighbours(labnet_lab):
    lab = labnet_lab(text=LAB, up=False)  # named first: the `who` pod's command names it
    lab.up(LAB.replace("LAB", lab.name))
    logs = lab.state.logs_dir
    who = logs / log_file_name("default", "who", "c")
    assert wait_for(lambda: who.exists() and "mine" in who.read_text(), 5)
    lines = who.read_text().split()
    # nobody, no capabilities, cannot read the lab's state, a /tmp of its own
    assert lines[:2] == ["65534", "65534"]
    assert "CapEff:" in lines and lines[lines.index("CapEff:") + 1] == "0000000000000000"
    assert "secrets-readable" not in lines and lines[-1] == "mine"
    # root only when asked: runAsUser 0 gets a runtime's default capabilities, privileged all
    root, admin = (logs / log_file_name("default", n, "c") for n in ("root", "admin"))
    assert wait_for(lambda: all(p.exists() and "CapEff" in p.read_text() for p in (root, admin)))
    assert root.read_text().split()[:3] == ["0", "CapEff:", "00000000a80425fb"]
    assert admin.read_text().split()[0] == "0"
    assert int(admin.read_text().split()[2], 16) & (1 << 21)  # CAP_SYS_ADMIN
    # an unprivileged program may serve the port below 1024 its pod declares
    def binder_answers() -> bool:  # the program may still be starting
        answer = lab.exec("client", ["curl", "-s", "-m", "3", f"http://{lab.pod('binder').ip}/"])
        return answer.returncode == 0 and "Directory listing for /<" in answer.stdout

    assert wait_for(binder_answers, 10)
    # 1,000 half-open connections to one pod: a new client is answered at once, the server
    # keeps a bounded number of them (the oldest go), and half a request is dropped in time
    web = lab.pod("web")
    flood = subprocess.Popen([sys.executable, "-m", "labnet", "exec", "--lab", lab.name,
                              "client", "--", sys.executable, "-c", FLOOD, web.ip],
                             stdout=subprocess.PIPE, text=True)
    try:
        took, dropped_after, status = flood.stdout.readline().split(maxsplit=2)
        held = lab.exec("web", ["ss", "-Htn", "state", "established"]).stdout.splitlines()
    finally:
        flood.kill()
        flood.wait()
    assert status.strip() == "HTTP/1.1 200 OK" and float(took) < 1.0, (took, status)
    assert REQUEST_DEADLINE - 1 <= float(dropped_after) <= REQUEST_DEADLINE + 2
    assert len(held) <= MAX_CONNECTIONS + 2, len(held)
    # 12 MB of output: the log keeps at most two files of LOG_MAX
    chatty = logs / log_file_name("default", "chatty", "c")
    older = chatty.with_name(chatty.name + ".1")
    assert wait_for(lambda: older.exists() and chatty.stat().st_size == 12000000 % LOG_MAX, 10)
    assert older.stat().st_size == LOG_MAX
    time.sleep(0.2)
    assert lab.status().healthy
