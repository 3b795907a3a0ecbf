"""Validation as strict as the API server's (issue 11): each input it rejects and labnet used to
accept, crash on, or choke on gets exactly one `file:line: message` line (and nothing else)."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from labnet.errors import SpecError, SpecErrors
from labnet.input.labfile import parse_lab_text
from labnet.input.yamlsrc import load_documents
from labnet.names import pod_template_hash, replica_pod_name
from labnet.plan import make_plan, replica_of
from labnet.plan.topology import hashed_template, next_free


def lines_of(text: str) -> list[str]:
    """The problem lines of a lab file that must be rejected (by validation or planning)."""
    with pytest.raises((SpecError, SpecErrors)) as info:
        make_plan(parse_lab_text(text, "lab.yaml", Path(".")))
    exc = info.value
    lines = [e.line() for e in exc.errors] if isinstance(exc, SpecErrors) else [exc.line()]
    assert str(exc).splitlines() == lines
    return lines


def plan_of(text: str):
    return make_plan(parse_lab_text(text, "lab.yaml", Path(".")))


SVC = """name: x
manifests:
  - apiVersion: v1
    kind: Service
    metadata: {name: s}
    spec:
      %s
"""
SLICE = """name: x
manifests:
  - {apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{port: 80}]}}
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}
    addressType: IPv4
    endpoints:
      - %s
    ports: [{port: 80}]
"""
POD = """name: x
manifests:
  - apiVersion: v1
    kind: Pod
    metadata: {name: p}
    spec:
      containers:
        - name: c
          %s
"""
PROBE = POD % "ports: [{containerPort: 80}]\n          readinessProbe: %s"
HOST = "name: x\nnodes: [node1]\nhosts:\n  - {name: a, nodes: [node1], %s}\n"
DEPLOYMENT = """  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: %s}
    spec:
      replicas: %d
      selector: {matchLabels: {app: d}}
      template: {metadata: {labels: {app: d}}, spec: {containers: [{name: c}]}}
