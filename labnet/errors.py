"""User-facing errors: each renders as one line that says where, what, and what to do."""

from __future__ import annotations


class LabnetError(Exception):
    """An error meant for the user; `str()` is the whole message."""

    exit_code = 1


class SpecError(LabnetError):
    """Invalid input (lab file, manifest, CLI argument), found before anything is built."""

    exit_code = 2

    def __init__(self, where: str, problem: str, hint: str = "") -> None:
        self.where = where
        self.problem = problem
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        text = f"{self.where}: {self.problem}" if self.where else self.problem
        return f"{text} ({self.hint})" if self.hint else text


class SpecErrors(LabnetError):
    """Every problem found in one validation pass, one line each."""

    exit_code = 2

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.line() for e in errors))


class NotRootError(LabnetError):
    exit_code = 77

    def __init__(self) -> None:
        super().__init__(
            "labnet needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces: "
            "run it with sudo, e.g. `sudo labnet up` or `sudo .venv/bin/python -m labnet up`"
        )


class KernelError(LabnetError):
    """The kernel refused a change; says which object, in which namespace, and why."""

    exit_code = 3


class LabNotFound(LabnetError):
    exit_code = 4
