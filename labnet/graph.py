"""The lab as a picture: nodes, bridges, veths, pods with IPs, the VXLAN mesh, and services
with their ClusterIPs and endpoints. Pure: built from the plan, rendered as Graphviz dot,
Mermaid, or JSON (for tools; its schema is GRAPH_SCHEMA)."""

from __future__ import annotations

import json

from labnet.names import POD_BRIDGE, UNDERLAY_BRIDGE, VXLAN_DEVICE
from labnet.plan import Plan, PlanLink, plan_links
from labnet.plan.links import VXLAN

GRAPH_SCHEMA = {
    "type": "object",
    "required": ["lab", "vertices", "edges"],
    "properties": {
        "lab": {"type": "string"},
        "vertices": {"type": "array", "items": {
            "type": "object", "required": ["id", "kind", "label"],
            "properties": {"id": {"type": "string"}, "kind": {"enum": [
                "switch", "host", "node", "bridge", "vxlan", "pod", "service"]},
                "label": {"type": "string"}, "parent": {"type": "string"},
                "ip": {"type": "string"}}}},
        "edges": {"type": "array", "items": {
            "type": "object", "required": ["from", "to", "kind"],
            "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                           "kind": {"enum": ["link", "veth", "vxlan", "endpoint"]},
                           "label": {"type": "string"}}}},
    },
}


def graph(plan: Plan) -> dict:
    vertices: list[dict] = [
        {"id": "switch", "kind": "switch", "label": f"{UNDERLAY_BRIDGE} (underlay "
                                                     f"{plan.network.underlay_cidr})"},
        {"id": "external", "kind": "host", "label": "external host", "ip": plan.external_ip}]
    links = plan_links(plan)
    to = {link.b.netns: link for link in links if link.kind != VXLAN}

    def plug(link: PlanLink) -> str:  # "eth0 192.168.255.11": the end that is a host's NIC
        return f"{link.b.ifname} {link.b.address.split('/')[0]}"

    external = to.get(plan.external_netns)  # none in a lab that spans hosts
    edges: list[dict] = [{"from": "external", "to": "switch", "kind": "link",
                          "label": plug(external) if external else f"eth0 {plan.external_ip}"}]
    for node in plan.nodes:
        nid = f"node:{node.name}"
        vertices += [
            {"id": nid, "kind": "node", "label": f"{node.name} eth0 {node.underlay_ip}",
             "ip": node.underlay_ip},
            {"id": f"{nid}:cni0", "kind": "bridge", "parent": nid,
             "label": f"{POD_BRIDGE} {node.gateway}/{plan.network.node_cidr_mask}"},
            {"id": f"{nid}:vxlan", "kind": "vxlan", "parent": nid,
             "label": f"{VXLAN_DEVICE} {node.vtep_ip} VNI {plan.network.vxlan_vni}"}]
        edges.append({"from": nid, "to": "switch", "kind": "link",
                      "label": plug(to[node.netns])})
        for pod in plan.pods_on(node.name):
            pid = f"pod:{pod.key}"
            vertices.append({"id": pid, "kind": "pod", "parent": nid, "ip": pod.ip,
                             "label": f"{pod.key} {pod.ip}"})
            veth = to[pod.netns]
            edges.append({"from": pid, "to": f"{nid}:cni0", "kind": "veth",
                          "label": f"{veth.b.ifname} - {veth.a.ifname}"})
    for link in links:
        if link.kind == VXLAN:
            edges.append({"from": f"{link.a.owner}:vxlan", "to": f"{link.b.owner}:vxlan",
                          "kind": "vxlan", "label": f"UDP {link.attributes['port']}"})
    for svc in plan.services:
        sid = f"svc:{svc.key}"
        ports = ",".join(f"{p.port}/{p.protocol}" for p in svc.ports)
        vertices.append({"id": sid, "kind": "service", "ip": svc.cluster_ip,
                         "label": f"{svc.key} {svc.cluster_ip or svc.external_name} {ports}"})
        pods = sorted({e.pod for p in svc.ports for e in p.endpoints if e.pod})
        edges += [{"from": sid, "to": f"pod:{pod}", "kind": "endpoint"} for pod in pods]
    return {"lab": plan.lab, "vertices": vertices, "edges": edges}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(data: dict) -> str:
    shapes = {"switch": "box3d", "host": "box", "node": "box", "bridge": "ellipse",
              "vxlan": "hexagon", "pod": "component", "service": "cds"}
    lines = [f"digraph {_q('labnet ' + data['lab'])} {{", "  rankdir=LR;",
             "  node [fontname=Helvetica fontsize=10];",
             "  edge [fontname=Helvetica fontsize=9];"]
    children: dict[str, list[dict]] = {}
    for v in data["vertices"]:
        children.setdefault(v.get("parent", ""), []).append(v)
    for v in children.get("", []):
        if v["kind"] == "node":
            lines.append(f"  subgraph {_q('cluster_' + v['id'])} {{")
            lines.append(f"    label={_q(v['label'])};")
            for child in children.get(v["id"], []):
                lines.append(f"    {_q(child['id'])} [label={_q(child['label'])} "
                             f"shape={shapes[child['kind']]}];")
            lines.append(f"    {_q(v['id'])} [label={_q('eth0 ' + v['ip'])} shape=box];")
            lines.append("  }")
        else:
            lines.append(f"  {_q(v['id'])} [label={_q(v['label'])} shape={shapes[v['kind']]}];")
    styles = {"link": "", "veth": "", "vxlan": " style=dashed dir=both",
              "endpoint": " style=dotted color=blue"}
    for e in data["edges"]:
        label = f" label={_q(e['label'])}" if e.get("label") else ""
        lines.append(f"  {_q(e['from'])} -> {_q(e['to'])} [{label.strip()}"
                     f"{styles[e['kind']]}];".replace("[ ", "["))
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(data: dict) -> str:
    ids = {v["id"]: f"v{i}" for i, v in enumerate(data["vertices"])}

    def label(text: str) -> str:
        return text.replace('"', "'")

    lines = ["flowchart LR"]
    children: dict[str, list[dict]] = {}
    for v in data["vertices"]:
        children.setdefault(v.get("parent", ""), []).append(v)
    for v in children.get("", []):
        if v["kind"] == "node":
            lines.append(f'  subgraph {ids[v["id"]]}_box["{label(v["label"])}"]')
            for child in children.get(v["id"], []):
                lines.append(f'    {ids[child["id"]]}["{label(child["label"])}"]')
            lines.append(f'    {ids[v["id"]]}["eth0 {v["ip"]}"]')
            lines.append("  end")
        else:
            lines.append(f'  {ids[v["id"]]}["{label(v["label"])}"]')
    arrows = {"link": "---", "veth": "---", "vxlan": "-.-", "endpoint": "-.->"}
    for e in data["edges"]:
        text = f'|"{label(e["label"])}"|' if e.get("label") else ""
        lines.append(f"  {ids[e['from']]} {arrows[e['kind']]}{text} {ids[e['to']]}")
    return "\n".join(lines) + "\n"


def to_json(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