"""
USE = "(write it as four decimal numbers 0..255, e.g. 10.0.0.1)"
LABEL = ("(use at most 63 lower-case letters, digits and '-', starting and ending with a letter "
         "or digit)")
SUBDOMAIN = ("(use at most 253 lower-case letters, digits, '-' and '.', in labels of at most 63, "
             "each starting and ending with a letter or digit)")
IFACE = "(give the name of the host's network interface (ip link))"
NOT_NAME = "(give a number without quotes, or a containerPort's name)"

CASES = {
    # --- IP and CIDR fields ---------------------------------------------------------------
    "loadBalancerIP not an IP (was a traceback)": (
        SVC % "{type: LoadBalancer, loadBalancerIP: not-an-ip, ports: [{port: 80}]}",
        f"lab.yaml:7: Service s: loadBalancerIP 'not-an-ip' is not a valid IPv4 address {USE}"),
    "loadBalancerIP unspecified": (
        SVC % "{type: LoadBalancer, loadBalancerIP: 0.0.0.0, ports: [{port: 80}]}",
        "lab.yaml:7: Service s: loadBalancerIP 0.0.0.0 may not be unspecified (0.0.0.0)"),
    "loadBalancerIP of a node": (
        SVC % "{type: LoadBalancer, loadBalancerIP: 192.168.255.11, ports: [{port: 80}]}",
        "lab.yaml:3: Service default/s: loadBalancerIP 192.168.255.11 is the underlay address "
        "of node node1 (pick another, or leave it out)"),
    "clusterIP not an IP": (
        SVC % "{clusterIP: 172.19.0.300, ports: [{port: 80}]}",
        "lab.yaml:7: Service s: clusterIP '172.19.0.300' is not an IPv4 address (give an "
        "address of serviceCIDR, None, or leave it out)"),
    "clusterIPs dual-stack": (
        SVC % "{clusterIPs: [172.19.0.30, 172.19.0.31], ports: [{port: 80}]}",
        "lab.yaml:7: Service s: clusterIPs holds 2 addresses (labnet is IPv4 only: give one)"),
    "clusterIPs disagrees with clusterIP": (
        SVC % "{clusterIP: 172.19.0.30, clusterIPs: [172.19.0.31], ports: [{port: 80}]}",
        "lab.yaml:7: Service s: clusterIPs[0] '172.19.0.31' is not clusterIP '172.19.0.30' "
        "(they must agree, or give one)"),
    "externalIPs multicast": (
        SVC % "{externalIPs: [239.1.1.1], ports: [{port: 80}]}",
        "lab.yaml:7: Service s: externalIPs entry 239.1.1.1 may not be in the multicast range "
        "(224.0.0.0/4)"),
    "externalIPs link-local multicast": (
        SVC % "{externalIPs: [224.0.0.5], ports: [{port: 80}]}",
        "lab.yaml:7: Service s: externalIPs entry 224.0.0.5 may not be in the link-local "
        "multicast range (224.0.0.0/24)"),
    "externalIPs unspecified": (
        SVC % "{externalIPs: [0.0.0.0], ports: [{port: 80}]}",
        "lab.yaml:7: Service s: externalIPs entry 0.0.0.0 may not be unspecified (0.0.0.0)"),
    "externalIPs loopback": (
        SVC % "{externalIPs: [127.0.0.2], ports: [{port: 80}]}",
        "lab.yaml:7: Service s: externalIPs entry 127.0.0.2 may not be in the loopback range "
        "(127.0.0.0/8)"),
    "externalIPs link-local": (
        SVC % "{externalIPs: [169.254.169.254], ports: [{port: 80}]}",
        "lab.yaml:7: Service s: externalIPs entry 169.254.169.254 may not be in the link-local "
        "range (169.254.0.0/16)"),
    "externalIPs not trimmed": (
        SVC % "{externalIPs: [' 10.0.0.1'], ports: [{port: 80}]}",
        f"lab.yaml:7: Service s: externalIPs entry ' 10.0.0.1' is not a valid IPv4 address {USE}"),
    "loadBalancerSourceRanges not a CIDR": (
        SVC % "{type: LoadBalancer, loadBalancerSourceRanges: [10.0.0.0/33], ports: [{port: 80}]}",
        "lab.yaml:7: Service s: loadBalancerSourceRanges entry '10.0.0.0/33' is not a CIDR: "
        "the prefix /33 is not 0..32"),
    "loadBalancerSourceRanges without LoadBalancer": (
        SVC % "{loadBalancerSourceRanges: [10.0.0.0/8], ports: [{port: 80}]}",
        "lab.yaml:7: Service s: loadBalancerSourceRanges may only be used with type "
        "LoadBalancer"),
    "endpoint 0.0.0.0": (
        SLICE % "{addresses: [0.0.0.0]}",
        "lab.yaml:9: EndpointSlice s-1: endpoint address 0.0.0.0 may not be unspecified "
        "(0.0.0.0)"),
    "endpoint loopback": (
        SLICE % "{addresses: [127.0.0.1]}",
        "lab.yaml:9: EndpointSlice s-1: endpoint address 127.0.0.1 may not be in the loopback "
        "range (127.0.0.0/8)"),
    "endpoint link-local": (
        SLICE % "{addresses: [169.254.1.1]}",
        "lab.yaml:9: EndpointSlice s-1: endpoint address 169.254.1.1 may not be in the "
        "link-local range (169.254.0.0/16)"),
    "endpoint link-local multicast": (
        SLICE % "{addresses: [224.0.0.1]}",
        "lab.yaml:9: EndpointSlice s-1: endpoint address 224.0.0.1 may not be in the "
        "link-local multicast range (224.0.0.0/24)"),
    "endpoint multicast": (
        SLICE % "{addresses: [239.1.2.3]}",
        "lab.yaml:9: EndpointSlice s-1: endpoint address 239.1.2.3 may not be in the "
        "multicast range (224.0.0.0/4)"),
    "endpoint broadcast": (
        SLICE % "{addresses: [255.255.255.255]}",
        "lab.yaml:9: EndpointSlice s-1: endpoint address 255.255.255.255 may not be the "
        "broadcast address (255.255.255.255)"),
    "endpoint 1_0.0.0.1": (
        SLICE % "{addresses: [1_0.0.0.1]}",
        "lab.yaml:9: EndpointSlice s-1: '1_0.0.0.1' is not an IPv4 address"),
    "dns.upstream not an IP": (
        "name: x\ndns: {upstream: [not-an-ip]}\n",
        f"lab.yaml:2: dns.upstream entry 'not-an-ip' is not a valid IPv4 address {USE}"),
    "dns.upstream loopback": (
        "name: x\ndns: {upstream: [127.0.0.53]}\n",
        "lab.yaml:2: dns.upstream entry 127.0.0.53 may not be in the loopback range "
        "(127.0.0.0/8)"),
    "network CIDR in loopback": (
        "name: x\nnetwork: {podCIDR: 127.0.0.0/16}\n",
        "lab.yaml:2: network.podCIDR 127.0.0.0/16 overlaps the loopback range (127.0.0.0/8) "
        "(use a private range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)"),
    "network CIDR as a netmask": (
        "name: x\nnetwork: {underlayCIDR: 192.168.255.0/255.255.255.0}\n",
        "lab.yaml:2: network.underlayCIDR '192.168.255.0/255.255.255.0' is not a valid IPv4 "
        "CIDR: it is not address/prefix (write it as address/prefix with no host bits set, "
        "e.g. 172.16.0.0/16)"),
    "host address link-local": (
        HOST % "address: 169.254.1.1",
        "lab.yaml:4: host a address 169.254.1.1 may not be in the link-local range "
        "(169.254.0.0/16)"),
    "node address of the external host": (
        "name: x\nnodes:\n  - node1\n  - {name: node2, address: 192.168.255.254}\n",
        "lab.yaml:4: node node2: underlay address 192.168.255.254 is already used by the "
        "external host (pick another address)"),
    # --- control characters where they reach a command line or a request ---------------------
    "NUL in command": (
        POD % 'command: [sh, -c, "echo \\0"]',
        "lab.yaml:9: Pod p container c: command[2] 'echo \\x00' holds the control character "
        "'\\x00' (a command line cannot carry it: remove it)"),
    "ESC in args": (
        POD % 'command: [sh]\n          args: [-c, "printf \\e[2J"]',
        "lab.yaml:10: Pod p container c: args[1] 'printf \\x1b[2J' holds the control character "
        "'\\x1b' (a command line cannot carry it: remove it)"),
    "env name with =": (
        POD % 'command: [sh]\n          env: [{name: "A=B", value: x}]',
        "lab.yaml:10: Pod p container c: env name 'A=B' is not valid (use printable ASCII "
        "characters other than '=')"),
    "NUL in an env value": (
        POD % 'command: [sh]\n          env: [{name: A, value: "x\\0y"}]',
        "lab.yaml:10: Pod p container c: env 'A' value 'x\\x00y' holds the control character "
        "'\\x00' (a process environment cannot carry it)"),
    "CR LF in a probe path": (
        PROBE % '{httpGet: {port: 80, path: "/x\\r\\nHost: evil"}}',
        "lab.yaml:10: Pod p container c readinessProbe httpGet path '/x\\r\\nHost: evil' holds "
        "the control character '\\r' (it would break the probe's HTTP request line)"),
    "bad probe header name": (
        PROBE % '{httpGet: {port: 80, httpHeaders: [{name: "X Bad", value: a}]}}',
        "lab.yaml:10: Pod p container c readinessProbe httpGet httpHeader name 'X Bad' is not "
        "a valid HTTP header name (use letters, digits and '-')"),
    "LF in a probe header value": (
        PROBE % '{httpGet: {port: 80, httpHeaders: [{name: X-A, value: "a\\nb"}]}}',
        "lab.yaml:10: Pod p container c readinessProbe httpGet httpHeader value 'a\\nb' holds "
        "the control character '\\n' (it would break the probe's HTTP request)"),
    "CR in a probe host": (
        PROBE % '{httpGet: {port: 80, host: "a\\rb"}}',
        "lab.yaml:10: Pod p container c readinessProbe httpGet host 'a\\rb' holds the control "
        "character '\\r' (it would break the probe's HTTP request)"),
    "two probe handlers": (
        PROBE % "{httpGet: {port: 80}, tcpSocket: {port: 80}}",
        "lab.yaml:10: Pod p container c readinessProbe may not have more than one handler "
        "(httpGet, tcpSocket)"),
    "probe port as a quoted number": (
        PROBE % "{tcpSocket: {port: '80'}}",
        "lab.yaml:10: Pod p container c readinessProbe port '80' is not a port name: it must "
        f"contain at least one letter {NOT_NAME}"),
    # --- DNS names and hostnames ------------------------------------------------------------
    "externalName not a DNS name": (
        SVC % "{type: ExternalName, externalName: Not_A.Name}",
        f"lab.yaml:7: Service s: externalName 'Not_A.Name' is not a valid DNS-1123 subdomain "
        f"{SUBDOMAIN}"),
    "externalName with a 64-character label": (
        SVC % ("{type: ExternalName, externalName: " + "a" * 64 + ".example.com}"),
        f"lab.yaml:7: Service s: externalName '{'a' * 64}.example.com' is not a valid DNS-1123 "
        f"subdomain {SUBDOMAIN}"),
    "ExternalName with a clusterIP": (
        SVC % "{type: ExternalName, clusterIP: 172.19.0.9, externalName: example.com}",
        "lab.yaml:7: Service s: clusterIP may not be set for ExternalName services"),
    "endpoint hostname": (
        SLICE % "{addresses: [10.9.0.1], hostname: Web_1}",
        f"lab.yaml:9: EndpointSlice s-1: endpoint hostname 'Web_1' is not a valid DNS-1123 "
        f"label {LABEL}"),
    "Service name is a DNS-1035 label": (
        SVC.replace("name: s}", "name: 1web}") % "{ports: [{port: 80}]}",
        "lab.yaml:5: Service name '1web' is not a valid DNS-1035 label (use at most 63 "
        "lower-case letters, digits and '-', starting with a letter and ending with a letter "
        "or digit)"),
    "a name with a trailing newline": (
        "name: x\nmanifests:\n  - {apiVersion: v1, kind: Pod, metadata: {name: \"web\\n\"}, "
        "spec: {containers: [{name: c}]}}\n",
        f"lab.yaml:3: Pod name 'web\\n' is not a valid DNS-1123 subdomain {SUBDOMAIN}"),
    "empty lab name": (
        "name: ''\n",
        "lab.yaml:1: lab name '' is not a valid DNS-1123 label (lower-case letters, digits and "
        "'-', starting and ending with a letter or digit)"),
    "empty container name": (
        POD.replace("- name: c", "- name: ''") % "image: x",
        f"lab.yaml:8: container name '' is not a valid DNS-1123 label {LABEL}"),
    # --- host interfaces (the kernel's dev_valid_name) ------------------------------------------
    "interface over 15 bytes": (
        HOST % "interface: enp0s31f6-long-name",
        "lab.yaml:4: host a: interface 'enp0s31f6-long-name' is 19 bytes: Linux interface "
        f"names are at most 15 {IFACE}"),
    "interface with /": (
        HOST % "interface: eth/0",
        "lab.yaml:4: host a: interface 'eth/0' may not contain '/', ':', white space or control "
        f"characters {IFACE}"),
    "interface with white space": (
        HOST % "interface: 'eth 0'",
        "lab.yaml:4: host a: interface 'eth 0' may not contain '/', ':', white space or "
        f"control characters {IFACE}"),
    "interface with :": (
        HOST % "interface: 'eth0:1'",
        "lab.yaml:4: host a: interface 'eth0:1' may not contain '/', ':', white space or "
        f"control characters {IFACE}"),
    "interface .": (
        HOST % "interface: '.'",
        f"lab.yaml:4: host a: interface '.' may not be '.' or '..' {IFACE}"),
    "interface ..": (
        HOST % "interface: '..'",
        f"lab.yaml:4: host a: interface '..' may not be '.' or '..' {IFACE}"),
    # --- ports, protocols, port names ----------------------------------------------------------
    "Service port out of range": (
        SVC % "{ports: [{port: 70000}]}",
        "lab.yaml:7: Service s port.port is 70000, outside 1..65535"),
    "containerPort 0": (
        POD % "ports: [{containerPort: 0}]",
        "lab.yaml:9: Pod p container c port.containerPort is 0, outside 1..65535"),
    "targetPort 0": (
        SVC % "{ports: [{port: 80, targetPort: 0}]}",
        "lab.yaml:7: Service s: targetPort 0 is outside 1..65535"),
    "targetPort as a quoted number": (
        SVC % "{ports: [{port: 80, targetPort: '8080'}]}",
        "lab.yaml:7: Service s: targetPort '8080' is not a valid port name: it must contain at "
        f"least one letter {NOT_NAME}"),
    "targetPort name with --": (
        SVC % "{ports: [{port: 80, targetPort: http--alt}]}",
        "lab.yaml:7: Service s: targetPort 'http--alt' is not a valid port name: it must not "
        f"contain consecutive '-' {NOT_NAME}"),
    "protocol in lower case": (
        SVC % "{ports: [{port: 80, protocol: tcp}]}",
        "lab.yaml:7: Service s: protocol 'tcp' is not supported (labnet services carry TCP and "
        "UDP)"),
    "container port name in upper case": (
        POD % "ports: [{name: HTTP, containerPort: 80}]",
        "lab.yaml:9: Pod p container c: port name 'HTTP' is not an IANA service name: it must "
        "contain only lower-case letters, digits and '-'"),
    "container port name without a letter": (
        POD % "ports: [{name: '8080', containerPort: 80}]",
        "lab.yaml:9: Pod p container c: port name '8080' is not an IANA service name: it must "
        "contain at least one letter"),
    "container port name over 15": (
        POD % "ports: [{name: a-very-long-port-name, containerPort: 80}]",
        "lab.yaml:9: Pod p container c: port name 'a-very-long-port-name' is not an IANA "
        "service name: it must be 1 to 15 characters"),
    "Service port name": (
        SVC % "{ports: [{name: Bad_Name, port: 80}]}",
        f"lab.yaml:7: Service s port name 'Bad_Name' is not a valid DNS-1123 label {LABEL}"),
    # --- labels and selectors ---------------------------------------------------------------------
    "label key with two /": (
        "name: x\nmanifests:\n  - {apiVersion: v1, kind: Pod, metadata: {name: p, labels: "
        "{a/b/c: x}}, spec: {containers: [{name: c}]}}\n",
        "lab.yaml:3: Pod p labels: 'a/b/c' is not a valid label name: may hold at most one '/'"),
    "label key prefix": (
        "name: x\nmanifests:\n  - {apiVersion: v1, kind: Pod, metadata: {name: p, labels: "
        "{Example.com/x: y}}, spec: {containers: [{name: c}]}}\n",
        "lab.yaml:3: Pod p labels: 'Example.com/x' is not a valid label name: its prefix "
        "(before '/') must be a DNS-1123 subdomain of at most 253 characters"),
    "label value over 63": (
        "name: x\nmanifests:\n  - {apiVersion: v1, kind: Pod, metadata: {name: p, labels: "
        "{app: " + "v" * 64 + "}}, spec: {containers: [{name: c}]}}\n",
        f"lab.yaml:3: Pod p labels: '{'v' * 64}' is not a valid label value (use at most 63 "
        "letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"),
    "label value with a trailing newline": (
        "name: x\nmanifests:\n  - {apiVersion: v1, kind: Pod, metadata: {name: p, labels: "
        "{app: \"web\\n\"}}, spec: {containers: [{name: c}]}}\n",
        "lab.yaml:3: Pod p labels: 'web\\n' is not a valid label value (use at most 63 letters, "
        "digits, '-', '_' or '.', starting and ending with a letter or digit)"),
    "matchExpressions key": (
        "name: x\nmanifests:\n  - apiVersion: apps/v1\n    kind: Deployment\n    metadata: "
        "{name: d}\n    spec:\n      selector: {matchLabels: {app: d}, matchExpressions: "
        "[{key: 'a b', operator: Exists}]}\n      template: {metadata: {labels: {app: d}}, "
        "spec: {containers: [{name: c}]}}\n",
        "lab.yaml:7: Deployment d: matchExpression key 'a b' is not a valid label name: its "
        "name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a "
        "letter or digit"),
    # --- fields only some Services take ----------------------------------------------------------
    "externalTrafficPolicy on a ClusterIP": (
        SVC % "{externalTrafficPolicy: Local, ports: [{port: 80}]}",
        "lab.yaml:7: Service s: externalTrafficPolicy may only be set for externally-accessible "
        "services (type NodePort or LoadBalancer, or externalIPs)"),
    "sessionAffinityConfig without ClientIP": (
        SVC % "{sessionAffinityConfig: {clientIP: {timeoutSeconds: 5}}, ports: [{port: 80}]}",
        "lab.yaml:7: Service s: sessionAffinityConfig needs sessionAffinity ClientIP"),
    "IPv6 family": (
        SVC % "{ipFamilies: [IPv6], ports: [{port: 80}]}",
        "lab.yaml:7: Service s: ipFamilies ['IPv6'] is not [IPv4] (labnet is IPv4 only)"),
    "endpoint condition not a boolean": (
        SLICE % "{addresses: [10.9.0.1], conditions: {ready: 'no'}}",
        "lab.yaml:9: EndpointSlice s-1 conditions.ready must be true or false, not 'no'"),
    # --- caps ---------------------------------------------------------------------------------
    "nodeCIDRMaskSize 8 (was 1.75 GB and 17 s)": (
        "name: x\nnetwork: {podCIDR: 10.0.0.0/8, nodeCIDRMaskSize: 8}\n",
        "lab.yaml:2: network.nodeCIDRMaskSize is 8, outside 16..28"),
    "more node slices than kube-controller-manager allows": (
        "name: x\nnetwork: {podCIDR: 10.0.0.0/8, nodeCIDRMaskSize: 28}\n",
        "lab.yaml:2: network.nodeCIDRMaskSize /28 splits podCIDR 10.0.0.0/8 into 2^20 slices, "
        "more than 2^16 (kube-controller-manager's limit: use a smaller podCIDR or a shorter "
        "mask)"),
    "serviceCIDR larger than a /12": (
        "name: x\nnetwork: {serviceCIDR: 10.0.0.0/8}\n",
        "lab.yaml:2: network.serviceCIDR 10.0.0.0/8 is larger than a /12 (the API server's "
        "limit: use a /12 or smaller)"),
    "101 nodes": (
        "name: x\nnodes: 101\n",
        "lab.yaml:2: nodes: 101 is not between 1 and 100 (labnet's cap is 100 nodes: more would "
        "exhaust the machine)"),
    "2001 replicas": (
        "name: x\nmanifests:\n" + DEPLOYMENT % ("d", 2001),
        "lab.yaml:7: Deployment d spec.replicas is 2001, outside 0..2000"),
    "2200 pods in all": (
        "name: x\nnetwork: {nodeCIDRMaskSize: 16, podCIDR: 10.0.0.0/8}\nmanifests:\n"
        + DEPLOYMENT % ("d0", 1100) + DEPLOYMENT % ("d1", 1100),
        "lab.yaml:11: Deployment default/d1: the lab's pods (bare pods and replicas) reach "
        "2200, more than 2000 (labnet's cap: that many pods would exhaust the machine)"),
    "serviceCIDR full": (
        "name: x\nnetwork: {serviceCIDR: 172.19.0.0/28, clusterDNS: 172.19.0.10}\nmanifests:\n"
        + "".join(f"  - {{apiVersion: v1, kind: Service, metadata: {{name: s{i}}}, spec: "
                  "{ports: [{port: 80}]}}\n" for i in range(14)),
        "lab.yaml:17: Service default/s13: serviceCIDR 172.19.0.0/28 is full (widen "
        "serviceCIDR, or use fewer Services)"),
    # --- YAML -------------------------------------------------------------------------------------
    "alias bomb": (
        "name: x\na: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
            for i in range(8)),
        "lab.yaml:6: YAML aliases expand this document to more than 10102 values, from 102 "
        "written (an alias bomb? use anchors and aliases sparingly)"),
    "recursive alias": (
        "name: x\nnodes: &n [node1, *n]\n",
        "lab.yaml:2: a YAML alias refers to the value that holds it (recursive values are not "
        "allowed)"),
    "nesting too deep": (
        "name: x\nnodes: " + "[" * 70 + "]" * 70 + "\n",
        "lab.yaml:2: YAML nesting deeper than 64 levels (a lab file or manifest needs far less)"),
    "raw NUL in the file": (
        "name: x\nnodes: 2\x00\n",
        "lab.yaml:2: YAML cannot hold the character '\\x00' (special characters are not "
        "allowed) (remove it, or write it as an escape in a double-quoted string)"),
    "an impossible date (was a traceback)": (
        "name: x\nnodes: 2024-13-45\n",
        "lab.yaml:2: YAML value cannot be read: month must be in 1..12 (quote it to make it a "
        "string)"),
    "a 5000-digit number (was a traceback)": (
        "name: x\nnodes: " + "9" * 5000 + "\n",
        "lab.yaml:2: YAML value cannot be read: Exceeds the limit (4300 digits) for integer "
        "string conversion: value has 5000 digits (quote it to make it a string)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_input_gets_one_file_line_error(case):
    text, expected = CASES[case]
    assert lines_of(text) == [expected]


def test_newlines_and_tabs_in_a_command_are_fine():
    """A script given with `sh -c` has newlines and tabs: they reach execve intact."""
    plan = plan_of(POD % 'command: [sh, -c, "echo a\\necho\\tb"]')
    (pod,) = [p for p in plan.pods if p.name == "p"]
    assert pod.containers[0].argv == ("sh", "-c", "echo a\necho\tb")


def test_legacy_leading_zeros_stay_accepted_in_endpoint_slices():
    """EndpointSlice addresses are read as kube-proxy's ParseIPSloppy reads them."""
    plan = plan_of(SLICE % "{addresses: [10.9.00.010]}")
    assert [e.ip for e in plan.service("default/s").ports[0].endpoints] == ["10.9.0.10"]


