"""Paths built from names: only ever one plain component directly inside a known directory.

Names reach labnet from places it does not control (a netns's ifalias, a CLI argument, a
directory listing); before anything is created or removed under such a name, the resulting path
must resolve to an entry directly inside its base directory (no `..`, no `/`, no symlink out).
"""

from __future__ import annotations

import os
from pathlib import Path

from labnet.errors import LabnetError


class UnsafePath(LabnetError):
    exit_code = 2


def child(base: str | Path, name: str) -> Path:
    """`base/name`, when that is an entry directly inside `base`; UnsafePath otherwise."""
    if not isinstance(name, str) or not name or "/" in name or "\0" in name or name in (
            ".", ".."):
        raise UnsafePath(f"{name!r} is not a plain file name: refusing to use it under {base}")
    path = Path(base) / name
    if os.path.dirname(os.path.realpath(path)) != os.path.realpath(base):
        raise UnsafePath(f"{path} leads out of {base}: refusing to touch it")
    return path
