"""Each public package lists exactly its public names in a sorted ``__all__``."""

from __future__ import annotations

import importlib

import pytest


def isort_key(name: str) -> tuple[int, str]:
    """ruff's (isort-style) order: CONSTANTS, then Classes, then functions."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


PACKAGES = [
    "harness",
    "harness.cli",
    "harness.emulator",
    "harness.engine",
    "harness.errors",
    "harness.fuzz",
    "harness.load",
    "harness.model",
    "harness.paginate",
    "harness.reporting",
    "harness.stats",
    "harness.throttle",
    "harness.transport",
    "harness.types",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert isinstance(exported, list) and exported == sorted(exported, key=isort_key)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and getattr(v, "__module__", name).startswith("harness")
        and not isinstance(v, type(importlib))
        and n not in ("annotations",)
    }
    assert public <= set(exported) | {"TYPE_CHECKING"}, public - set(exported)
