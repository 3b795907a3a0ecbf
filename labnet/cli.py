"""The `labnet` command: thin click commands over labnet.lab."""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from typing import Any

import click

from labnet import __version__, interrupt
from labnet import lab as labmod
from labnet.errors import LabnetError
from labnet.lab import Lab, pick_lab, require_root
from labnet.model import PROXY_MODES
from labnet.status import StatusReport


def fail(error: LabnetError) -> None:
    for line in str(error).splitlines():
        click.echo(f"labnet: {line}", err=True)
    sys.exit(error.exit_code)


class LabnetGroup(click.Group):
    """Every failure is one line (or one per problem), never a traceback: LABNET_DEBUG=1
    shows the traceback of an unexpected error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LabnetError as error:
            fail(error)
        except KeyboardInterrupt:
            click.echo("labnet: interrupted", err=True)
            sys.exit(130)
        except OSError as error:
            if os.environ.get("LABNET_DEBUG"):
                raise
            fail(os_error(error))
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as error:  # a bug: still one line, and how to see more
            if os.environ.get("LABNET_DEBUG"):
                raise
            fail(LabnetError(f"internal error: {type(error).__name__}: {error} (run again with "
                             "LABNET_DEBUG=1 for the traceback, and please report it)"))


OS_HINTS = {
    errno.EBUSY: "something still uses it (a process, or a mount another tool made); "
                 "`labnet status` and `grep netns /proc/self/mountinfo` show what",
    errno.EACCES: "permission denied: labnet needs root (sudo)",
    errno.EPERM: "operation not permitted: labnet needs root with CAP_NET_ADMIN and "
                 "CAP_SYS_ADMIN (sudo, and not inside an unprivileged container)",
    errno.ENOSPC: "no space left: free space on that filesystem (or raise the kernel limit), "
                  "then run the command again",
    errno.EMFILE: "too many open files: raise the limit (`ulimit -n 65536`) and run again",
    errno.ENFILE: "the system is out of file handles (fs.file-max): close something and run "
                  "again",
    errno.ENOMEM: "out of memory: make the lab smaller or free memory",
    errno.EROFS: "read-only file system: labnet needs /run and /etc/netns writable",
}


def os_error(error: OSError) -> LabnetError:
    """An OSError as one line: the object, what happened, what to do."""
    what = error.filename or "labnet"
    problem = error.strerror or str(error)
    hint = OS_HINTS.get(error.errno or 0, "")
    return LabnetError(f"{what}: {problem}" + (f" ({hint})" if hint else ""))


lab_option = click.option("--lab", "lab_name", help="The lab (default: the only one running).")


def running(lab_name: str | None) -> Lab:
    """The running lab a command acts on, or one clear error (the only way commands get it)."""
    return Lab.attach(pick_lab(lab_name))


def print_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def progress_printer(enabled: bool):
    def show(what: str, done: int, total: int) -> None:
        if enabled:
            click.echo(f"\r  {what}: {done}/{total}", nl=done == total, err=True)
    return show


@click.group(cls=LabnetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labnet")
def main() -> None:
    """labnet: a real, miniature Kubernetes network made of Linux network namespaces."""


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print the plan (no root, nothing built).")
@click.option("--host", help="In a lab that spans hosts: this machine's name in it.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
def up(file: str | None, dry_run: bool, host: str | None, output: str) -> None:
    """Build the lab in FILE (default: the built-in demo lab), or converge a running one."""
    lab = Lab.load(file)
    for warning in lab.spec.warnings:
        click.echo(f"labnet: warning: {warning}", err=True)
    if dry_run:
        plan = lab.plan()
        click.echo(plan.to_json() if output == "json" else describe_plan(plan), nl=False)
        return
    require_root()
    interrupt.install()  # Ctrl-C and SIGTERM roll a first up back
    report = lab.up(progress=progress_printer(output == "text" and sys.stderr.isatty()),
                    host=host)
    if output == "json":
        print_json(report.__dict__)
        return
    if not report.changed:
        click.echo(f"lab {lab.name} is up; nothing to change")
    else:
        click.echo(f"lab {lab.name} is up: {len(report.created_netns)} namespaces created, "
                   f"{len(report.changes)} fixes, {len(report.removed_netns)} removed")
        for change in report.changes[:20]:
            click.echo(f"  fixed: {change}")
    click.echo(describe_plan(lab.running_plan()), nl=False)


def describe_plan(plan) -> str:
    lines = [f"lab {plan.lab}: underlay {plan.network.underlay_cidr} "
             f"(netns {plan.underlay_netns}), external host {plan.external_ip}",
             f"  pods {plan.network.pod_cidr}, services {plan.network.service_cidr}, "
             f"cluster DNS {plan.network.cluster_dns}"]
    for node in plan.nodes:
        lines.append(f"  node {node.name:<10} eth0 {node.underlay_ip:<15} cni0 {node.pod_cidr:<18}"
                     f" flannel.1 {node.vtep_ip} ({node.vtep_mac})  netns {node.netns}")
        for pod in plan.pods_on(node.name):
            ports = ",".join(f"{p.port}/{p.protocol}" for p in pod.ports) or "-"
            lines.append(f"    pod {pod.namespace}/{pod.name:<32} {pod.ip:<15} ports {ports}")
    lines.append(f"try: sudo labnet exec {plan.pods[0].name} -- ping -c1 "
                 f"{plan.pods[-1].ip}" if plan.pods else "")
    return "\n".join(lines) + "\n"


@main.command()
@click.argument("name", required=False)
@click.option("--all", "all_labs", is_flag=True, help="Take down every lab on this machine.")
def down(name: str | None, all_labs: bool) -> None:
    """Remove a lab: its namespaces, links, processes, files. Safe after a crashed up."""
    require_root()
    if all_labs:
        report = labmod.clean(everything=True)
        say_cleaned(report)
        sys.exit(0 if report.ok else 3)
    lab_name = pick_lab(name)
    removed = labmod.down(lab_name)
    click.echo(f"lab {lab_name} is down ({len(removed)} namespaces removed)")


def say_cleaned(report) -> None:
    for lab_name, removed in sorted(report.removed.items()):
        click.echo(f"lab {lab_name}: removed ({len(removed)} namespaces)")
    for lab_name, why in sorted(report.left_alone.items()):
        click.echo(f"lab {lab_name}: left alone: {why}")
    for line in report.warnings:
        click.echo(f"labnet: warning: {line}", err=True)
    for line in report.failed:
        click.echo(f"labnet: {line}", err=True)
    if not (report.removed or report.left_alone or report.failed or report.warnings):
        click.echo("nothing to clean")


def read_manifests(paths: tuple[str, ...]) -> list:
    """Objects from -f arguments: files (multi-document), directories of *.yaml, or `-`."""
    from pathlib import Path

    from labnet.input.labfile import manifest_paths
    from labnet.input.yamlsrc import load_documents, load_file

    objects: list = []
    for item in paths:
        if item == "-":
            objects += load_documents(sys.stdin.read(), "<stdin>")
            continue
        path = Path(item)
        if not path.exists():
            raise LabnetError(f"{item}: no such file or directory")
        for one in manifest_paths(path, item):
            objects += load_file(one, "manifest file")
    return objects


def report_change(report, said: list[str]) -> None:
    for line in said:
        click.echo(line)
    if report.rules:
        click.echo(f"rules rewritten on {', '.join(sorted(report.rules))}", err=True)


@main.command()
@lab_option
@click.option("-f", "--filename", "files", multiple=True, required=True,
              help="A manifest file, a directory of them, or - for stdin. Repeatable.")
def apply(lab_name: str | None, files: tuple[str, ...]) -> None:
    """Create or update objects in a running lab, like kubectl apply."""
    require_root()
    objects = read_manifests(files)
    report, said = running(lab_name).apply(objects)
    report_change(report, said)


KINDS = {"pod": "Pod", "pods": "Pod", "po": "Pod", "deployment": "Deployment",
         "deployments": "Deployment", "deploy": "Deployment", "service": "Service",
         "services": "Service", "svc": "Service", "namespace": "Namespace",
         "namespaces": "Namespace", "ns": "Namespace", "endpointslice": "EndpointSlice",
         "endpointslices": "EndpointSlice"}


def kind_and_name(args: tuple[str, ...]) -> tuple[str, str]:
    """`pod x`, `pod/x` -> ("Pod", "x")."""
    if len(args) == 1 and "/" in args[0]:
        args = tuple(args[0].split("/", 1))
    if len(args) != 2 or args[0].lower() not in KINDS:
        raise LabnetError(f"expected KIND NAME or KIND/NAME, got {' '.join(args) or 'nothing'}"
                          f" (kinds: pod, deployment, service, namespace, endpointslice)")
    return KINDS[args[0].lower()], args[1]


@main.command()
@lab_option
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-f", "--filename", "files", multiple=True,
              help="Delete the objects in these manifests.")
@click.argument("what", nargs=-1)
def delete(lab_name: str | None, namespace: str, files: tuple[str, ...],
           what: tuple[str, ...]) -> None:
    """Delete objects: `-f FILE`, or KIND NAME (a Deployment's pod is replaced)."""
    from labnet.desired import object_key

    require_root()
    lab = running(lab_name)
    if files:
        keys = [object_key(o) for o in read_manifests(files)]
        report, said = lab.delete(keys, files[0])
    else:
        kind, name = kind_and_name(what)
        if kind == "Pod":
            report, said = lab.delete_pod(namespace, name)
        else:
            ns = "" if kind == "Namespace" else namespace
            report, said = lab.delete([(kind, ns, name)], f"{kind.lower()}/{name}")
    report_change(report, said)


@main.command()
@lab_option
@click.option("-n", "--namespace", default="default", show_default=True)
@click.argument("what", nargs=-1)
def restart(lab_name: str | None, namespace: str, what: tuple[str, ...]) -> None:
    """Restart a pod: it comes back with a new IP, as a recreated pod does."""
    require_root()
    kind, name = kind_and_name(what)
    if kind != "Pod":
        raise LabnetError("restart takes a pod: labnet restart pod NAME")
    report, said = running(lab_name).delete_pod(namespace, name, restart=True)
    report_change(report, said)


@main.command()
@lab_option
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--replicas", type=click.IntRange(0, 10000), required=True)
@click.argument("what", nargs=-1)
def scale(lab_name: str | None, namespace: str, replicas: int, what: tuple[str, ...]) -> None:
    """Set a Deployment's replicas: labnet scale deployment/NAME --replicas N."""
    require_root()
    kind, name = kind_and_name(what)
    if kind != "Deployment":
        raise LabnetError("scale takes a deployment: labnet scale deployment/NAME --replicas N")
    report, said = running(lab_name).scale(namespace, name, replicas)
    report_change(report, said)


@main.command()
@lab_option
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", "all_namespaces", is_flag=True,
              help="Every namespace (adds a NAMESPACE column).")