def test_yaml_merge_keys_own_keys_win():
    (doc,) = load_documents("base: &b {x: 1, y: 2}\nm: {<<: *b, y: 3}\n", "f.yaml")
    assert doc["m"] == {"x": 1, "y": 3}


def test_alias_bomb_is_refused_quickly_and_small():
    text = CASES["alias bomb"][0]
    tracemalloc.start()
    started = time.perf_counter()
    lines_of(text)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1 and peak < 5_000_000


def test_huge_pod_ranges_plan_without_listing_addresses():
    """A /16 per node and a /8 podCIDR: the planner computes addresses, never lists them
    (nodeCIDRMaskSize 8 used to take 1.75 GB and 17 s in a dry run)."""
    text = ("name: x\nnetwork: {podCIDR: 10.0.0.0/8, nodeCIDRMaskSize: 16}\nnodes: 100\n"
            "manifests:\n" + DEPLOYMENT % ("d", 900))
    tracemalloc.start()
    started = time.perf_counter()
    plan = plan_of(text)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(plan.nodes) == 100 and len(plan.pods) == 901
    assert elapsed < 5 and peak < 100_000_000
    assert {p.ip for p in plan.pods if p.node == "node1"} >= {"10.1.0.2"}


def test_next_free_probes_lazily():
    first, last = 10, 10 + 2**24  # sixteen million addresses: never listed
    assert next_free(first, last, None, set()) == first
    assert next_free(first, last, first + 5, {first + 6, first + 7}) == first + 8
    assert next_free(first, last, last, {first}) == first + 1  # wraps round after the last
    assert next_free(5, 7, None, {5, 6, 7}) is None


