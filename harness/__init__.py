"""harness: high-throughput batch and contract-testing harness for AWS IoT control-plane APIs.

The package is layered (see the README's Architecture section); this module re-exports the names
most callers need.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from harness.errors import (
    HarnessError,
    InvalidArgument,
    ModelError,
    RequestValidationError,
    UnknownOperation,
    UnknownService,
)

try:
    __version__ = version("harness")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "HarnessError",
    "InvalidArgument",
    "ModelError",
    "RequestValidationError",
    "UnknownOperation",
    "UnknownService",
    "__version__",
]
