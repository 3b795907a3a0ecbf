"""Ctrl-C and SIGTERM during `up`, acted on where it is safe.

The signal only sets a flag; the builder checks it between kernel objects and raises
KeyboardInterrupt there, so the rollback always runs. (Raising from the signal handler itself
can land inside a library that swallows it: pyroute2's message decoding has bare excepts.)
"""

from __future__ import annotations

import signal

_requested = False


def _handler(signum: int, frame: object) -> None:
    global _requested
    _requested = True


def install() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)


def check() -> None:
    """Raise KeyboardInterrupt if a stop was asked for."""
    if _requested:
        raise KeyboardInterrupt
