"""The full request validator: every constraint of the model, with the path of every violation.

botocore's client-side validator checks required members, types and ``min``; it skips ``max``,
``pattern`` and ``enum``, so AWS rejects requests botocore let through. This one checks all of them:
required, types, min/max (lengths, values, counts), patterns (full match, ASCII classes), enums,
unions (exactly one member), unknown members, nested structures, lists and maps (keys and values).
A string is checked for its type, then its length, then its enum, and only a value that passed
those is matched against its pattern, by :func:`pattern_matcher` (linear time).

Each shape compiles once into a closure; validating a request is a walk of plain function calls,
fast enough for the emulator's hot path. Paths read like the parameters they name::

    components["com.example.app"].runWith.systemResourceLimits.cpus
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from harness.model._matcher import pattern_matcher

if TYPE_CHECKING:
    from harness.model._service import Operation
    from harness.model._shapes import Shape

__all__ = ["Constraint", "ValidationIssue", "Validator", "format_issues"]

#: The names of the constraints an issue can report.
Constraint = str
CONSTRAINTS = ("required", "type", "min", "max", "pattern", "enum", "union", "unknown")

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

# Where a value is, built lazily: a validator would otherwise spend most of its time formatting
# paths (and encoding map keys) of valid values. A path is the string it started from, or a
# (parent path, kind, member name / list index / map key) tuple; _render() makes the text only
# when an issue is reported, by the same rules as building it eagerly.
_Path = str | tuple[Any, int, Any]
_MEMBER, _INDEX, _KEY = 0, 1, 2

_Check = Callable[[Any, _Path, list["ValidationIssue"]], None]


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One broken constraint.

    :param path: where, e.g. ``components["com.example.app"].runWith.systemResourceLimits.cpus``
        (empty for the request itself)
    :param constraint: which kind: one of ``required type min max pattern enum union unknown``
    :param message: what is wrong, in words
    """

    path: str
    constraint: Constraint
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(request)'}: {self.message}"


def format_issues(issues: list[ValidationIssue]) -> str:
    """All issues in one line, the way AWS words a validation error."""
    count = len(issues)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(str(i) for i in issues)


def _finite(value: float) -> bool:
    """A finite number that a double can hold (huge ints overflow ``math.isfinite``)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _render(path: _Path) -> str:
    """The text of a lazily built path."""
    if isinstance(path, str):
        return path
    parent, kind, item = path
    text = _render(parent)
    if kind == _MEMBER:
        return _child(text, item)
    if kind == _INDEX:
        return f"{text}[{item}]"
    return _key_path(text, item)


def _shown(shape: Shape, value: Any) -> str:
    if shape.sensitive:
        return "(sensitive value)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _bounds(shape: Shape, kind: str, size: float, path: _Path, out: list[ValidationIssue]) -> None:
    lo, hi = shape.min, shape.max
    if lo is not None and size < lo:
        out.append(
            ValidationIssue(_render(path), "min", f"{kind} {size:g} is below the minimum {lo:g}")
        )
    elif hi is not None and size > hi:
        out.append(
            ValidationIssue(_render(path), "max", f"{kind} {size:g} is above the maximum {hi:g}")
        )


def _type_issue(path: _Path, expected: str, value: Any) -> ValidationIssue:
    text = f"expected {expected}, got {type(value).__name__}"
    return ValidationIssue(_render(path), "type", text)


class Validator:
    """Compiles shapes into checks on first use and runs them.

    One validator serves one service model (shape names are unique within a service).
    """

    __slots__ = ("_checks",)

    def __init__(self) -> None:
        self._checks: dict[str, _Check] = {}

    def validate(self, operation: Operation, params: Mapping[str, Any]) -> list[ValidationIssue]:
        """Every constraint of ``operation``'s input that ``params`` breaks."""
        if operation.input is None:
            if params:
                return [ValidationIssue("", "unknown", "operation takes no parameters")]
            return []
        return self.validate_shape(operation.input, params)

    def validate_shape(self, shape: Shape, value: Any, path: str = "") -> list[ValidationIssue]:
        """Every constraint of ``shape`` that ``value`` breaks, with paths under ``path``."""
        out: list[ValidationIssue] = []
        self._check(shape)(value, path, out)
        return out

    def prepare(self, shape: Shape) -> None:
        """Compile the checks of ``shape`` and of every shape under it now, not on first use.

        Validating a prepared shape only reads the validator, so another thread may do it.
        """
        self._check(shape)

    def _check(self, shape: Shape) -> _Check:
        check = self._checks.get(shape.name)
        if check is None:
            # Recursive shapes reach themselves while compiling: hand out a trampoline that
            # looks the finished check up at call time.
            def trampoline(value: Any, path: _Path, out: list[ValidationIssue]) -> None:
                self._checks[shape.name](value, path, out)

            self._checks[shape.name] = trampoline
            try:
                check = _BUILDERS[shape.type](self, shape)
            except BaseException:
                # Do not leave the trampoline behind: it would call itself forever.
                del self._checks[shape.name]
                raise
            self._checks[shape.name] = check
        return check


