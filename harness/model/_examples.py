"""Valid example values built from the model: strings that match AWS patterns, and whole shapes.

The emulator fills response members with these. Everything is deterministic: the same shape and
seed give the same value, and different seeds give different strings wherever a pattern leaves
freedom (the seed is written into the free characters), so seeds can number unique ids. Every
string is checked against the compiled pattern and its length bounds before it is returned.

>>> regex_example("^[a-zA-Z0-9-]+$", min_len=3)
'abc'
"""

from __future__ import annotations

import importlib
import itertools
import math
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from harness.errors import ModelError
from harness.model._matcher import pattern_matcher
from harness.model._patterns import compile_pattern, translate_pattern

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from harness.model._shapes import Shape

__all__ = ["example_value", "regex_example"]

# The regex parser is private and untyped; the public ``sre_parse`` alias warns on 3.11+.
_sre: Any = importlib.import_module("re._parser")

# Characters a class may offer, best tier first: we only leave a tier when the class has none of it.
_ALNUM = string.ascii_lowercase + string.ascii_uppercase + string.digits
_FAVOURITE_PUNCT = "-_.:/=+@,#"
_PUNCT = _FAVOURITE_PUNCT + "".join(c for c in string.punctuation if c not in _FAVOURITE_PUNCT)
_TIERS = (_ALNUM, _PUNCT, " ", "\t\n\r\x0b\x0c")
_LENGTHS_TRIED = 64  # target lengths tried past the shortest before giving up
_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_TIMESTAMP = datetime(2026, 1, 1, tzinfo=UTC)
_COMPLEXITY = {"list": 1, "map": 1, "structure": 2}  # scalars and documents: 0
_ENDLESS = 32  # levels past max_depth after which required members count as endless recursion

# \d \s \w and their negations with the ASCII meaning: category -> (characters, negated).
_CLASSES = {"DIGIT": string.digits, "SPACE": " \t\n\r\x0b\x0c", "WORD": _ALNUM + "_"}
_CATEGORIES: dict[Any, tuple[str, bool]] = {
    getattr(_sre, f"CATEGORY_{no}{name}"): (chars, bool(no))
    for name, chars in _CLASSES.items()
    for no in ("", "NOT_")
}


class _Fail(Exception):
    """A construct we cannot generate, or a choice of lengths that cannot be realised."""


@dataclass(frozen=True, slots=True)
class _Node:
    """A parse-tree node with its possible text lengths ``lo..hi`` (``hi`` may be infinite)."""

    kind: str  # chars | seq | alt | group | repeat | ref
    lo: int
    hi: float
    parts: tuple[_Node, ...] = ()
    chars: str = ""  # "chars": the characters to choose from, most readable first
    num: int = 0  # "group"/"ref": the group number (0: a group that does not capture)
    rmin: int = 0
    rmax: float = 0.0


def _class_chars(member: Callable[[int], bool]) -> str:
    for tier in _TIERS:
        chars = "".join(c for c in tier if member(ord(c)))
        if chars:
            return chars
    found = "".join(itertools.islice((chr(c) for c in range(0x80, 0x10000) if member(c)), 8))
    if not found:
        raise _Fail("a character class without members")
    return found


def _in_class(items: Sequence[tuple[Any, Any]], cp: int) -> bool:
    negate = hit = False
    for op, av in items:
        if op is _sre.NEGATE:
            negate = True
        elif op is _sre.LITERAL:
            hit = cp == av
        elif op is _sre.RANGE:
            hit = av[0] <= cp <= av[1]
        elif op is _sre.CATEGORY and av in _CATEGORIES:
            hit = (chr(cp) in _CATEGORIES[av][0]) != _CATEGORIES[av][1]
        else:
            raise _Fail(f"{op} in a character class")
        if hit:
            break
    return hit != negate


def _seq(items: Sequence[tuple[Any, Any]], groups: dict[int, _Node]) -> _Node:
    parts = tuple(_item(op, av, groups) for op, av in items)
    return _Node("seq", sum(p.lo for p in parts), float(sum(p.hi for p in parts)), parts)


