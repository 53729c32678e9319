"""Service-specific behaviour: importing this package registers every handler.

Each module holds the state of one service per (account, region) and the handlers of the
operations whose semantics go beyond the generic model-driven behaviour. Modules register
themselves with :func:`harness.emulator._context.handler` and ``service_state``.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
