"""The agent process: reads the lab's plan, opens each pod's sockets, runs pod commands,
answers `reload`, `status` and `stop` on a unix socket in the state directory."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing.util
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labnet.agent import control
from labnet.agent.podlog import CappedLog
from labnet.agent.proxy import ProxyManager
from labnet.agent.readiness import Readiness
from labnet.agent.servers import ConnectionCap, EchoProtocol, HttpProtocol, PodIdentity
from labnet.dns.server import DnsServer, DnsTcp, DnsUdpReader
from labnet.errors import LabnetError
from labnet.kernel import nsexec, nsfs
from labnet.kernel.teardown import etc_netns_dir, start_time
from labnet.model import Security
from labnet.names import log_file_name
from labnet.plan import Plan, PlanPod
from labnet.state import StateDir, make_private_dir

RESTART_BACKOFF_MAX = 30.0
WORKER_CHECK = 0.25   # how often dead kube-proxy workers are looked for
COMMANDS_FILE = "commands.json"


@dataclass
class Command:
    container: str
    argv: tuple[str, ...]
    netns: str
    log: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    last_exit: int | None = None
    # the container's securityContext: nobody without capabilities unless it asks for more
    security: Security = field(default_factory=Security)
    output: CappedLog | None = None


@dataclass
class PodRuntime:
    pod: PlanPod
    servers: list = field(default_factory=list)  # asyncio Server or DatagramTransport
    listening: list[str] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def open_socket(netns: str, kind: int, port: int) -> socket.socket:
    with nsfs.entered(netns):
        sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            sock.listen(512)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def pod_signature(pod: PlanPod) -> tuple:
    return (pod.netns, pod.ip, pod.node, pod.containers)


class Agent:
    def __init__(self, state: StateDir, restarts: int = 0) -> None:
        self.state = state
        self.restarts = restarts  # how often the supervisor had to start it again
        self.commands_changed = False
        self.pods: dict[str, PodRuntime] = {}
        self.stopping = asyncio.Event()
        self.proxy = ProxyManager()
        self.dns = DnsServer()
        self.readiness = Readiness()
        self.plan: Plan | None = None
        self.local: set[str] = set()  # the nodes this machine carries
        self.syncing = asyncio.Lock()  # reloads and readiness changes sync one at a time
    async def reload(self) -> dict:
        """Serve the plan in the state directory: pods' servers and commands, and every
        node's kube-proxy rules."""
        plan = Plan.from_json(self.state.plan_path.read_text())
        # a lab that spans hosts: this machine serves its own nodes' pods and rules only
        self.local = {n.name for n in plan.local_nodes(self.state.host())}
        wanted = {p.key: p for p in plan.pods if p.node in self.local}
        for key in list(self.pods):
            if key not in wanted or pod_signature(self.pods[key].pod) != pod_signature(wanted[key]):
                self.stop_pod(self.pods.pop(key))
        for key, pod in wanted.items():
            if key not in self.pods:
                self.pods[key] = await self.start_pod(pod)
        if self.commands_changed:
            self.record_commands()
        self.plan = plan
        loop = asyncio.get_running_loop()
        # pods are probed before they become endpoints: what answers now is ready now
        await loop.run_in_executor(None, lambda: self.readiness.run(plan, urgent=True,
                                                                   nodes=self.local))
        try:
            synced = await self.sync()
        except LabnetError as exc:
            return {"ok": False, "error": str(exc), "pods": len(self.pods)}
        return {"ok": True, "pods": len(self.pods), **synced}

    async def sync(self) -> dict:
        """Serve the plan with readiness applied: DNS answers and every node's rules. In a
        thread: the pods keep being served meanwhile, and pyroute2's synchronous calls
        (conntrack) need a thread without a running event loop."""
        async with self.syncing:
            plan = self.readiness.effective(self.plan)
            dns_pod = next((p for p in plan.pods if p.node in self.local and p.is_dns), None)
            self.dns.reload(plan, dns_pod.netns if dns_pod else "")
            return await asyncio.get_running_loop().run_in_executor(
                None, self.proxy.sync, plan, self.local)

    async def probe(self) -> None:
        """kubelet's probing loop: a pod that starts or stops answering changes the
        endpoints everywhere."""
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 0.5)
            if self.plan is None or self.stopping.is_set():
                continue
            plan = self.plan
            try:
                changed = await loop.run_in_executor(
                    None, lambda plan=plan: self.readiness.run(plan, nodes=self.local))
                if changed and plan is self.plan:
                    await self.sync()
            except Exception as exc:  # keep probing; say why in the log
                print(f"labnet agent: readiness: {exc}", file=sys.stderr, flush=True)

    def protocol_for(self, pod: PlanPod, server: str, port) -> Callable[[], asyncio.BaseProtocol]:
        """What answers on a port: the cluster DNS on the DNS pod's port 53 (and its metrics
        on 9153), else who-am-I HTTP on TCP and an echo on UDP."""
        if server == "dns" and port.port == 53 and port.protocol == "TCP":
            return lambda: DnsTcp(self.dns)  # (UDP 53: a DnsUdpReader, see start_pod)
        ident = PodIdentity(pod.namespace, pod.name, pod.ip, pod.node)
        if port.protocol == "UDP":
            return EchoProtocol
        cap = ConnectionCap()  # per pod port
        if server == "dns" and port.name == "metrics":
            return lambda: HttpProtocol(ident, self.dns.metrics, cap)
        return lambda: HttpProtocol(ident, cap=cap)

    async def start_pod(self, pod: PlanPod) -> PodRuntime:
        loop = asyncio.get_running_loop()
        runtime = PodRuntime(pod)
        for container in pod.containers:
            if container.argv:
                continue
            for port in container.ports:
                label = f"{port.port}/{port.protocol}"
                factory = self.protocol_for(pod, container.server, port)
                sock = None
                try:
                    if port.protocol == "TCP":
                        sock = open_socket(pod.netns, socket.SOCK_STREAM, port.port)
                        server = await loop.create_server(factory, sock=sock)
                        runtime.servers.append(server)
                    elif container.server == "dns" and port.port == 53:
                        sock = open_socket(pod.netns, socket.SOCK_DGRAM, port.port)
                        runtime.servers.append(DnsUdpReader(self.dns, sock))
                    else:
                        sock = open_socket(pod.netns, socket.SOCK_DGRAM, port.port)
                        transport, _ = await loop.create_datagram_endpoint(factory, sock=sock)
                        runtime.servers.append(transport)
                    sock = None  # the server owns it now
                    runtime.listening.append(label)
                except OSError as exc:  # EADDRINUSE, EMFILE…: the pod shows what is missing
                    runtime.errors.append(f"{label}: {exc}")
                except BaseException:
                    self.stop_pod(runtime)  # nothing of a pod that failed to start stays open
                    raise
                finally:
                    if sock is not None:
                        sock.close()
        for container in pod.containers:
            if container.argv:
                log = self.state.logs_dir / log_file_name(pod.namespace, pod.name,
                                                          container.name)
                cmd = Command(container.name, container.argv, pod.netns, log,
                              security=container.security or Security())
                self.spawn(cmd)
                runtime.commands.append(cmd)
        return runtime

    def spawn(self, cmd: Command) -> None:
        """Start a pod command through labnet.kernel.nsexec (which enters the pod's namespaces
        and drops privileges in a fresh process: no fork-and-run-Python from this threaded
        process)."""
        make_private_dir(cmd.log.parent)
        etc = str(etc_netns_dir(cmd.netns))
        # a command dies with this agent (the next one ends whatever of its group is left,
        # and starts it again): never two copies of a pod's program
        sec = cmd.security
        # it starts in "/", as a container whose image names no WORKDIR does: never in the
        # agent's directory, which its private /tmp may hide and which is not the pod's
        argv = nsexec.command(cmd.netns, list(cmd.argv), etc, sec.uid, sec.gid, sec.caps,
                              sec.privileged, private_tmp=True, die_with_parent=True, cwd="/")
        try:
            if cmd.output is None:
                cmd.output = CappedLog(cmd.log)
            cmd.output.unfollow()  # the previous run's pipe
            cmd.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                close_fds=True, start_new_session=True)
            cmd.output.follow(os.dup(cmd.process.stdout.fileno()))
            cmd.process.stdout.close()
        except OSError as exc:  # EMFILE, ENOMEM…: the supervisor retries it later
            if cmd.output is not None:
                with contextlib.suppress(OSError):
                    cmd.output.write(f"labnet: cannot start {cmd.argv[0]}: {exc}\n".encode())
            cmd.process = None
            cmd.last_exit = 127
        self.commands_changed = True

    def stop_pod(self, runtime: PodRuntime) -> None:
        for server in runtime.servers:
            server.close()
        if runtime.pod.is_dns:
            # Server.close() leaves accepted connections open: end them, and pending forwards
            for conn in list(self.dns.connections):
                conn.shut(abort=True)
            for task in list(self.dns.tasks):
                task.cancel()
        for cmd in runtime.commands:
            terminate(cmd.process)
            if cmd.output is not None:
                cmd.output.close()

    async def watch_workers(self) -> None:
        """A kube-proxy worker that died is started again (its node's rules stay in the kernel
        meanwhile) and does a full sync, as kube-proxy does when it starts."""
        while not self.stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), WORKER_CHECK)
            if self.plan is None or self.stopping.is_set():
                continue
            if any(not w.alive() for w in list(self.proxy.workers.values())):
                try:
                    await self.sync()
                except Exception as exc:  # keep watching; say why in the log
                    print(f"labnet agent: restarting kube-proxy: {exc}", file=sys.stderr,
                          flush=True)

    def record_commands(self) -> None:
        """Which processes are the pods' commands (pid and start time), so that an agent
        started after this one died can end them before starting its own: no duplicates."""
        live = {str(c.process.pid): start_time(c.process.pid)
                for rt in self.pods.values() for c in rt.commands
                if c.process is not None and c.process.poll() is None}
        with contextlib.suppress(OSError):
            self.state.write(COMMANDS_FILE, json.dumps({k: v for k, v in live.items() if v}))
        self.commands_changed = False

    def end_orphans(self) -> None:
        """End the commands a dead predecessor left running (recorded by record_commands)."""
        try:
            recorded = json.loads((self.state.root / COMMANDS_FILE).read_text())
        except (OSError, ValueError):
            return
        orphans = [int(pid) for pid, started in recorded.items()
                   if start_time(int(pid)) == started]
        for pid in orphans:  # each command leads its own process group (start_new_session)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        while any(start_time(p) for p in orphans) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in orphans:
            if start_time(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)

    async def supervise(self) -> None:
        """Restart pod commands that exited (restartPolicy Always), with capped backoff."""
        while not self.stopping.is_set():
            if self.commands_changed:
                self.record_commands()
            now = time.monotonic()
            for runtime in self.pods.values():
                for cmd in runtime.commands:
                    if cmd.process is not None and cmd.process.poll() is not None:
                        cmd.last_exit = cmd.process.returncode
                        cmd.process = None
                        self.commands_changed = True
                        cmd.next_start = now + min(RESTART_BACKOFF_MAX, 2.0 ** cmd.restarts)
                    if cmd.process is None and now >= cmd.next_start:
                        cmd.restarts += 1
                        self.spawn(cmd)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 0.5)

    def status(self) -> dict:
        pods = {}
        for key, rt in self.pods.items():
            pods[key] = {
                "listening": rt.listening, "errors": rt.errors,
                "ready": self.readiness.ready(key),
                "processes": [{"container": c.container, "argv": list(c.argv),
                               "pid": c.process.pid if c.process else None,
                               "running": c.process is not None and c.process.poll() is None,
                               "restarts": max(0, c.restarts), "last_exit": c.last_exit}
                              for c in rt.commands],
            }
        proxy = {netns: {"pid": w.pid, "alive": w.alive(),
                         "synced": netns in self.proxy.installed,
                         "restarts": self.proxy.restarts.get(netns, 0)}
                 for netns, w in self.proxy.workers.items()}
        return {"pid": os.getpid(), "pods": pods, "proxy": proxy, "restarts": self.restarts}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline() or b"{}")
            op = request.get("op")
            if op == "reload":
                answer = await self.reload()
            elif op == "status":
                answer = self.status()
            elif op == "stop":
                answer = {"ok": True}
                self.stopping.set()
            else:
                answer = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as exc:  # a bad request must not bring the agent down
            answer = {"ok": False, "error": str(exc)}
        writer.write(json.dumps(answer).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def run(self, ready_fd: int | None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self.stopping.set)
        with contextlib.suppress(FileNotFoundError):
            self.state.agent_socket.unlink()
        listener = await asyncio.start_unix_server(self.handle, sock=control_socket(self.state))
        self.end_orphans()
        control.remove_temp_dirs(self.state)  # a killed predecessor's
        self.proxy.backend.prepare()  # the workers' fork server loads while pods are set up
        control.record_temp_dir(self.state, multiprocessing.util.get_temp_dir())
        first = await self.reload()
        if ready_fd is not None:
            os.write(ready_fd, b"ready " + json.dumps(first).encode() + b"\n")
            os.close(ready_fd)
        supervisor = asyncio.create_task(self.supervise())
        prober = asyncio.create_task(self.probe())
        watcher = asyncio.create_task(self.watch_workers())
        await self.stopping.wait()
        await prober
        await watcher
        listener.close()
        self.proxy.stop()
        for runtime in self.pods.values():
            self.stop_pod(runtime)
        await supervisor
        self.record_commands()
        with contextlib.suppress(FileNotFoundError):
            self.state.agent_socket.unlink()


def control_socket(state: StateDir) -> socket.socket:
    """The agent's control socket, bound 0600 inside the lab's 0700 directory: the umask is
    set around bind, so the socket is never reachable by anyone but root, not even briefly."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(state.agent_socket))
    finally:
        os.umask(old)
    sock.listen(64)
    return sock


def terminate(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(2)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def raise_fd_limit() -> None:
    """Every pod's sockets live in this one process: the stock soft limit (1024) is far too
    low for a large lab, or for a pod under a connection flood."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else FD_LIMIT
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, FD_LIMIT)), hard))


FD_LIMIT = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description="labnet pod agent (started by `labnet up`)")
    parser.add_argument("--lab", required=True)
    parser.add_argument("--ready-fd", type=int)
    parser.add_argument("--restarts", type=int, default=0)
    args = parser.parse_args()
    state = StateDir(args.lab)
    raise_fd_limit()
    try:
        asyncio.run(Agent(state, args.restarts).run(args.ready_fd))
    except Exception as exc:
        print(f"labnet agent: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