REPLICAS = """name: x
network: {nodeCIDRMaskSize: 16, podCIDR: 10.0.0.0/8}
nodes: 1
manifests:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web31}
    spec:
      replicas: 708
      selector: {matchLabels: {app: w}}
      template:
        metadata: {labels: {app: w}}
        spec: {containers: [{name: c}]}
"""


def test_replica_names_never_collide():
    """Replicas 108 and 707 of web31 draw the same suffix: the second draws again, as the
    ReplicaSet controller does, instead of an unfixable "declared twice"."""
    spec = parse_lab_text(REPLICAS, "lab.yaml", Path("."))
    template_hash = pod_template_hash(hashed_template(spec.deployments[0].template))
    assert (replica_pod_name("web31", template_hash, 108)
            == replica_pod_name("web31", template_hash, 707))  # the collision
    plan = make_plan(spec)
    names = [p.name for p in plan.pods if p.owner == "Deployment/web31"]
    assert len(names) == len(set(names)) == 708
    assert names[108] == replica_pod_name("web31", template_hash, 108)
    assert names[707] == replica_pod_name("web31", template_hash, 707, attempt=1)
    assert all(names[i] == replica_pod_name("web31", template_hash, i)
               for i in range(708) if i != 707)
    assert make_plan(parse_lab_text(REPLICAS, "lab.yaml", Path("."))).to_json() == plan.to_json()
    assert replica_of(spec, "default", names[707]) == ("default/web31", 707)


def test_a_replica_never_takes_a_bare_pods_name():
    spec = parse_lab_text(REPLICAS.replace("replicas: 708", "replicas: 2"), "lab.yaml",
                          Path("."))
    template_hash = pod_template_hash(hashed_template(spec.deployments[0].template))
    taken = replica_pod_name("web31", template_hash, 1)
    text = (REPLICAS.replace("replicas: 708", "replicas: 2")
            + f"  - {{apiVersion: v1, kind: Pod, metadata: {{name: {taken}}}, spec: "
              "{containers: [{name: c}]}}\n")
    plan = plan_of(text)
    replicas = [p.name for p in plan.pods if p.owner == "Deployment/web31"]
    assert taken not in replicas and len(replicas) == 2
