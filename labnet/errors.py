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


def one_line(text: str, limit: int = 2000) -> str:
    """`text` safe to print as (part of) one line: characters that are not printable (control
    characters, line and paragraph separators…) escaped, and at most `limit` characters."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Problems:
    """Collects every problem of one validation pass; `raise_if_any` reports them together.
    Each becomes exactly one line: characters that would break it (control characters, line
    separators) are escaped, whatever a value held."""

    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    def add(self, where: str, problem: str, hint: str = "") -> None:
        self.errors.append(SpecError(one_line(where, 500), one_line(problem),
                                     one_line(hint, 500)))

    def extend(self, error: SpecError | SpecErrors) -> None:
        for one in error.errors if isinstance(error, SpecErrors) else [error]:
            self.add(one.where, one.problem, one.hint)

    def raise_if_any(self) -> None:
        if self.errors:
            raise SpecErrors(self.errors) if len(self.errors) > 1 else self.errors[0]

    def __bool__(self) -> bool:
        return bool(self.errors)