def _string(v: Validator, shape: Shape) -> _Check:
    enum = frozenset(shape.enum)
    enum_text = ", ".join(shape.enum[:12]) + (", ..." if len(shape.enum) > 12 else "")
    matches = pattern_matcher(shape.pattern).fullmatch if shape.pattern else None
    lo = -1 if shape.min is None else shape.min
    hi = math.inf if shape.max is None else shape.max

    def check(value: Any, path: _Path, out: list[ValidationIssue]) -> None:
        if not isinstance(value, str):
            out.append(_type_issue(path, "a string", value))
            return
        # Cheap checks first; a value that already failed one is never matched against the
        # pattern (the pattern is the only check whose cost grows with the value).
        if not lo <= len(value) <= hi:
            _bounds(shape, "length", len(value), path, out)
            return
        if enum and value not in enum:
            out.append(
                ValidationIssue(
                    _render(path), "enum", f"{_shown(shape, value)} is not one of: {enum_text}"
                )
            )
            return
        if matches is not None and not matches(value):
            out.append(
                ValidationIssue(
                    _render(path),
                    "pattern",
                    f"{_shown(shape, value)} does not match the pattern {shape.pattern}",
                )
            )

    return check


def _integer(v: Validator, shape: Shape) -> _Check:
    lo, hi = _INT32 if shape.type == "integer" else _INT64
    has_range = shape.min is not None or shape.max is not None
    expected = "a 32-bit integer" if shape.type == "integer" else "a 64-bit integer"

    def check(value: Any, path: _Path, out: list[ValidationIssue]) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            out.append(_type_issue(path, expected, value))
            return
        if has_range:
            _bounds(shape, "value", value, path, out)

    return check


def _float(v: Validator, shape: Shape) -> _Check:
    has_range = shape.min is not None or shape.max is not None

    def check(value: Any, path: _Path, out: list[ValidationIssue]) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append(_type_issue(path, "a number", value))
            return
        if not _finite(value):
            out.append(
                ValidationIssue(
                    _render(path), "type", f"expected a finite number, got {repr(value)[:40]}"
                )
            )
            return
        if has_range:
            _bounds(shape, "value", value, path, out)

    return check


def _boolean(v: Validator, shape: Shape) -> _Check:
    def check(value: Any, path: _Path, out: list[ValidationIssue]) -> None:
        if not isinstance(value, bool):
            out.append(_type_issue(path, "a boolean", value))

    return check


def _timestamp(v: Validator, shape: Shape) -> _Check:
    def check(value: Any, path: _Path, out: list[ValidationIssue]) -> None:
        if isinstance(value, datetime):
            return
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not _finite(value):
                out.append(
                    ValidationIssue(
                        _render(path), "type", f"expected a timestamp, got {repr(value)[:40]}"
                    )
                )
            return
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                out.append(
                    ValidationIssue(
                        _render(path), "type", f"{value[:40]!r} is not an ISO 8601 timestamp"
                    )
                )
            return
        out.append(_type_issue(path, "a timestamp", value))

    return check


