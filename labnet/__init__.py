"""labnet: a real, miniature Kubernetes network built from Linux network namespaces.

The pipeline has one direction (see ARCHITECTURE.md):

    lab file + manifests --input--> LabSpec --plan--> Plan --kernel/agent--> namespaces, links,
                                                                             processes, rules

`labnet.Lab` is the Python API the CLI and the tests use. It is imported lazily so that the
pure stages (input, plan, kubeproxy's rules) load without the kernel-facing libraries.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["Lab", "LabnetError", "SpecError", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Lab":
        from labnet.lab import Lab

        return Lab
    if name in ("LabnetError", "SpecError"):
        from labnet import errors

        return getattr(errors, name)
    raise AttributeError(name)
