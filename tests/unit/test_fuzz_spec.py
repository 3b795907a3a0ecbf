"""Property-based fuzzing of lab files and manifests (hypothesis).

Valid labs (the default lab, and one that uses every field labnet acts on) are mutated field by
field — wrong types, random strings with control characters, huge and negative numbers, missing
fields, unknown fields — or as text (characters inserted, deleted, replaced), or replaced by
random YAML. Whatever comes out:

- nothing but labnet.errors.SpecError / SpecErrors is raised (never a traceback);
- every rejection is one line per problem, `file:line: message` (or file:line:column for YAML
  syntax);
- every acceptance plans: labnet.plan.make_plan succeeds.

The unit suite runs a modest, fixed (derandomized) number of examples; bench/fuzz_spec.py runs
the same properties with random seeds and >= 10,000 examples.
"""

from __future__ import annotations

import copy
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from labnet.errors import SpecError, SpecErrors
from labnet.input.labfile import parse_lab_text
from labnet.plan import make_plan
from tests.manifests import SEED

# hypothesis keeps a cache (.hypothesis/) even without an example database: in a temporary
# directory that goes with the test run, not in the checkout
_HYPOTHESIS_HOME = tempfile.TemporaryDirectory(prefix="labnet-hypothesis-")
set_hypothesis_home_dir(_HYPOTHESIS_HOME.name)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "lab.yaml"
RICH = """
name: rich
network:
  underlayCIDR: 10.10.0.0/24
  podCIDR: 10.20.0.0/16
  nodeCIDRMaskSize: 24
  serviceCIDR: 10.30.0.0/16
  clusterDNS: 10.30.0.10
  clusterDomain: cluster.local
  vxlan: {vni: 7, port: 4789}
  mtu: 1500
dns: {ttl: 30, upstream: [10.20.2.2]}
nodes:
  - node1
  - {name: node2, labels: {disk: ssd}, address: 10.10.0.50}
hosts:
  - {name: hosta, nodes: [node1], interface: eth1, address: 10.10.0.2}
  - {name: hostb, nodes: [node2], interface: eth1}
manifests:
  - {apiVersion: v1, kind: Namespace, metadata: {name: shop, labels: {team: a}}}
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, namespace: shop, annotations: {example.com/owner: me}}
    spec:
      replicas: 3
      selector:
        matchLabels: {app: web}
        matchExpressions: [{key: tier, operator: In, values: [front]}]
      template:
        metadata: {labels: {app: web, tier: front}}
        spec:
          nodeSelector: {disk: ssd}
          hostname: web
          subdomain: peers
          containers:
            - name: srv
              image: nginx
              ports:
                - {name: http, containerPort: 8080}
                - {name: echo, containerPort: 9000, protocol: UDP}
              readinessProbe:
                httpGet: {port: http, path: /healthz, httpHeaders: [{name: X-Probe, value: "1"}]}
                periodSeconds: 5
                failureThreshold: 2
            - name: side
              command: [python3, -c, "print('hello')\\nprint('world')"]
              args: [--flag]
              env: [{name: MODE, value: fast}]
              livenessProbe: {exec: {command: [true]}}
  - apiVersion: v1
    kind: Pod
    metadata: {name: client, namespace: shop, labels: {app: client}}
    spec:
      nodeName: node1
      containers:
        - name: c
          ports: [{containerPort: 53, protocol: UDP}]
          readinessProbe: {tcpSocket: {port: 53}}
  - apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: shop}
    spec:
      type: LoadBalancer
      selector: {app: web}
      externalTrafficPolicy: Local
      sessionAffinity: ClientIP
      sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
      externalIPs: [10.10.0.150]
      loadBalancerSourceRanges: [10.10.0.0/24]
      ports:
        - {name: http, port: 80, targetPort: http, nodePort: 30080}
        - {name: echo, port: 53, targetPort: echo, protocol: UDP}
  - apiVersion: v1
    kind: Service
    metadata: {name: peers, namespace: shop}
    spec: {clusterIP: None, publishNotReadyAddresses: true, selector: {app: web},
           ports: [{port: 8080}]}
  - apiVersion: v1
    kind: Service
    metadata: {name: fixed, namespace: shop}
    spec: {type: LoadBalancer, clusterIP: 10.30.0.20, loadBalancerIP: 10.10.0.200,
           selector: {app: web}, ports: [{port: 81, targetPort: 8080}]}
  - apiVersion: v1
    kind: Service
    metadata: {name: ext, namespace: shop}
    spec: {type: ExternalName, externalName: example.com.}
  - apiVersion: v1
    kind: Service
    metadata: {name: manual, namespace: shop}
    spec: {ports: [{name: dns, port: 53, protocol: UDP}]}
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: manual-1, namespace: shop, labels: {kubernetes.io/service-name: manual}}
    addressType: IPv4
    endpoints:
      - {addresses: [10.99.0.1], hostname: one, nodeName: node1}
      - {addresses: [10.99.0.2], conditions: {ready: false, serving: true, terminating: true}}
    ports: [{name: dns, port: 5353, protocol: UDP}]
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: settings}}
"""
BASES = [yaml.safe_load(SEED), yaml.safe_load(RICH)]
TEXTS = [SEED, RICH]

