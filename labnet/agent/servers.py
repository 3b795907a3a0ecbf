"""What a pod serves: HTTP on TCP ports (who answered, and whom it saw), echo on UDP ports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass

MAX_REQUEST = 16384       # request line + headers, as Go's net/http would start to refuse
REQUEST_DEADLINE = 5.0    # for the whole request head: a half-sent request is dropped then
MAX_CONNECTIONS = 256     # per pod port; at the cap the oldest unanswered one makes room


class ConnectionCap:
    """The connections of one pod port: bounded, oldest first out. A flood of half-open
    connections then costs its sender its oldest ones, never a new client its answer."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self.limit = limit
        self.open: dict[HttpProtocol, None] = {}  # insertion-ordered: oldest first

    def admit(self, conn: HttpProtocol) -> None:
        while len(self.open) >= self.limit:
            oldest = next(iter(self.open))
            oldest.drop()
        self.open[conn] = None

    def leave(self, conn: HttpProtocol) -> None:
        self.open.pop(conn, None)


@dataclass(frozen=True)
class PodIdentity:
    namespace: str
    name: str
    ip: str
    node: str


def whoami(pod: PodIdentity, client: tuple, server: tuple) -> dict[str, str]:
    return {
        "pod": pod.name, "namespace": pod.namespace, "ip": pod.ip, "node": pod.node,
        "client": f"{client[0]}:{client[1]}", "server": f"{server[0]}:{server[1]}",
    }


def http_response(status: str, body: bytes, content_type: str, head: bool = False) -> bytes:
    headers = (f"HTTP/1.1 {status}\r\nServer: labnet\r\nContent-Type: {content_type}\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return headers.encode() + (b"" if head else body)


class HttpProtocol(asyncio.Protocol):
    """A one-request-per-connection HTTP/1.x responder, enough for curl and load tools."""

    def __init__(self, pod: PodIdentity, body: Callable[[], bytes] | None = None,
                 cap: ConnectionCap | None = None) -> None:
        self.pod = pod
        self.body = body  # a fixed page (metrics) instead of who-am-I
        self.cap = cap
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.deadline = asyncio.get_running_loop().call_later(REQUEST_DEADLINE, self.drop)
        if self.cap is not None:
            self.cap.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        if self.cap is not None:
            self.cap.leave(self)

    def drop(self) -> None:
        """Too slow, or pushed out by newer connections: close without an answer."""
        if self.cap is not None:
            self.cap.leave(self)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer and b"\n\n" not in self.buffer:
            if len(self.buffer) > MAX_REQUEST:
                self.reply(http_response("431 Request Header Fields Too Large", b"", "text/plain"))
            return
        self.reply(self.respond(self.buffer))

    def respond(self, request: bytes) -> bytes:
        lines = request.split(b"\n")
        parts = lines[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return http_response("400 Bad Request", b"labnet: not an HTTP request\n", "text/plain")
        method = parts[0]
        headers = {}
        for line in lines[1:]:
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if self.body is not None:
            return http_response("200 OK", self.body(), "text/plain; version=0.0.4",
                                 head=method == "HEAD")
        info = whoami(self.pod, self.transport.get_extra_info("peername"),
                      self.transport.get_extra_info("sockname"))
        if "application/json" in headers.get("accept", "") or parts[1].endswith("?json"):
            body, kind = (json.dumps(info) + "\n").encode(), "application/json"
        else:
            body = "".join(f"{k}: {v}\n" for k, v in info.items()).encode()
            kind = "text/plain; charset=utf-8"
        return http_response("200 OK", body, kind, head=method == "HEAD")

    def reply(self, data: bytes) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        if self.cap is not None:
            self.cap.leave(self)  # answered: no longer competes for a place
        if self.transport and not self.transport.is_closing():
            self.transport.write(data)
            self.transport.close()
        self.buffer = b""


class EchoProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.transport.sendto(data, addr)