def _blob(v: Validator, shape: Shape) -> _Check:
    has_len = shape.min is not None or shape.max is not None

    def check(value: Any, path: _Path, out: list[ValidationIssue]) -> None:
        if isinstance(value, bytes | bytearray):
            size = len(value)
        elif isinstance(value, str):
            size = len(value.encode(errors="surrogatepass"))
        elif hasattr(value, "read"):
            return  # a stream: its length is only known when it is sent
        else:
            out.append(_type_issue(path, "bytes", value))
            return
        if has_len:
            _bounds(shape, "length in bytes", size, path, out)

    return check


def _list(v: Validator, shape: Shape) -> _Check:
    assert shape.member is not None
    item = v._check(shape.member.shape)
    has_len = shape.min is not None or shape.max is not None

    def check(value: Any, path: _Path, out: list[ValidationIssue]) -> None:
        if not isinstance(value, list | tuple):
            out.append(_type_issue(path, "a list", value))
            return
        if has_len:
            _bounds(shape, "item count", len(value), path, out)
        for i, element in enumerate(value):
            item(element, (path, _INDEX, i), out)

    return check


def _key_path(path: str, key: Any) -> str:
    try:
        return path + "[" + orjson.dumps(key).decode() + "]"
    except TypeError:
        return f"{path}[{key!r}]"


def _map(v: Validator, shape: Shape) -> _Check:
    assert shape.key is not None and shape.value is not None
    key_check = v._check(shape.key.shape)
    value_check = v._check(shape.value.shape)
    has_len = shape.min is not None or shape.max is not None

    def check(value: Any, path: _Path, out: list[ValidationIssue]) -> None:
        if not isinstance(value, Mapping):
            out.append(_type_issue(path, "a map", value))
            return
        if has_len:
            _bounds(shape, "entry count", len(value), path, out)
        for key, element in value.items():
            where = (path, _KEY, key)
            before = len(out)
            key_check(key, where, out)
            # Say that it is the key, not the value, that breaks the constraint.
            if len(out) != before:
                out[before:] = [
                    ValidationIssue(i.path, i.constraint, "key " + i.message) for i in out[before:]
                ]
            value_check(element, where, out)

    return check


def _structure(v: Validator, shape: Shape) -> _Check:
    members = {name: v._check(ref.shape) for name, ref in shape.members.items()}
    required = tuple(sorted(shape.required))
    union = shape.union
    valid_names = ", ".join(shape.members) or "none"

    def check(value: Any, path: _Path, out: list[ValidationIssue]) -> None:
        if not isinstance(value, Mapping):
            out.append(_type_issue(path, "a structure", value))
            return
        for name in required:
            if value.get(name) is None:
                _missing(out, path, name)
        set_members = 0
        for name, element in value.items():
            member_check = members.get(name)
            if member_check is None:
                out.append(
                    ValidationIssue(
                        _child(_render(path), str(name)),
                        "unknown",
                        f"is not a member of {shape.name} (members: {valid_names})",
                    )
                )
                continue
            if element is None:
                continue
            set_members += 1
            member_check(element, (path, _MEMBER, name), out)
        if union and set_members != 1:
            out.append(
                ValidationIssue(
                    _render(path),
                    "union",
                    f"exactly one member of {shape.name} must be set, got {set_members}",
                )
            )

    return check


def _missing(out: list[ValidationIssue], path: _Path, name: str) -> None:
    out.append(ValidationIssue(_child(_render(path), name), "required", "is required"))


def _document(v: Validator, shape: Shape) -> _Check:
    def check(value: Any, path: _Path, out: list[ValidationIssue]) -> None:
        return None

    return check


_BUILDERS: dict[str, Callable[[Validator, Shape], _Check]] = {
    "string": _string,
    "integer": _integer,
    "long": _integer,
    "float": _float,
    "double": _float,
    "boolean": _boolean,
    "timestamp": _timestamp,
    "blob": _blob,
    "list": _list,
    "map": _map,
    "structure": _structure,
    "document": _document,
}
