"""A pod command's output, written to its log file by the agent with a hard cap.

The command writes into a pipe, not into the file: the agent reads it on its event loop and
appends to `<log>`; past LOG_MAX bytes the file becomes `<log>.1` (the one before that is
dropped) and a new one starts — what kubelet's container log rotation keeps. However fast a
program writes, a container's logs stay under 2 × LOG_MAX of /run, which is RAM."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from labnet.state import open_log

LOG_MAX = 4 << 20
READ_SIZE = 65536


class CappedLog:
    def __init__(self, path: Path, limit: int = LOG_MAX) -> None:
        self.path = path
        self.limit = limit
        self.file = open_log(path)
        self.size = self.file.seek(0, os.SEEK_END)
        self.fd: int | None = None

    def write(self, data: bytes) -> None:
        while data:
            room = self.limit - self.size
            if room <= 0:
                self.rotate()
                continue
            chunk, data = data[:room], data[room:]
            self.file.write(chunk)
            self.size += len(chunk)
        self.file.flush()

    def rotate(self) -> None:
        self.file.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self.file = open_log(self.path)
        self.size = 0

    def follow(self, fd: int) -> None:
        """Copy what arrives on the pipe `fd` (the command's stdout and stderr) into the log,
        until the pipe closes."""
        os.set_blocking(fd, False)
        self.fd = fd
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            with contextlib.suppress(OSError):  # a full /run must not stop the agent
                self.write(data)
        else:
            self.unfollow()

    def unfollow(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.fd)
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def close(self) -> None:
        self.unfollow()
        with contextlib.suppress(OSError):
            self.file.close()
