"""The one exception tree of harness.

::

    HarnessError
     ├── InvalidArgument           misuse: a bad argument, flag or configuration value
     ├── ModelError                the API models under specs/ (or botocore's) cannot answer
     │    ├── UnknownService
     │    └── UnknownOperation
     ├── RequestValidationError    request parameters break the model's constraints
     ├── JobError                  a job file is unreadable, inconsistent or renders invalid items
     │    └── JournalError         a journal cannot be locked (another run holds it) or written
     ├── StateFileError            a saved emulator state cannot be read, trusted or written
     ├── TargetError               the endpoint does not answer, or no credentials or profile
     └── PaginationError           a listing broke an invariant (repeated token, duplicate)

Every error carries enough context (service, operation, path) to name the item and the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from harness.model import ValidationIssue

__all__ = [
    "HarnessError",
    "InvalidArgument",
    "JobError",
    "JournalError",
    "ModelError",
    "PaginationError",
    "RequestValidationError",
    "StateFileError",
    "TargetError",
    "UnknownOperation",
    "UnknownService",
]


class HarnessError(Exception):
    """Base class of every error harness raises on purpose."""


class InvalidArgument(HarnessError, ValueError):
    """Raised when a caller passes an argument, flag or configuration value that cannot work."""


class ModelError(HarnessError):
    """Raised when a service model is missing, unreadable or does not contain what was asked."""


class UnknownService(ModelError, LookupError):
    """Raised when no pinned (or installed) model exists for a service name."""

    def __init__(self, service: str, known: Sequence[str] = ()) -> None:
        self.service = service
        self.known = tuple(known)
        hint = f"; known services: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"unknown service {service!r}{hint}")


class UnknownOperation(ModelError, LookupError):
    """Raised when a service model has no operation of that name (API or Python style)."""

    def __init__(self, service: str, operation: str, suggestions: Sequence[str] = ()) -> None:
        self.service = service
        self.operation = operation
        self.suggestions = tuple(suggestions)
        hint = f"; did you mean {' or '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"service {service!r} has no operation {operation!r}{hint}")


class RequestValidationError(HarnessError, ValueError):
    """Raised when request parameters break one or more constraints of the operation's input shape.

    :param service: the service name
    :param operation: the operation name
    :param issues: every broken constraint, each with its path
    """

    def __init__(self, service: str, operation: str, issues: Sequence[ValidationIssue]) -> None:
        self.service = service
        self.operation = operation
        self.issues = tuple(issues)
        listed = "; ".join(str(issue) for issue in self.issues[:5])
        more = f" (and {len(self.issues) - 5} more)" if len(self.issues) > 5 else ""
        super().__init__(f"{service}.{operation}: invalid request: {listed}{more}")


class JobError(HarnessError):
    """Raised when a job file cannot be run: bad YAML, unknown operation, template or item errors.

    :param problems: one line per problem, each naming the step (and item) and the reason
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = tuple(problems)
        shown = "".join(f"\n  - {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{message}{shown}{more}")


class JournalError(JobError):
    """Raised when a journal cannot be used: another run holds its lock, or a write failed
    (disk full, quota, I/O error). What was recorded before stays intact."""


class PaginationError(HarnessError):
    """Raised when a listing breaks a pagination invariant (a repeated token, a duplicate item)."""

    def __init__(self, service: str, operation: str, reason: str) -> None:
        self.service = service
        self.operation = operation
        self.reason = reason
        super().__init__(f"{service}.{operation}: {reason}")


class StateFileError(HarnessError):
    """Raised when a saved emulator state cannot be read, trusted or written.

    Unreadable, truncated, corrupt, or written by an unknown format version: the emulator refuses
    it rather than start empty over it.
    """


class TargetError(HarnessError):
    """Raised before the first call when the target cannot work: an endpoint that does not
    answer, no credentials, an unknown profile. The message says what is wrong and how to fix it.
    """