def _item(op: Any, av: Any, groups: dict[int, _Node]) -> _Node:
    if op is _sre.LITERAL:
        return _Node("chars", 1, 1, chars=chr(av))
    if op is _sre.NOT_LITERAL:
        return _Node("chars", 1, 1, chars=_class_chars(lambda cp: cp != av))
    if op is _sre.ANY:  # "." does not match a newline
        return _Node("chars", 1, 1, chars=_class_chars(lambda cp: cp != 10))
    if op is _sre.IN:
        return _Node("chars", 1, 1, chars=_class_chars(lambda cp: _in_class(av, cp)))
    if op is _sre.BRANCH:
        alts = tuple(_seq(alt, groups) for alt in av[1])
        return _Node("alt", min(a.lo for a in alts), max(a.hi for a in alts), alts)
    if op is _sre.SUBPATTERN or op is _sre.ATOMIC_GROUP:
        num, body = (av[0] or 0, av[3]) if op is _sre.SUBPATTERN else (0, av)
        child = _seq(body, groups)
        node = _Node("group", child.lo, child.hi, (child,), num=num)
        groups[num] = node
        return node
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
        rmin, rmax, body = av
        child = _seq(body, groups)
        top = math.inf if rmax == _sre.MAXREPEAT else float(rmax)
        hi = 0.0 if child.hi == 0 or top == 0 else top * child.hi
        return _Node("repeat", rmin * child.lo, hi, (child,), rmin=rmin, rmax=top)
    if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
        return _Node("seq", 0, 0.0)  # anchors and lookarounds emit nothing; the caller verifies
    if op is _sre.GROUPREF and av in groups:
        return _Node("ref", groups[av].lo, groups[av].hi, num=av)
    raise _Fail(str(op))


@lru_cache(maxsize=1024)
def _tree(pattern: str) -> _Node | None:
    try:
        return _seq(_sre.parse(translate_pattern(pattern), re.ASCII), {})
    except (_Fail, re.error):
        return None


class _Writer:
    """Writes one string for a tree and a total length; the seed picks among the choices."""

    def __init__(self, seed: int, from_end: bool, shift: int) -> None:
        self.rest = seed  # the part of the seed not yet written into a choice
        self.pos = shift  # the copy number inside repeats, plus a shift when retrying
        self.from_end = from_end  # which end of a sequence takes the extra length
        self.groups: dict[int, str] = {}

    def pick(self, options: int) -> int:
        digit, self.rest = self.rest % options, self.rest // options
        return digit

    def split(self, bounds: Sequence[tuple[int, float]], length: int) -> list[int]:
        sizes = [lo for lo, _ in bounds]
        extra = length - sum(sizes)
        order = range(len(bounds) - 1, -1, -1) if self.from_end else range(len(bounds))
        for i in order:
            grow = int(min(extra, bounds[i][1] - sizes[i]))
            sizes[i] += grow
            extra -= grow
        if extra:
            raise _Fail
        return sizes

    def write(self, node: _Node, length: int) -> str:
        if not node.lo <= length <= node.hi:
            raise _Fail
        if node.kind == "chars":
            # Offset by the copy number in repeats so that seed 0 reads "abc..." not "aaa...".
            return node.chars[(self.pick(len(node.chars)) + self.pos) % len(node.chars)]
        if node.kind == "seq":
            sizes = self.split([(p.lo, p.hi) for p in node.parts], length)
            return "".join(self.write(p, n) for p, n in zip(node.parts, sizes, strict=True))
        if node.kind == "alt":
            return self.alternative(node, length)
        if node.kind == "group":
            text = self.write(node.parts[0], length)
            self.groups[node.num] = text
            return text
        if node.kind == "ref":
            earlier = self.groups.get(node.num)
            if earlier is None or len(earlier) != length:
                raise _Fail
            return earlier
        child = node.parts[0]  # a repeat: as few copies as can hold the length
        count = node.rmin
        if length > 0:
            count = max(count, 1, math.ceil(length / child.hi))
        if count > node.rmax or count * child.lo > length:
            raise _Fail
        base, out = self.pos, []
        for copy, size in enumerate(self.split([(child.lo, child.hi)] * count, length)):
            self.pos = base + copy
            out.append(self.write(child, size))
        self.pos = base
        return "".join(out)

    def alternative(self, node: _Node, length: int) -> str:
        fits = [p for p in node.parts if p.lo <= length <= p.hi]
        if not fits:
            raise _Fail
        first = self.pick(len(fits))
        saved = (self.rest, self.pos, dict(self.groups))
        for alt in fits[first:] + fits[:first]:
            try:
                return self.write(alt, length)
            except _Fail:
                self.rest, self.pos, self.groups = saved[0], saved[1], dict(saved[2])
        raise _Fail


