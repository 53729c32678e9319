"""Requests that break exactly one constraint, labelled with where and which.

We draw valid parameters, list every *site* where one constraint could be broken (a required
member to remove, a value to give the wrong type, a string to make too short, a union to give a
second member...), pick a constraint kind and a site, and mutate a copy of the request there. Each
mutation keeps every other constraint intact: a too-long string still matches its pattern, a
string that breaks a pattern keeps a valid length, a non-enum value still meets the length bounds
and the pattern. A site where that is impossible (the pattern ``[0-9]+`` cannot be met by a string
shorter than one character) offers no mutation, and another site is used instead.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from hypothesis import strategies as st

from harness.fuzz._regex import ANY_STRING, Chooser, intersect, pattern_strings, pick_span
from harness.fuzz._strategies import (
    INTEGER_RANGES,
    string_bounds,
    valid_except_enum,
    valid_lengths,
    valid_string,
    valid_values,
)
from harness.model import pattern_matcher

if TYPE_CHECKING:
    from harness.model import Operation, Shape

__all__ = ["Breakage", "invalid_params"]

_BIG = 1 << 16  # we break a string, blob or list maximum only up to this size
_BIG_MAP = 256  # ... and a map maximum up to this many entries
_UNKNOWN = "unexpectedMember"
#: Characters to swap into a string to break its pattern, tried in turn from a random start.
_ODD = tuple("\x00\n\t !#$%*-./:=@_~aZ0é€\u2028\U0001f600")
#: Values of the wrong type, per shape type (as the validator sees types: an ``integer`` beyond
#: 32 bits and a non-finite ``double`` are type errors too).
_WRONG: dict[str, tuple[Any, ...]] = {
    "string": (12345, True, ["text"], b"bytes"),
    "integer": ("12", 1.5, True, 2**31),
    "long": ("12", 1.5, True, 2**63),
    "float": ("1.5", True, [1.5], math.inf, math.nan),
    "double": ("1.5", True, [1.5], -math.inf, math.nan),
    "boolean": ("true", 1, [True]),
    "timestamp": (True, "yesterday", ["2024-01-01"], math.nan),
    "blob": (12345, True, [1, 2]),
    "list": ("item", {"0": "item"}, 7),
    "map": (["key"], "key=value", 7),
    "structure": ("structure", ["member"], 7),
}


@dataclass(frozen=True, slots=True)
class Breakage:
    """The one constraint an invalid request breaks.

    :param path: where, in the validator's syntax (``tags[0].key``, ``tags["env"]``; ``""`` for
        the request itself)
    :param constraint: which kind: ``required type min max pattern enum union unknown``
    :param description: what the mutation did, in words
    """

    path: str
    constraint: str
    description: str


# A mutation changes the (copied) request in place and returns (path, description), or None when
# it cannot break its constraint alone. A placement puts a value at a site and returns its path.
_Mutate = Callable[[Any, Chooser], "tuple[str, str] | None"]
_Place = Callable[[Any, Any], "str | None"]
_Sites = dict[str, list[_Mutate]]


def invalid_params(operation: Operation) -> st.SearchStrategy[tuple[dict[str, Any], Breakage]]:
    """Parameters for ``operation`` that break exactly one constraint, and which one.

    The validator reports exactly ``[ValidationIssue(breakage.path, breakage.constraint, ...)]``
    for them. Constraint kinds are chosen evenly, then a site of that kind.
    """
    if operation.input is None:
        breakage = Breakage("", "unknown", "a parameter for an operation that takes none")
        return st.builds(lambda: ({"unexpectedParameter": 1}, breakage))
    return _invalid(operation.input)


@st.composite
def _invalid(draw: st.DrawFn, shape: Shape) -> tuple[dict[str, Any], Breakage]:
    params: dict[str, Any] = draw(valid_values(shape))
    sites: _Sites = {}
    _collect(shape, params, (), "", sites)
    ch = Chooser(draw)
    kinds = sorted(sites)
    first = ch.integer(0, len(kinds) - 1)
    for kind in kinds[first:] + kinds[:first]:
        group = sites[kind]
        start = ch.integer(0, len(group) - 1)
        for mutate in group[start:] + group[:start]:
            broken = copy.deepcopy(params)
            done = mutate(broken, ch)
            if done is not None:
                return broken, Breakage(done[0], kind, done[1])
    raise AssertionError("unreachable: an unknown member can always be added")


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _key_path(path: str, key: Any) -> str:
    try:
        return path + "[" + orjson.dumps(key).decode() + "]"
    except TypeError:
        return f"{path}[{key!r}]"


def _walk(root: Any, segs: tuple[Any, ...]) -> Any:
    for seg in segs:
        root = root[seg]
    return root


def _at(segs: tuple[Any, ...], path: str) -> _Place:
    def place(root: Any, new: Any) -> str:
        _walk(root, segs[:-1])[segs[-1]] = new
        return path

    return place


def _as_key(segs: tuple[Any, ...], old: str, path: str) -> _Place:
    """Put the new value in place of the map key ``old`` (keeping the entry's value)."""

    def place(root: Any, new: Any) -> str | None:
        mapping = _walk(root, segs)
        if new in mapping:
            return None
        items = [(new if key == old else key, value) for key, value in mapping.items()]
        mapping.clear()
        mapping.update(items)
        return _key_path(path, new)

    return place


def _wrong(kind: str) -> Callable[[Chooser], Any]:
    def make(ch: Chooser) -> Any:
        return _WRONG[kind][ch.integer(0, len(_WRONG[kind]) - 1)]

    return make


def _put(place: _Place, make: Callable[[Chooser], Any], what: str) -> _Mutate:
    def mutate(root: Any, ch: Chooser) -> tuple[str, str] | None:
        new = make(ch)
        path = None if new is None else place(root, new)
        if path is None:
            return None
        size = f" (length {len(new)})" if isinstance(new, str | bytes | list | dict) else ""
        return path, f"{what}: {repr(new)[:60]}{size}"

    return mutate


def _collect(shape: Shape, value: Any, segs: tuple[Any, ...], path: str, sites: _Sites) -> None:
    """Add every site of ``value`` (at ``path``, reached from the root by ``segs``) to ``sites``."""
    kind = shape.type
    if segs and kind != "document":
        sites.setdefault("type", []).append(_put(_at(segs, path), _wrong(kind), f"not a {kind}"))
    if kind == "string":
        _string_sites(shape, value, _at(segs, path), sites)
    elif kind in ("integer", "long", "float", "double"):
        _number_sites(shape, _at(segs, path), sites)
    elif kind == "blob":
        lo, hi = string_bounds(shape)
        if lo > 0:
            few = _put(_at(segs, path), partial(_bytes, lo - 1, -1), "too short")
            sites.setdefault("min", []).append(few)
        if hi is not None and hi < _BIG:
            many = _put(_at(segs, path), partial(_bytes, hi + 1, 1), "too long")
            sites.setdefault("max", []).append(many)
    elif kind in ("list", "map"):
        _count_sites(shape, segs, path, sites)
        if kind == "list":
            assert shape.member is not None
            for i, item in enumerate(value):
                _collect(shape.member.shape, item, (*segs, i), f"{path}[{i}]", sites)
        else:
            assert shape.key is not None and shape.value is not None
            for key, item in value.items():
                _string_sites(shape.key.shape, key, _as_key(segs, key, path), sites)
                _collect(shape.value.shape, item, (*segs, key), _key_path(path, key), sites)
    elif kind == "structure":
        _structure_sites(shape, value, segs, path, sites)


def _bytes(edge: int, sign: int, ch: Chooser) -> bytes:
    """Bytes of length ``edge`` (mostly) or a little further out, away from the bound."""
    size = edge + sign * (ch.integer(0, 3) if ch.integer(0, 3) == 3 else 0)
    return b"x" * max(size, 0)


def _structure_sites(
    shape: Shape, value: dict[str, Any], segs: tuple[Any, ...], path: str, sites: _Sites
) -> None:
    members = shape.members

    def remove(name: str) -> _Mutate:
        def mutate(root: Any, ch: Chooser) -> tuple[str, str]:
            del _walk(root, segs)[name]
            return _child(path, name), "required member removed"

        return mutate

    def extra(name: str, union: bool) -> _Mutate:
        def mutate(root: Any, ch: Chooser) -> tuple[str, str]:
            if union:  # a valid value for a second member of a union
                new = ch.draw(valid_values(members[name].shape, max_depth=1, max_collection=1))
                _walk(root, segs)[name] = new
                return path, f"a second union member set: {name}"
            _walk(root, segs)[name] = "unexpected"
            return _child(path, name), "a member the shape does not have"

        return mutate

    def clear(root: Any, ch: Chooser) -> tuple[str, str]:
        _walk(root, segs).clear()
        return path, "no union member set"

    unknown = _UNKNOWN
    while unknown in members:
        unknown += "_"
    sites.setdefault("unknown", []).append(extra(unknown, False))
    if shape.union:  # no member, or a second one
        unions = sites.setdefault("union", [])
        unions.append(clear)
        unions.extend(extra(n, True) for n in members if value.get(n) is None)
    else:
        removals = [remove(n) for n in sorted(shape.required) if n in value]
        sites.setdefault("required", []).extend(removals)
    for name, member in members.items():
        where = _child(path, name)
        if value.get(name) is not None:
            _collect(member.shape, value[name], (*segs, name), where, sites)
        elif not shape.union and member.shape.type != "document":  # absent: add a wrong type
            kind = member.shape.type
            wrong = _put(_at((*segs, name), where), _wrong(kind), f"not a {kind}")
            sites.setdefault("type", []).append(wrong)


def _count_sites(shape: Shape, segs: tuple[Any, ...], path: str, sites: _Sites) -> None:
    lo, hi = string_bounds(shape)
    is_list = shape.type == "list"

    def fewer(root: Any, ch: Chooser) -> tuple[str, str]:
        current = _walk(root, segs)
        keep = lo - 1 - ch.integer(0, lo - 1)
        new = current[:keep] if is_list else dict(list(current.items())[:keep])
        _at(segs, path)(root, new)
        return path, f"{keep} entries (minimum {lo})"

    def more(root: Any, ch: Chooser) -> tuple[str, str] | None:
        assert hi is not None
        current = _walk(root, segs)
        need = hi + 1 - len(current)
        if is_list:
            assert shape.member is not None
            pool = list(current) or [_draw_valid(shape.member.shape, ch)]
            current.extend(pool[i % len(pool)] for i in range(need))
            return path, f"{len(current)} items (maximum {hi})"
        assert shape.key is not None and shape.value is not None
        filler = _draw_valid(shape.value.shape, ch)
        for _ in range(4 * need + 8):
            key = valid_string(shape.key.shape, ch)
            if key is not None and key not in current:
                current[key] = filler
                if len(current) > hi:
                    return path, f"{len(current)} entries (maximum {hi})"
        return None  # not enough distinct valid keys

    if lo > 0:
        sites.setdefault("min", []).append(fewer)
    if hi is not None and hi < (_BIG if is_list else _BIG_MAP):
        sites.setdefault("max", []).append(more)


def _draw_valid(shape: Shape, ch: Chooser) -> Any:
    return ch.draw(valid_values(shape, max_depth=1, max_collection=1))


def _string_sites(shape: Shape, value: str, place: _Place, sites: _Sites) -> None:
    lo, hi = string_bounds(shape)
    if shape.enum:
        off_enum = _put(place, partial(_off_enum, shape), "not in the enum")
        sites.setdefault("enum", []).append(off_enum)
        return  # any other change would also leave the enum
    if lo > 0:
        short = partial(_matching, shape, 0, lo - 1, True)
        sites.setdefault("min", []).append(_put(place, short, "too short"))
    if hi is not None and hi < _BIG:
        long = partial(_matching, shape, hi + 1, hi + 4, False)
        sites.setdefault("max", []).append(_put(place, long, "too long"))
    if shape.pattern:
        off = partial(_off_pattern, shape, value)
        sites.setdefault("pattern", []).append(_put(place, off, "off the pattern"))


def _matching(shape: Shape, lo: int, hi: int, prefer_top: bool, ch: Chooser) -> str | None:
    """A string of length ``lo..hi`` matching the shape's pattern (``None`` if there is none)."""
    gen = pattern_strings(shape.pattern or ANY_STRING)
    spans = intersect(gen.lengths(hi), ((lo, hi),)) if gen is not None else ()
    if gen is None or not spans:
        return None
    if ch.integer(0, 3) < 3:  # mostly right at the boundary
        length = spans[-1][1] if prefer_top else spans[0][0]
    else:
        length = pick_span(ch, spans)
    text = gen.generate(ch, length)
    return text if pattern_matcher(gen.pattern).fullmatch(text) else None


def _off_enum(shape: Shape, ch: Chooser) -> str | None:
    """A string with a valid length and pattern that is not one of the shape's enum values."""
    gen = pattern_strings(shape.pattern or ANY_STRING)
    lengths = valid_lengths(shape)
    for attempt in range(4):
        if attempt == 0 and ch.integer(0, 1):  # a near miss: an enum value in the wrong case
            text = shape.enum[ch.integer(0, len(shape.enum) - 1)].swapcase()
        elif gen is not None and lengths:
            text = gen.generate(ch, pick_span(ch, intersect(lengths, ((0, lengths[0][0] + 24),))))
        else:
            return None
        if text not in shape.enum and valid_except_enum(shape, text):
            return text
    return None


def _off_pattern(shape: Shape, value: str, ch: Chooser) -> str | None:
    """A string with a valid length that does not match the pattern: ``value`` with one character
    swapped for an odd one, else a run of one odd character."""
    assert shape.pattern is not None
    matches = pattern_matcher(shape.pattern).fullmatch
    lo, hi = string_bounds(shape)
    start = ch.integer(0, len(_ODD) - 1)
    odd = _ODD[start:] + _ODD[:start]
    candidates: list[str] = []
    if value:
        for i in dict.fromkeys((ch.integer(0, len(value) - 1), 0, len(value) - 1)):
            candidates.extend(value[:i] + c + value[i + 1 :] for c in odd)
    for size in sorted({len(value), lo, lo + 1}):
        candidates.extend(c * size for c in odd)
    for text in candidates:
        if (hi is None or len(text) <= hi) and len(text) >= lo and not matches(text):
            return text
    return None


def _number_sites(shape: Shape, place: _Place, sites: _Sites) -> None:
    if shape.type in INTEGER_RANGES:
        type_lo, type_hi = INTEGER_RANGES[shape.type]
        if shape.min is not None and (edge := math.ceil(shape.min) - 1) >= type_lo:
            low = partial(_int_beyond, edge, -1, type_lo)
            sites.setdefault("min", []).append(_put(place, low, f"below the minimum {shape.min}"))
        if shape.max is not None and (edge := math.floor(shape.max) + 1) <= type_hi:
            high = partial(_int_beyond, edge, 1, type_hi)
            sites.setdefault("max", []).append(_put(place, high, f"above the maximum {shape.max}"))
        return
    if shape.min is not None:
        low_f = partial(_beyond, float(shape.min), -1.0)
        sites.setdefault("min", []).append(_put(place, low_f, f"below the minimum {shape.min}"))
    if shape.max is not None:
        high_f = partial(_beyond, float(shape.max), 1.0)
        sites.setdefault("max", []).append(_put(place, high_f, f"above the maximum {shape.max}"))


def _int_beyond(edge: int, sign: int, limit: int, ch: Chooser) -> int:
    """``edge`` (the first integer past a bound), or further out (but within the type's range)."""
    value = edge + sign * (ch.integer(0, 1000) if ch.integer(0, 3) == 3 else 0)
    return max(value, limit) if sign < 0 else min(value, limit)


def _beyond(bound: float, sign: float, ch: Chooser) -> float | None:
    """A finite float just past ``bound`` in the direction of ``sign``."""
    steps = (1.0, 0.5, 1e-3, 1000.0, abs(bound) * 0.01)
    start = ch.integer(0, len(steps) - 1)
    for step in steps[start:] + steps[:start]:
        value = bound + sign * step
        if math.isfinite(value) and (value < bound if sign < 0 else value > bound):
            return value
    return None
