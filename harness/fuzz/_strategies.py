"""Hypothesis strategies for values that satisfy every constraint of a model shape.

Strings come from :mod:`harness.fuzz._regex`, which generates a string of a chosen length that
full-matches the shape's pattern, so length bounds and patterns hold together without filtering.
Only patterns it cannot parse (lookarounds, back-references) go through Hypothesis's ``from_regex``
with a length filter.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from harness.errors import InvalidArgument
from harness.fuzz._regex import ANY_STRING, Chooser, Spans, intersect, pattern_strings, pick_span
from harness.model import compile_pattern, pattern_matcher

if TYPE_CHECKING:
    from harness.model import Operation, Shape

__all__ = [
    "INTEGER_RANGES",
    "string_bounds",
    "valid_except_enum",
    "valid_lengths",
    "valid_params",
    "valid_string",
    "valid_values",
]

#: The values the validator accepts as ``integer`` and ``long`` (larger ones are type errors).
INTEGER_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_FLOAT_SPAN = 1e9  # how far from zero (or from the one bound given) floats may go
_SHORT = 24  # strings are usually at most this much longer than their minimum length...
_LONG = 256  # ...and sometimes as long as allowed, up to this much longer than the minimum
_NO_MAX_CAP = 300  # the length cap when a string shape has no maximum
_NESTED_OPTIONAL = 4  # nested structures get at most this many optional members (entropy)
_DEPTH_LIMIT = 32  # beyond max_depth + this, required members recurse without end: give up
_CONTAINERS = frozenset({"structure", "list", "map"})
_EPOCH = (datetime(2000, 1, 1), datetime(2100, 1, 1))  # naive bounds, UTC zone
_DOCUMENT: st.SearchStrategy[Any] = st.recursive(
    st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def string_bounds(shape: Shape) -> tuple[int, int | None]:
    """The length or size bounds of a shape: ``(min, max)``, ``max`` is ``None`` if unbounded."""
    lo = max(0, math.ceil(shape.min)) if shape.min is not None else 0
    return lo, (math.floor(shape.max) if shape.max is not None else None)


def valid_except_enum(shape: Shape, value: str) -> bool:
    """Whether ``value`` meets the length bounds and the pattern of a string shape."""
    lo, hi = string_bounds(shape)
    if not lo <= len(value) <= (len(value) if hi is None else hi):
        return False
    return shape.pattern is None or pattern_matcher(shape.pattern).fullmatch(value)


@lru_cache(maxsize=4096)
def _enum_values(shape: Shape) -> tuple[str, ...]:
    return tuple(v for v in shape.enum if valid_except_enum(shape, v))


@lru_cache(maxsize=4096)
def valid_lengths(shape: Shape) -> Spans:
    """The lengths (up to the maximum, or the minimum + 300) a valid string of ``shape`` can have.

    Empty when the pattern cannot be parsed by our generator, or cannot meet the length bounds.
    """
    gen = pattern_strings(shape.pattern or ANY_STRING)
    if gen is None:
        return ()
    lo, hi = string_bounds(shape)
    top = hi if hi is not None else lo + _NO_MAX_CAP
    return intersect(gen.lengths(top), ((lo, top),))


def valid_string(shape: Shape, ch: Chooser) -> str | None:
    """A string meeting every constraint of ``shape``, or ``None`` when there is none."""
    if shape.enum:
        values = _enum_values(shape)
        return values[ch.integer(0, len(values) - 1)] if values else None
    gen = pattern_strings(shape.pattern or ANY_STRING)
    if gen is None:  # not parseable: Hypothesis's from_regex, filtered by length
        return ch.draw(_from_regex(shape))
    lengths = valid_lengths(shape)
    if not lengths:
        return None
    first = lengths[0][0]
    if ch.integer(0, 9) == 9:  # now and then, the longest string allowed (within reason)
        length = intersect(lengths, ((first, first + _LONG),))[-1][1]
    else:
        length = pick_span(ch, intersect(lengths, ((first, first + _SHORT),)))
    return gen.generate(ch, length)


@lru_cache(maxsize=256)
def _from_regex(shape: Shape) -> st.SearchStrategy[str]:
    lo, hi = string_bounds(shape)
    regex = compile_pattern(shape.pattern or ANY_STRING)
    return st.from_regex(regex, fullmatch=True).filter(
        lambda s: lo <= len(s) and (hi is None or len(s) <= hi)
    )


@st.composite
def _strings(draw: st.DrawFn, shape: Shape) -> str:
    value = valid_string(shape, Chooser(draw))
    assert value is not None  # _string only uses this strategy for satisfiable shapes
    return value


@st.composite
def _structure(
    draw: st.DrawFn,
    required: tuple[tuple[str, st.SearchStrategy[Any]], ...],
    optional: tuple[tuple[str, st.SearchStrategy[Any]], ...],
) -> dict[str, Any]:
    """All required members and a few optional ones: wide nested structures (an iot rule
    ``Action`` has 25 optional members) would otherwise exhaust Hypothesis's entropy budget."""
    value = {name: draw(strategy) for name, strategy in required}
    if optional:
        index = st.integers(0, len(optional) - 1)
        for i in sorted(draw(st.lists(index, unique=True, max_size=_NESTED_OPTIONAL))):
            name, strategy = optional[i]
            value[name] = draw(strategy)
    return value