# file:line: message (YAML syntax errors add :column)
LINE = re.compile(r"(?P<file>[^\n]+?):(?P<line>[0-9]+)(:[0-9]+)?: (?P<message>\S[^\n]*)")


# --- values and mutations -------------------------------------------------------------------

def text_values() -> st.SearchStrategy:
    """Strings that look like what labs hold, and strings that hold anything."""
    chars = st.characters(blacklist_categories=("Cs",))
    return st.one_of(
        st.text(chars, max_size=40),
        st.text("abcxyz019-._/:@ \t\n\r\x00\x07\x1b\x7f\x85\u2028", max_size=30),
        st.sampled_from([
            "", "None", "0.0.0.0", "127.0.0.1", "169.254.1.1", "224.0.0.1", "239.9.9.9",
            "255.255.255.255", "1_0.0.0.1", "10.0.0.1", "010.0.0.1", "10.0.0.256", "10.0.0.0/8",
            "10.0.0.1/8", "0.0.0.0/0", "::1", "fe80::1", "not-an-ip", "a" * 64, "a" * 300,
            "example.com", "Example.COM", "-x", "x-", "web", "http", "8080", "80", "UDP",
            "SCTP", "TCP", "Local", "Cluster", "ClientIP", "NodePort", "LoadBalancer",
            "ExternalName", "ClusterIP", "IPv4", "IPv6", "In", "Exists", "eth0",
            "averyveryverylongifname", "..", "a/b", "kubernetes.io/x", "x" * 70 + "/y",
            "/x\r\nHost: evil", "\x00", "sh -c 'echo'",
        ]),
    )


def scalar_values() -> st.SearchStrategy:
    return st.one_of(
        text_values(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, -1, 1, 8, 15, 16, 28, 29, 32, 33, 65535, 65536, 30000, 32767,
                         10**6, 2**31, 2**63, 1001, 100, 101, 5000]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
    )


def any_values() -> st.SearchStrategy:
    return st.recursive(
        scalar_values(),
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(st.one_of(text_values(), st.integers()), inner,
                                                max_size=4)),
        max_leaves=12,
    )


def paths(value, prefix=()):
    """Every path (tuple of keys and indexes) into a loaded YAML document."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def at(doc, path):
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def tweaked(draw, value):
    """A value close to `value`: of the same type, often still valid."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return draw(st.one_of(st.integers(min_value=value - 3, max_value=value + 3),
                              st.sampled_from([0, 1, 2, 255, 256, 1000, 1001, 65535, 65536]),
                              st.integers(min_value=min(-value, 2 * value) - 1,
                                          max_value=max(-value, 2 * value) + 1)))
    if isinstance(value, str):
        extra = draw(st.text("az09-._/:", min_size=1, max_size=3))
        return draw(st.sampled_from([value + extra, value[:-1], extra + value, value.upper(),
                                     value.replace(".", ".0", 1), value + "\n", value[::-1]]))
    return draw(any_values())


@st.composite
def mutated_documents(draw) -> str:
    """A valid lab with one to three fields tweaked, replaced, removed, added or duplicated."""
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        everywhere = list(paths(doc))[1:]
        if not everywhere:
            break
        path = draw(st.sampled_from(everywhere))
        parent, last = at(doc, path[:-1]), path[-1]
        action = draw(st.sampled_from(["tweak"] * 4 + ["replace"] * 2 + ["delete"] * 2 +
                                      ["add", "duplicate", "grow"]))
        if action == "tweak":
            parent[last] = draw(tweaked(parent[last]))
        elif action == "replace":
            parent[last] = draw(any_values())
        elif action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(text_values())] = draw(any_values())
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        elif action == "grow":  # a big number where a count may be
            parent[last] = draw(st.sampled_from([1000, 1001, 5000, 10**9, 2**64]))
        else:
            parent[last] = draw(scalar_values())
    return yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), sort_keys=False)