@click.option("-l", "--selector", help="Label selector: a=b, a!=b, a in (x,y), a notin (x), "
              "a, !a; comma-separated terms must all hold.")
@click.option("--field-selector", "field_selector",
              help="metadata.name=X, metadata.namespace!=Y, ... (=, ==, !=).")
@click.option("-o", "--output", help="wide, json, yaml, name, jsonpath=TEMPLATE, "
              "jsonpath-as-json=TEMPLATE or custom-columns=NAME:.path,...")
@click.option("--show-labels", is_flag=True, help="A LABELS column (tables).")
@click.option("--no-headers", is_flag=True, help="No header row (tables, custom-columns).")
@click.option("--ignore-not-found", is_flag=True, help="A missing NAME is not an error.")
@click.argument("args", nargs=-1, required=True, metavar="RESOURCE[,RESOURCE] [NAME...]")
def get(lab_name: str | None, namespace: str, all_namespaces: bool, selector: str | None,
        field_selector: str | None, output: str | None, show_labels: bool, no_headers: bool,
        ignore_not_found: bool, args: tuple[str, ...]) -> None:
    """Show objects as `kubectl get` does: pods (po), services (svc), endpoints (ep),
    endpointslices, namespaces (ns), nodes (no); one by NAME, or TYPE/NAME."""
    from labnet.kubectl import GetRequest, KubectlError
    from labnet.kubectl.command import check_request

    request = GetRequest(args, namespace, all_namespaces, selector, field_selector,
                         output[1:] if output and output.startswith("=") else output,
                         show_labels, no_headers, ignore_not_found)
    try:
        check_request(request)  # kubectl's usage errors, before the lab is read
    except KubectlError as error:
        click.echo(str(error), err=True)
        sys.exit(error.exit_code)
    require_root()
    result = running(lab_name).kubernetes().get(request)
    click.echo(result.stdout, nl=False)
    click.echo(result.stderr, nl=False, err=True)
    sys.exit(result.exit_code)