def _string(shape: Shape) -> st.SearchStrategy[str]:
    if shape.enum:
        values = _enum_values(shape)
        return st.sampled_from(values) if values else st.nothing()
    if pattern_strings(shape.pattern or ANY_STRING) is not None and not valid_lengths(shape):
        return st.nothing()  # the pattern cannot meet the length bounds: no valid value
    return _strings(shape)


def _integer(shape: Shape) -> st.SearchStrategy[int]:
    lo, hi = INTEGER_RANGES[shape.type]
    if shape.min is not None:
        lo = max(lo, math.ceil(shape.min))
    if shape.max is not None:
        hi = min(hi, math.floor(shape.max))
    return st.integers(lo, hi) if lo <= hi else st.nothing()


def _float(shape: Shape) -> st.SearchStrategy[float]:
    lo = float(shape.min) if shape.min is not None else None
    hi = float(shape.max) if shape.max is not None else None
    if lo is None:
        lo = (min(hi, 0.0) if hi is not None else 0.0) - _FLOAT_SPAN
    if hi is None:
        hi = max(lo, 0.0) + _FLOAT_SPAN
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _blob(shape: Shape) -> st.SearchStrategy[bytes]:
    lo, hi = string_bounds(shape)
    top = lo + _SHORT if hi is None else min(hi, lo + _SHORT)
    return st.binary(min_size=lo, max_size=max(lo, top))


_SCALARS: dict[str, Any] = {
    "string": _string,
    "integer": _integer,
    "long": _integer,
    "float": _float,
    "double": _float,
    "blob": _blob,
    "boolean": lambda shape: st.booleans(),
    "timestamp": lambda shape: st.datetimes(*_EPOCH, timezones=st.just(UTC)),
    "document": lambda shape: _DOCUMENT,
}


def valid_values(
    shape: Shape, *, max_depth: int = 4, max_collection: int = 3
) -> st.SearchStrategy[Any]:
    """Values that satisfy every constraint of ``shape``: ``Validator().validate_shape`` is ``[]``.

    Structures get all required members and a random subset of optional ones (nested structures
    at most four, to keep wide shapes within Hypothesis's entropy budget); unions exactly one
    member. Lists and maps hold between ``min`` and ``max`` entries, but at most
    ``max_collection`` unless ``min`` asks for more. ``shape`` itself is at depth 0 and each
    structure, list or map adds a level; from ``max_depth`` on, structures get only their required
    members and collections their minimum size, so recursive shapes terminate.

    :raises InvalidArgument: for a negative ``max_depth`` or ``max_collection``
    """
    if max_depth < 0 or max_collection < 0:
        raise InvalidArgument("max_depth and max_collection must not be negative")
    return _valid(shape, 0, max_depth, max_collection)


def valid_params(operation: Operation) -> st.SearchStrategy[dict[str, Any]]:
    """Valid request parameters for ``operation`` (``{}`` when it takes no input)."""
    if operation.input is None:
        return st.builds(dict)
    strategy: st.SearchStrategy[dict[str, Any]] = valid_values(operation.input)
    return strategy


@lru_cache(maxsize=16384)
def _valid(shape: Shape, depth: int, max_depth: int, max_collection: int) -> st.SearchStrategy[Any]:
    """The cached strategy for ``shape`` at nesting ``depth``."""
    if shape.type not in _CONTAINERS:
        strategy: st.SearchStrategy[Any] = _SCALARS[shape.type](shape)
        return strategy
    if depth > max_depth + _DEPTH_LIMIT:
        raise InvalidArgument(f"shape {shape.name} nests required members without end")
    deep = depth >= max_depth

    def child(target: Shape) -> st.SearchStrategy[Any]:
        return _valid(target, depth + 1, max_depth, max_collection)

    if shape.type == "structure":
        members = shape.members
        if shape.union:
            names = list(members)
            if deep:  # prefer members that end the recursion
                names = [n for n in names if members[n].shape.type not in _CONTAINERS] or names
            return st.one_of([st.fixed_dictionaries({n: child(members[n].shape)}) for n in names])
        required = {n: child(members[n].shape) for n in sorted(shape.required) if n in members}
        optional = {
            n: child(m.shape) for n, m in members.items() if not deep and n not in shape.required
        }
        if depth == 0:
            return st.fixed_dictionaries(required, optional=optional)
        return _structure(tuple(required.items()), tuple(optional.items()))
    lo, most = string_bounds(shape)
    hi = lo if deep else max(lo, max_collection if most is None else min(most, max_collection))
    if shape.type == "list":
        assert shape.member is not None
        return st.lists(child(shape.member.shape), min_size=lo, max_size=hi)
    assert shape.key is not None and shape.value is not None
    return st.dictionaries(
        child(shape.key.shape), child(shape.value.shape), min_size=lo, max_size=hi
    )