@st.composite
def mutated_texts(draw) -> str:
    """A valid lab file's text with characters inserted, deleted or replaced."""
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        piece = draw(st.one_of(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
            st.sampled_from(["&a ", "*a", "<<: ", "- ", ": ", "{", "}", "[", "]", "\n  ",
                             "!!binary ", "!!python/object ", "---\n", '"\\0"', "\t", "\x00",
                             "2024-13-45", "9" * 40, "? "]),
        ))
        cut = draw(st.integers(min_value=0, max_value=8))
        text = text[:position] + piece + text[position + cut:]
    return text


def random_yaml() -> st.SearchStrategy:
    """Random YAML documents: any data, dumped; sometimes shaped like a lab."""
    shaped = st.fixed_dictionaries({"name": text_values()}, optional={
        "nodes": any_values(), "network": any_values(), "manifests": st.lists(any_values(),
                                                                               max_size=3),
        "dns": any_values(), "hosts": any_values()})
    return st.one_of(any_values(), shaped).map(
        lambda doc: yaml.safe_dump(doc, allow_unicode=True))


@st.composite
def mutated_manifest_files(draw) -> tuple[str, str]:
    """(lab, manifest file): the rich lab with its manifests moved to a multi-document file
    (manifestFiles), one of which is mutated, as a document or as text."""
    rich = copy.deepcopy(BASES[1])
    objects = rich.pop("manifests")
    rich["manifestFiles"] = ["app.yaml"]
    index = draw(st.integers(min_value=0, max_value=len(objects) - 1))
    docs = [yaml.safe_dump(o, sort_keys=False) for o in objects]
    if draw(st.booleans()):
        everywhere = list(paths(objects[index]))[1:]
        path = draw(st.sampled_from(everywhere))
        parent = at(objects[index], path[:-1])
        parent[path[-1]] = draw(st.one_of(tweaked(parent[path[-1]]), any_values()))
        docs[index] = yaml.safe_dump(objects[index], sort_keys=False, allow_unicode=True)
    else:
        position = draw(st.integers(min_value=0, max_value=len(docs[index])))
        piece = draw(st.one_of(st.text(max_size=4), st.sampled_from(["\n- ", ": ", "*x", "\x00"])))
        docs[index] = docs[index][:position] + piece + docs[index][position + 2:]
    return yaml.safe_dump(rich, sort_keys=False), "---\n".join(docs)


def inputs() -> st.SearchStrategy:
    return st.one_of(mutated_documents(), mutated_texts(), random_yaml())


# --- the properties ----------------------------------------------------------------------

@dataclass
class Outcome:
    accepted: bool
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0


def check(text: str | tuple[str, str], base: Path = ROOT) -> Outcome:
    """Parse and plan `text` as `labnet up --dry-run` does, asserting the three properties.
    A (lab, manifest file) pair is written to a fresh directory first."""
    if isinstance(text, tuple):
        with tempfile.TemporaryDirectory() as directory:
            (Path(directory) / "app.yaml").write_text(text[1], encoding="utf-8")
            return check(text[0], Path(directory))
    started = time.perf_counter()
    try:
        spec = parse_lab_text(text, SOURCE, base)
    except (SpecError, SpecErrors) as exc:
        lines = [e.line() for e in exc.errors] if isinstance(exc, SpecErrors) else [exc.line()]
        assert lines, "a rejection names at least one problem"
        assert str(exc).splitlines() == lines, f"a problem spans several lines: {str(exc)!r}"
        for line in lines:
            match = LINE.fullmatch(line)
            assert match, f"not file:line: message: {line!r}"
            assert match["file"] in (SOURCE, str(base)) or match["file"].startswith(
                str(base)), line
            assert int(match["line"]) >= 1, line
        return Outcome(False, lines, time.perf_counter() - started)
    # accepted: it must plan, without any error
    plan = make_plan(spec)
    assert plan.nodes and plan.pods
    return Outcome(True, [], time.perf_counter() - started)


FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@FUZZ
@given(mutated_documents())
def test_mutated_lab_documents(text):
    check(text)


@FUZZ
@given(mutated_texts())
def test_mutated_lab_texts(text):
    check(text)


@FUZZ
@given(random_yaml())
def test_random_yaml(text):
    check(text)


@FUZZ
@given(mutated_manifest_files())
def test_mutated_manifest_files(pair):
    check(pair)


def test_the_bases_are_accepted():
    assert all(check(text).accepted for text in TEXTS)