def regex_example(
    pattern: str, *, min_len: int = 0, max_len: int | None = None, seed: int = 0
) -> str | None:
    """A string that fully matches an AWS model ``pattern``, with a length in ``min_len..max_len``.

    The shortest fitting string is preferred; the extra length ``min_len`` asks for goes to the
    last repeats of the pattern. Lookarounds and ``\\b`` are not generated but checked afterwards.

    :param pattern: the Java-flavoured pattern as the model spells it
    :param seed: varies the choices; different seeds give different strings where the pattern
        leaves freedom (the string grows when the seed needs more room), equal seeds equal strings
    :returns: the string, or ``None`` when none can be built (never a string that does not match)
    :raises UnsupportedPattern: when the pattern cannot be translated to Python at all
    """
    compile_pattern(pattern)  # raises UnsupportedPattern for a pattern Python cannot read
    return _regex_example(pattern, min_len, max_len, seed)


@lru_cache(maxsize=8192)
def _regex_example(pattern: str, min_len: int, max_len: int | None, seed: int) -> str | None:
    matches = pattern_matcher(pattern).fullmatch
    tree = _tree(pattern)
    if tree is None:
        return None
    lo = max(min_len, tree.lo)
    hi = tree.hi if max_len is None else min(tree.hi, max_len)
    first: str | None = None
    for length in range(lo, int(min(hi, lo + _LENGTHS_TRIED)) + 1):
        # Lookarounds and \b are not generated: when they reject a string, shifted characters
        # usually pass. Extra length goes to the last repeats first, else to the first ones.
        for from_end, shift in itertools.product((True, False), range(3)):
            writer = _Writer(seed, from_end, shift)
            try:
                text = writer.write(tree, length)
            except _Fail:
                continue
            if not lo <= len(text) <= hi or not matches(text):
                continue
            if writer.rest == 0:
                return text
            first = first or text  # a valid string, though too short to hold the whole seed
            break
    return first


def example_value(
    shape: Shape, *, seed: int = 0, max_depth: int = 3, required_only: bool = False
) -> Any:
    """A deterministic value of ``shape`` that passes every constraint of the validator.

    Structures get their required members, and their optional ones too above ``max_depth``
    unless ``required_only``; unions get their first member that can be built (from
    ``max_depth`` on, their simplest one). Lists and maps get their minimum entries (at least
    one above ``max_depth`` unless ``required_only``). Documents are ``{}``.

    :param seed: varies strings, enum choices and map keys; list items and map entries use
        ``seed``, ``seed + 1``... so that they differ
    :param max_depth: the nesting level from which only required members are filled
    :raises ModelError: naming the shape and the reason when no valid value can be built
    """
    return _Builder(max_depth, required_only).build(shape, 0, seed)


def _bounds(shape: Shape) -> tuple[int, int | None]:
    lo = math.ceil(shape.min) if shape.min is not None else 0
    hi = math.floor(shape.max) if shape.max is not None else None
    if hi is not None and lo > hi:
        raise ModelError(f"shape {shape.name!r}: minimum {lo} is above maximum {hi}")
    return max(lo, 0), hi


