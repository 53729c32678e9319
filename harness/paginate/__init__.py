"""Pagination of any list operation, driven by the model's paginators, with invariant checks."""

from __future__ import annotations

from harness.paginate._pages import Fetch, Page, paginate

__all__ = ["Fetch", "Page", "paginate"]
