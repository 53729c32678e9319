"""Default request-rate quotas (TPS) per operation, from ``specs/quotas.yaml``.

The overlay holds only published numbers, each with its source; everything else falls back to a
per-service default or the global default, both marked as guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import yaml

from harness.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["Quota", "QuotaTable", "load_quotas"]


@dataclass(frozen=True, slots=True)
class Quota:
    """A rate quota for one operation.

    :param tps: sustained requests per second
    :param burst: bucket capacity; ``None`` when no source publishes one (callers use ``tps``)
    :param source: where the number comes from
    :param guess: ``True`` when no published number exists and this is a conservative default
    :param quota_code: the Service Quotas code, to check against a live account
    """

    tps: float
    burst: float | None
    source: str
    guess: bool
    quota_code: str | None = None


def _quota(raw: Mapping[str, Any], where: str) -> Quota:
    try:
        tps = float(raw["tps"])
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"quotas overlay: {where} needs a numeric 'tps'") from None
    if tps <= 0:
        raise ModelError(f"quotas overlay: {where} has tps={tps!r}; it must be positive")
    burst = raw.get("burst")
    return Quota(
        tps=tps,
        burst=float(burst) if burst is not None else None,
        source=str(raw.get("source", "")),
        guess=bool(raw.get("guess", False)),
        quota_code=raw.get("quota_code"),
    )


@dataclass(frozen=True, slots=True)
class QuotaTable:
    """All quotas of the overlay, looked up with :meth:`get`."""

    default: Quota
    service_defaults: Mapping[str, Quota]
    operations: Mapping[tuple[str, str], Quota]

    def get(self, service: str, operation: str) -> Quota:
        """The quota for ``operation`` of ``service``, falling back to the defaults."""
        found = self.operations.get((service, operation))
        if found is not None:
            return found
        return self.service_defaults.get(service, self.default)


def parse_quotas(raw: Mapping[str, Any]) -> QuotaTable:
    """Build a :class:`QuotaTable` from the parsed YAML overlay.

    :raises ModelError: when an entry lacks a positive ``tps``
    """
    if "default" not in raw:
        raise ModelError("quotas overlay needs a top-level 'default'")
    services: dict[str, Quota] = {}
    operations: dict[tuple[str, str], Quota] = {}
    for service, body in (raw.get("services") or {}).items():
        if "default" in body:
            services[service] = _quota(body["default"], f"{service}.default")
        for op, entry in (body.get("operations") or {}).items():
            operations[(service, op)] = _quota(entry, f"{service}.{op}")
    return QuotaTable(_quota(raw["default"], "default"), services, operations)


@lru_cache(maxsize=4)
def load_quotas(path: Path) -> QuotaTable:
    """Load and cache the quotas overlay at ``path``.

    :raises ModelError: when the file cannot be read or parsed
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ModelError(f"cannot read quotas overlay {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ModelError(f"quotas overlay {path} is not valid YAML: {exc}") from None
    return parse_quotas(raw or {})