class _Builder:
    def __init__(self, max_depth: int, required_only: bool) -> None:
        self.max_depth = max_depth
        self.required_only = required_only
        self.failed: dict[str, tuple[int, str]] = {}  # shape name -> (shallowest depth, why)

    def build(self, shape: Shape, depth: int, seed: int) -> Any:
        # A shape that failed at some depth fails deeper too (less room, fewer options), so we
        # remember it: a union of recursive members would otherwise retry exponentially often.
        failed = self.failed.get(shape.name, (depth + 1, ""))
        if depth >= failed[0]:
            raise ModelError(failed[1])
        try:
            if depth > self.max_depth + _ENDLESS:
                raise ModelError(f"shape {shape.name!r}: required members recurse without end")
            if shape.type in ("structure", "list", "map"):
                return getattr(self, shape.type)(shape, depth, seed)
            return _scalar(shape, seed)
        except ModelError as exc:
            self.failed[shape.name] = (depth, str(exc))
            raise

    def entries(self, shape: Shape, depth: int) -> tuple[int, int]:
        lo, hi = _bounds(shape)
        wanted = lo
        if not self.required_only and depth < self.max_depth:
            wanted = max(lo, 1 if hi is None else min(1, hi))
        return lo, wanted

    def list(self, shape: Shape, depth: int, seed: int) -> list[Any]:
        assert shape.member is not None
        lo, count = self.entries(shape, depth)
        try:
            return [self.build(shape.member.shape, depth + 1, seed + i) for i in range(count)]
        except ModelError:
            if count == lo:
                raise
            return [self.build(shape.member.shape, depth + 1, seed + i) for i in range(lo)]

    def map(self, shape: Shape, depth: int, seed: int) -> dict[Any, Any]:
        assert shape.key is not None and shape.value is not None
        lo, count = self.entries(shape, depth)
        keys: list[Any] = []
        for i in range(count + _ENDLESS):  # keys from distinct seeds, until enough are distinct
            if len(keys) == count:
                break
            key = self.build(shape.key.shape, depth + 1, seed + i)
            if key not in keys:
                keys.append(key)
        if len(keys) < lo:
            raise ModelError(f"shape {shape.name!r}: cannot build {lo} distinct keys")
        value = shape.value.shape
        return {key: self.build(value, depth + 1, seed + i) for i, key in enumerate(keys)}

    def structure(self, shape: Shape, depth: int, seed: int) -> dict[str, Any]:
        if shape.union:
            members = list(shape.members.items())
            if depth >= self.max_depth:  # the simplest member first, so that recursion ends
                members.sort(key=lambda item: _COMPLEXITY.get(item[1].shape.type, 0))
            for name, member in members:
                try:
                    return {name: self.build(member.shape, depth + 1, seed)}
                except ModelError:
                    continue
            raise ModelError(f"shape {shape.name!r}: no member of the union can be built")
        optional = not self.required_only and depth < self.max_depth
        value: dict[str, Any] = {}
        for name, member in shape.members.items():
            if name in shape.required:
                value[name] = self.build(member.shape, depth + 1, seed)
            elif optional:
                try:
                    value[name] = self.build(member.shape, depth + 1, seed)
                except ModelError:
                    pass  # an optional member we cannot fill is simply left out
        return value


def _scalar(shape: Shape, seed: int) -> Any:
    if shape.type == "string":
        return _string(shape, seed)
    if shape.type == "blob":
        lo, hi = _bounds(shape)
        size = max(lo, 7) if hi is None else min(max(lo, 7), hi)
        return (b"example" * (size // 7 + 1))[:size]
    if shape.type in _INT_RANGES or shape.type in ("float", "double"):
        return _number(shape)
    return {"boolean": False, "timestamp": _TIMESTAMP}.get(shape.type, {})  # document: any JSON


def _string(shape: Shape, seed: int) -> str:
    lo, hi = _bounds(shape)
    matches = pattern_matcher(shape.pattern).fullmatch if shape.pattern else None
    if shape.enum:
        for i in range(len(shape.enum)):
            text = shape.enum[(seed + i) % len(shape.enum)]
            fits = lo <= len(text) <= (len(text) if hi is None else hi)
            if fits and (matches is None or matches(text)):
                return text
        raise ModelError(f"shape {shape.name!r}: no enum value fits its length and pattern")
    if shape.pattern:
        found = regex_example(shape.pattern, min_len=lo, max_len=hi, seed=seed)
        if found is None and seed:
            found = regex_example(shape.pattern, min_len=lo, max_len=hi)
        if found is None:
            raise ModelError(
                f"shape {shape.name!r}: cannot build a string of length {lo}..{hi} "
                f"matching {shape.pattern!r}"
            )
        return found
    base = f"example{seed}" if seed else "example"
    text = (base * (lo // len(base) + 1))[: max(lo, len(base))]
    return text if hi is None else text[:hi]


def _number(shape: Shape) -> int | float:
    floor, ceil = _INT_RANGES.get(shape.type, (-math.inf, math.inf))
    lo = floor if shape.min is None else max(floor, shape.min)
    hi = ceil if shape.max is None else min(ceil, shape.max)
    if shape.type in _INT_RANGES:
        lo, hi = math.ceil(lo), math.floor(hi)
    if lo > hi:
        raise ModelError(f"shape {shape.name!r}: no {shape.type} lies in {lo}..{hi}")
    # The minimum when the model sets one, else 1 (a plausible count, size or id) within bounds.
    value = lo if shape.min is not None else min(max(1, lo), hi)
    return int(value) if shape.type in _INT_RANGES else float(value)
