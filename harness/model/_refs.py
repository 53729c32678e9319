"""Operation references: the one syntax every command accepts for naming an operation.

``service:Operation``, ``service.Operation``, ``Operation`` or the Python name
(``create_thing``, also prefixed: ``iot:create_thing``). Service names never hold ``:`` or
``.`` (they are botocore client names such as ``iot-managed-integrations``), and operation
names never do, so the split is unambiguous. An unprefixed name is looked up in the services
the caller offers (a job's, a scenario's, the seed services); a name found in two of them
needs its prefix.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING

from harness.errors import InvalidArgument, UnknownOperation
from harness.model._service import load_service
from harness.model._specs import SEED_SERVICES

if TYPE_CHECKING:
    from collections.abc import Iterable

    from harness.model._service import Operation

__all__ = ["parse_operation_ref", "split_operation_ref"]

_REF = re.compile(r"^(?:(?P<service>[a-z0-9][a-z0-9-]*)[:.])?(?P<operation>[A-Za-z][A-Za-z0-9_]*)$")


def split_operation_ref(text: str) -> tuple[str | None, str]:
    """Split ``text`` into ``(service or None, operation name as written)``; syntax only.

    >>> split_operation_ref("iot:CreateThing"), split_operation_ref("create_thing")
    (('iot', 'CreateThing'), (None, 'create_thing'))

    :raises InvalidArgument: when ``text`` is not of the form ``[service:|service.]Operation``
    """
    found = _REF.match(text.strip())
    if found is None:
        raise InvalidArgument(
            f"{text!r} is not an operation: expected Operation, python_name, "
            "service:Operation or service.Operation"
        )
    return found["service"], found["operation"]


def parse_operation_ref(text: str, services: Iterable[str] | None = None) -> tuple[str, Operation]:
    """Resolve an operation reference against the models: ``(service, operation model)``.

    :param text: ``service:Operation``, ``service.Operation``, ``Operation`` or ``python_name``
    :param services: the services an unprefixed name is looked up in, and the only ones a
        prefix may name (default: the seed services, and a prefix may name any pinned service)
    :raises InvalidArgument: for bad syntax, a prefix outside ``services``, or a name found in
        several of them (the message lists the prefixed spellings to choose from)
    :raises UnknownService: for a prefix that names no model
    :raises UnknownOperation: when the one candidate service has no such operation (several
        candidates: :class:`InvalidArgument`, with the closest names)
    """
    service, name = split_operation_ref(text)
    allowed = tuple(dict.fromkeys(services)) if services is not None else None
    if service is not None:
        if allowed is not None and service not in allowed:
            raise InvalidArgument(
                f"{text!r}: service {service!r} is not one of {', '.join(allowed) or 'none'}"
            )
        return service, load_service(service).operation(name)
    candidates = allowed if allowed is not None else SEED_SERVICES
    found: list[tuple[str, Operation]] = []
    for candidate in candidates:
        model = load_service(candidate)
        op = model.operations.get(name) or next(
            (o for o in model.operations.values() if o.python_name == name), None
        )
        if op is not None:
            found.append((candidate, op))
    if len(found) == 1:
        return found[0]
    if found:
        spellings = " or ".join(f"{s}:{op.name}" for s, op in found)
        raise InvalidArgument(f"{text!r} is ambiguous: name the service, {spellings}")
    names: list[str] = []
    for candidate in candidates:
        model = load_service(candidate)
        names += [*model.operations, *(o.python_name for o in model.operations.values())]
    suggestions = difflib.get_close_matches(name, names, n=3)
    if len(candidates) == 1:
        raise UnknownOperation(candidates[0], name, suggestions)
    hint = f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""
    raise InvalidArgument(f"no operation {name!r} in {', '.join(candidates) or 'no service'}{hint}")