@main.command()
@click.option("--all", "everything", is_flag=True,
              help="Also take down labs that are running (as `down --all`).")
def clean(everything: bool) -> None:
    """Remove what crashed or half-removed labs left (no live pod agent, or no readable plan).
    Running labs are left alone and named; --all takes them down too."""
    report = labmod.clean(everything)
    say_cleaned(report)
    sys.exit(0 if report.ok else 3)


@main.command("list")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
def list_cmd(output: str) -> None:
    """Labs on this machine."""
    labs = labmod.running_labs()
    if output == "json":
        print_json(labs)
    else:
        for name in labs:
            click.echo(name)


@main.command()
@lab_option
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
def status(lab_name: str | None, output: str) -> None:
    """Nodes and pods as the kernel has them, servers alive, anything missing or foreign."""
    require_root()
    report = labmod.status(pick_lab(lab_name))
    if output == "json":
        click.echo(report.to_json())
    else:
        click.echo(format_status(report), nl=False)
    sys.exit(0 if report.healthy else 1)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def good(text: str, ok: bool) -> str:
    """Green or red on a terminal; click.echo drops the colour when output is not a tty."""
    return click.style(text, fg="green" if ok else "red")


def aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    """Columns as wide as their widest cell (colour codes not counted) and three spaces apart,
    as kubectl aligns them: a long cell never runs into the next."""
    def width(cell: str) -> int:
        return len(ANSI.sub("", cell))

    widths = [max(width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["   ".join(cell + " " * (widths[i] - width(cell)) if i < len(row) - 1 else cell
                       for i, cell in enumerate(row)) for row in [header, *rows]]


def format_status(report: StatusReport) -> str:
    agent = report.agent
    health = good("healthy" if report.healthy else "DEGRADED", report.healthy)
    if agent.alive:
        shown = f"pid {agent.pid}" + (f", restarted {agent.restarts}x" if agent.restarts else "")
    else:
        shown = {"restarting": "RESTARTING (its supervisor is starting it again)"}.get(
            agent.state, "NOT RUNNING (`labnet up` starts it)")
    lines = [f"lab {report.lab}: {health}   pod agent: {shown}   "
             f"kube-proxy: {report.network.proxy_mode} mode"]
    rows = []
    for n in report.nodes:
        state = good("ok" if n.ready else "missing: " + ", ".join(n.missing), n.ready)
        if n.foreign:
            state += "  foreign: " + ", ".join(n.foreign)
        if n.proxy_restarts:
            state += f"  (kube-proxy restarted {n.proxy_restarts}x)"
        rows.append([n.name, n.underlay_ip, n.pod_cidr, str(n.pods), state])
    lines += aligned(["NODE", "UNDERLAY IP", "POD CIDR", "PODS", "STATUS"], rows)
    lines.append("")
    rows = []
    for p in report.pods:
        serving = ",".join([*p.listening, *(c.container for c in p.processes if c.running)])
        state = good("ok" if p.ready else "missing: " + ", ".join(p.missing), p.ready)
        rows.append([p.namespace, p.name, p.ip, p.node, ",".join(p.ports) or "-",
                     serving or "-", state])
    lines += aligned(["NAMESPACE", "POD", "IP", "NODE", "PORTS", "SERVING", "STATUS"], rows)
    if report.services:
        lines.append("")
        rows = []
        for svc in report.services:
            eps = ",".join(svc.endpoints[:3]) + (
                f" + {len(svc.endpoints) - 3} more" if len(svc.endpoints) > 3 else "")
            rows.append([svc.namespace, svc.name, svc.type, svc.cluster_ip, svc.external_ip,
                         ",".join(svc.ports) or "<none>", eps or "<none>"])
        lines += aligned(["NAMESPACE", "SERVICE", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)",
                          "ENDPOINTS"], rows)
    for stray in report.stray_netns:
        lines.append(f"foreign netns with the lab's prefix: {stray}")
    return "\n".join(lines) + "\n"


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--node", "node_name", help="The node (default: the first).")
@click.option("--sync-only", is_flag=True,
              help="Only what kube-proxy writes on a sync: no jumps from the built-in chains.")
@click.option("--dns", "dns_zone", is_flag=True, help="Print the cluster DNS zone instead.")
@click.option("--proxy-mode", type=click.Choice(PROXY_MODES),
              help="kube-proxy's mode (default: the lab file's proxyMode).")
def render(file: str | None, node_name: str | None, sync_only: bool, dns_zone: bool,
           proxy_mode: str | None) -> None:
    """Print a node's kube-proxy rules for FILE (iptables-restore text, or in nftables mode
    what `nft -f` loads), or with --dns the lab's DNS zone. No root needed."""
    from labnet.kubeproxy.modes import backend_for

    lab = Lab.load(file)
    if dns_zone:
        click.echo(lab.zone_text(), nl=False)
        return
    plan = lab.plan()
    names = [n.name for n in plan.nodes]
    node = node_name or names[0]
    if node not in names:
        raise LabnetError(f"no node {node!r} in lab {plan.lab}: nodes are {', '.join(names)}")
    backend = backend_for(proxy_mode or plan.network.proxy_mode)
    click.echo(f"# kube-proxy rules of node {node} in lab {plan.lab} ({backend.mode} mode, "
               "rendered by labnet)")
    click.echo(backend.node_text(plan, node, sync_only), nl=False)


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--lab", "lab_name", help="A running lab (default: the only one, or FILE's plan).")
@click.option("-o", "--output", type=click.Choice(["dot", "mermaid", "json", "svg", "png"]),
              default="dot")
@click.option("-w", "--write", "target", type=click.Path(dir_okay=False),
              help="Write to this file instead of standard output.")
def graph(file: str | None, lab_name: str | None, output: str, target: str | None) -> None:
    """Draw the lab: nodes, bridges, veths, pods, the VXLAN mesh, services and endpoints."""
    import shutil
    import subprocess

    from labnet import graph as drawing

    plan = Lab.load(file).plan() if file else running(lab_name).running_plan()
    data = drawing.graph(plan)
    if output in ("svg", "png"):
        dot = shutil.which("dot")
        if dot is None:
            raise LabnetError(f"-o {output} needs Graphviz's `dot`, which is not installed: "
                              "`sudo apt-get install graphviz`, or use -o dot / -o mermaid")
        result = subprocess.run([dot, f"-T{output}"], input=drawing.to_dot(data).encode(),
                                capture_output=True, timeout=60)
        if result.returncode != 0:
            raise LabnetError(f"dot failed: {result.stderr.decode().strip()}")
        body: bytes = result.stdout
    else:
        render = {"dot": drawing.to_dot, "mermaid": drawing.to_mermaid,
                  "json": drawing.to_json}[output]
        body = render(data).encode()
    if target:
        with open(target, "wb") as f:
            f.write(body)
    elif output == "png":
        raise LabnetError("-o png writes binary: give a file with -w")
    else:
        sys.stdout.buffer.write(body)


@main.command()
@lab_option
@click.option("-t", "--table", type=click.Choice(["filter", "nat", "all"]), default="all")
@click.argument("node")
def rules(lab_name: str | None, table: str, node: str) -> None:
    """Print the iptables rules installed in NODE, read back from its kernel."""
    require_root()
    click.echo(running(lab_name).installed_rules(node, table), nl=False)


@main.command()
@lab_option
@click.option("-n", "--namespace", default="default", show_default=True,
              help="The namespace whose search list applies.")
@click.option("--from", "source", help="Ask from this pod (default: a pod of the namespace).")
@click.option("--tcp", is_flag=True, help="Ask over TCP.")
@click.argument("name")
@click.argument("qtype", default="A")
def dns(lab_name: str | None, namespace: str, source: str | None, tcp: bool, name: str,
        qtype: str) -> None:
    """Resolve NAME the way a pod does: search list, ndots:5, the cluster DNS ClusterIP."""
    require_root()
    lookup = running(lab_name).resolve(name, qtype, namespace, source, tcp)
    click.echo(lookup.text(), nl=False)
    sys.exit(0 if lookup.answered else 1)


@main.command()
@lab_option
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--icmp", is_flag=True, help="Trace a ping instead, and say where it dies.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@click.argument("pod")
@click.argument("target")
def trace(lab_name: str | None, namespace: str, icmp: bool, output: str, pod: str,
          target: str) -> None:
    """Make one real request from POD to TARGET (URL, NAME or NAME:PORT) and explain each hop
    with what the kernel reported. Example: labnet trace client http://my-nginx"""
    require_root()
    result = running(lab_name).trace(pod, target, namespace, icmp)
    click.echo(json.dumps(result.as_dict(), indent=2) if output == "json" else result.text(),
               nl=output == "json")
    sys.exit(0 if result.ok else 1)


@main.command(context_settings={"ignore_unknown_options": True})
@lab_option
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-w", "--write", "pcap", type=click.Path(dir_okay=False),
              help="Write packets to this pcap file (Wireshark opens it).")
@click.option("-c", "--count", type=click.IntRange(1), help="Stop after this many packets.")
@click.argument("target")
@click.argument("expression", nargs=-1, type=click.UNPROCESSED)
def capture(lab_name: str | None, namespace: str, pcap: str | None, count: int | None,
            target: str, expression: tuple[str, ...]) -> None:
    """tcpdump inside a pod or node: TARGET[:IFACE] (eth0 by default; cni0, flannel.1 …),
    then an optional pcap filter. Example: labnet capture node/node1:eth0 udp port 8472"""
    import shutil

    require_root()
    lab = running(lab_name)
    where, _, iface = target.rpartition(":") if ":" in target else (target, "", "eth0")
    lab.netns_of(where, namespace)  # an unknown target is an error before tcpdump is looked for
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise LabnetError("tcpdump is not installed: `sudo apt-get install tcpdump`")
    argv = [tcpdump, "-n", "-i", iface or "eth0"]
    if pcap:
        argv += ["-U", "-w", os.path.abspath(pcap)]
    if count:
        argv += ["-c", str(count)]
    argv += [x for x in expression if x != "--"]
    lab.become(where, namespace)
    os.execv(tcpdump, argv)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@lab_option
@click.option("-n", "--namespace", default="default", show_default=True)
@click.argument("target")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec(lab_name: str | None, namespace: str, target: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in a pod (NAME or pod/NAME), a node (node/NAME) or `external`.

    Example: labnet exec client -- curl -s http://172.16.2.2
    """
    require_root()
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise LabnetError("exec needs a command after --, e.g. `labnet exec client -- ip addr`")
    running(lab_name).become(target, namespace)
    try:
        os.execvp(command[0], list(command))
    except FileNotFoundError:
        click.echo(f"labnet: {command[0]}: command not found", err=True)
        sys.exit(127)
