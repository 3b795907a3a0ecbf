"""A pod command's user and capabilities from its securityContext (labnet.input.security)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labnet.errors import SpecError, SpecErrors
from labnet.input.labfile import parse_lab_text
from labnet.input.security import DEFAULT_ROOT_CAPABILITIES
from labnet.model import NOBODY, Security
from labnet.plan import make_plan

LAB = """name: s
nodes: 1
manifests:
  - apiVersion: v1
    kind: Pod
    metadata: {{name: p}}
    spec:
      securityContext: {pod}
      containers:
        - name: c
          command: [/bin/true]
          securityContext: {container}
"""


def security(pod: str = "{}", container: str = "{}") -> Security:
    spec = parse_lab_text(LAB.format(pod=pod, container=container), "lab.yaml", Path("."))
    (pod_plan,) = [p for p in make_plan(spec).pods if p.name == "p"]
    return pod_plan.containers[0].security


def error(pod: str = "{}", container: str = "{}") -> str:
    with pytest.raises((SpecError, SpecErrors)) as caught:
        security(pod, container)
    return str(caught.value)


def test_nobody_without_capabilities_by_default():
    assert security() == Security(NOBODY, NOBODY, (), False)


def test_root_only_when_asked():
    root = security(container="{runAsUser: 0}")
    assert (root.uid, root.gid, root.privileged) == (0, 0, False)
    assert set(root.caps) == set(DEFAULT_ROOT_CAPABILITIES)
    everything = security(container="{privileged: true}")
    assert everything.uid == 0 and everything.privileged and "SYS_ADMIN" in everything.caps


def test_the_container_overrides_its_pod_and_capabilities_add_and_drop():
    assert security(pod="{runAsUser: 1000, runAsGroup: 3000}").uid == 1000
    assert security(pod="{runAsUser: 1000}", container="{runAsUser: 2000}").uid == 2000
    assert security(pod="{runAsUser: 1000, runAsGroup: 3000}").gid == 3000
    web = security(container="{runAsUser: 1000, capabilities: {add: [NET_BIND_SERVICE]}}")
    assert web.caps == ("NET_BIND_SERVICE",)
    assert security(container="{capabilities: {add: [CAP_NET_ADMIN]}}").caps == ("NET_ADMIN",)
    lean = security(container="{runAsUser: 0, capabilities: {drop: [ALL], add: [NET_RAW]}}")
    assert lean.caps == ()  # drop ALL wins, as in containerd
    assert "NET_RAW" not in security(container="{runAsUser: 0, capabilities: {drop: [NET_RAW]}}"
                                     ).caps


def test_what_the_api_server_or_kubelet_refuses():
    assert "lab.yaml:12: " in error(container="{capabilities: {add: [MAGIC]}}")
    assert "unknown capability 'MAGIC'" in error(container="{capabilities: {add: [MAGIC]}}")
    assert "runAsNonRoot is true but the container would run as root" in error(
        pod="{runAsNonRoot: true}", container="{runAsUser: 0}")
    assert "allowPrivilegeEscalation cannot be false when privileged is true" in error(
        container="{privileged: true, allowPrivilegeEscalation: false}")
    assert "outside 0..2147483647" in error(container="{runAsUser: -1}")
    assert "unknown field" in error(container="{runAsUsr: 1}")
