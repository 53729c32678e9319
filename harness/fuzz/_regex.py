"""Strings of an exact length that full-match an AWS model pattern.

Hypothesis's ``from_regex`` cannot be told a length, and filtering its output by length fails on
patterns such as ``(0x)?[a-fA-F0-9]+`` with ``min = max = 64``. So we parse the (translated)
pattern ourselves into characters, sequences, alternatives and repeats, compute the set of lengths
each part can produce (as sorted, disjoint ``(lo, hi)`` spans, capped), and generate top-down:
every choice keeps the remaining length reachable, so nothing is ever filtered.

Anchors at the edges of alternatives (``(^$)|^[0-9]+$``) are zero-width. Patterns with lookarounds,
back-references or word boundaries are not supported here (:func:`pattern_strings` returns
``None``); callers fall back to Hypothesis's ``from_regex``.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from hypothesis import strategies as st

from harness.model import UnsupportedPattern, compile_pattern, pattern_matcher

if TYPE_CHECKING:
    import sre_constants as _c
    import sre_parse as _p
else:  # the public names are deprecated aliases of these since Python 3.11
    import re._constants as _c
    import re._parser as _p

__all__ = [
    "ANY_STRING",
    "Chooser",
    "PatternStrings",
    "Spans",
    "intersect",
    "pattern_strings",
    "pick_span",
]

_T = TypeVar("_T")
#: A set of non-negative integers as sorted, disjoint, non-adjacent inclusive ``(lo, hi)`` spans.
Spans = tuple[tuple[int, int], ...]
#: The pattern we use for strings without one: any character at all.
ANY_STRING = r"[\s\S]*"

_UNICODE = ((0, 0xD7FF), (0xE000, 0x10FFFF))  # every code point except surrogates
_ZERO: Spans = ((0, 0),)
_TEXT_CHOICE = 64  # runs of characters up to this long are one Hypothesis choice
_Draw = Callable[[st.SearchStrategy[Any]], Any]  # what st.composite passes as ``draw``


class Chooser:
    """Makes integer choices: the first ``budget`` through Hypothesis, the rest from a seeded RNG.

    Hypothesis choices shrink well but cost buffer space; very long strings would overrun it.
    """

    __slots__ = ("_budget", "_draw", "_rng")

    def __init__(self, draw: _Draw, budget: int = 256, rng: random.Random | None = None) -> None:
        self._draw = draw
        self._budget = budget
        self._rng = rng

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]`` (no choice is spent when there is only one)."""
        if lo >= hi:
            return lo
        if self._budget > 0:
            self._budget -= 1
            return int(self._draw(st.integers(lo, hi)))
        return self._random().randint(lo, hi)

    def text(self, alphabet: str, size: int) -> str:
        """``size`` characters of ``alphabet``: one Hypothesis choice for short strings."""
        if size <= _TEXT_CHOICE and self._budget > 0:
            self._budget -= 1
            text: str = self._draw(st.text(alphabet, min_size=size, max_size=size))
            return text
        rng = self._random()
        return "".join(rng.choices(alphabet, k=size))

    def _random(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(self._draw(st.integers(0, 2**64 - 1)))
        return self._rng

    def draw(self, strategy: st.SearchStrategy[_T]) -> _T:
        """Draw from a strategy directly."""
        value: _T = self._draw(strategy)
        return value


def pick_span(ch: Chooser, spans: Spans) -> int:
    """One member of ``spans`` (which must not be empty), shrinking towards the smallest."""
    total = sum(b - a + 1 for a, b in spans)
    index = ch.integer(0, total - 1)
    for a, b in spans:
        if index <= b - a:
            return a + index
        index -= b - a + 1
    raise AssertionError("unreachable")


def _norm(pairs: list[tuple[int, int]], cap: int) -> Spans:
    out: list[tuple[int, int]] = []
    for a, b in sorted((a, min(b, cap)) for a, b in pairs if a <= cap and a <= b):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return tuple(out)


def _add(x: Spans, y: Spans, cap: int) -> Spans:
    """``{a + b for a in x for b in y}``, capped."""
    if len(x) * len(y) <= 256:
        return _norm([(a + c, b + d) for a, b in x for c, d in y], cap)
    # Many spans (e.g. base64 quads): convolve bit sets instead, one shifted smear per span.
    bits, mask, total = _bits(x), (1 << (cap + 1)) - 1, 0
    for a, b in y:
        acc, done = (bits << a) & mask, 1  # acc holds the shifts a .. a + done - 1
        while done <= b - a:
            step = min(done, b - a + 1 - done)
            acc, done = (acc | acc << step) & mask, done + step
        total |= acc
    return tuple((m.start(), m.end() - 1) for m in re.finditer("1+", bin(total)[:1:-1]))


def _bits(x: Spans) -> int:
    return sum(((1 << (b - a + 1)) - 1) << a for a, b in x)


def intersect(x: Spans, y: Spans) -> Spans:
    """The members of both span sets."""
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(x) and j < len(y):
        lo, hi = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _reflect(x: Spans, total: int) -> Spans:
    """``{total - v for v in x if v <= total}``."""
    return _norm([(max(total - b, 0), total - a) for a, b in x if a <= total], total)


def _contains(x: Spans, v: int) -> bool:
    return any(a <= v <= b for a, b in x)


def _complement(spans: Spans) -> Spans:
    out: list[tuple[int, int]] = []
    start = 0
    for a, b in spans:
        if a > start:
            out.append((start, a - 1))
        start = b + 1
    if start <= 0x10FFFF:
        out.append((start, 0x10FFFF))
    return tuple(out)


@dataclass(frozen=True, slots=True, eq=False)
class _Chars:
    spans: Spans
    starts: tuple[int, ...]  # how many members come before each span, for bisection
    preferred: str  # printable ASCII members, nicest first: generated most of the time


@dataclass(frozen=True, slots=True, eq=False)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True, eq=False)
class _Alt:
    options: tuple[_Node, ...]


@dataclass(frozen=True, slots=True, eq=False)
class _Rep:
    item: _Node
    lo: int
    hi: int | None


_Node = _Chars | _Seq | _Alt | _Rep


class _Unsupported(Exception):
    pass


def _chars(spans: Spans) -> _Chars:
    spans = intersect(_norm(list(spans), 0x10FFFF), _UNICODE)
    printable = [chr(c) for a, b in spans for c in range(max(a, 0x20), min(b, 0x7E) + 1)]
    printable.sort(key=lambda c: (not c.islower(), not c.isupper(), not c.isdigit(), c))
    starts = tuple(itertools.accumulate((b - a + 1 for a, b in spans), initial=0))
    return _Chars(spans, starts, "".join(printable))


@cache
def _category(code: int) -> Spans:
    positive: dict[int, str] = {_c.CATEGORY_DIGIT: r"\d", _c.CATEGORY_SPACE: r"\s"}
    positive[_c.CATEGORY_WORD] = r"\w"
    negative: dict[int, str] = {_c.CATEGORY_NOT_DIGIT: r"\d", _c.CATEGORY_NOT_SPACE: r"\s"}
    negative[_c.CATEGORY_NOT_WORD] = r"\w"
    escape = positive.get(code) or negative.get(code)
    if escape is None:
        raise _Unsupported(f"category {code}")
    regex = re.compile(escape, re.ASCII)  # ASCII mode: the classes hold no other characters
    spans = _norm([(c, c) for c in range(128) if regex.fullmatch(chr(c))], 0x10FFFF)
    return spans if code in positive else _complement(spans)


def _char_class(items: list[tuple[Any, Any]]) -> _Chars:
    negate = bool(items) and items[0][0] == _c.NEGATE
    pairs: list[tuple[int, int]] = []
    for op, av in items[1:] if negate else items:
        if op == _c.LITERAL:
            pairs.append((av, av))
        elif op == _c.RANGE:
            pairs.append((av[0], av[1]))
        elif op == _c.CATEGORY:
            pairs.extend(_category(av))
        else:
            raise _Unsupported(f"class item {op}")
    spans = _norm(pairs, 0x10FFFF)
    return _chars(_complement(spans) if negate else spans)


def _build(sub: _p.SubPattern) -> _Node:
    nodes = [node for op, av in sub.data if (node := _build_item(op, av)) is not None]
    return nodes[0] if len(nodes) == 1 else _Seq(tuple(nodes))


def _build_item(op: Any, av: Any) -> _Node | None:
    if op == _c.LITERAL:
        return _chars(((av, av),))
    if op == _c.NOT_LITERAL:
        return _chars(_complement(((av, av),)))
    if op == _c.ANY:
        return _chars(_complement(((10, 10),)))  # no DOTALL: anything but "\n"
    if op == _c.IN:
        return _char_class(av)
    if op == _c.BRANCH:
        return _Alt(tuple(_build(s) for s in av[1]))
    if op == _c.SUBPATTERN:
        if av[1] or av[2]:
            raise _Unsupported("inline flags")
        return _build(av[3])
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        lo, hi, sub = av
        return _Rep(_build(sub), lo, None if hi == _c.MAXREPEAT else hi)
    if op == _c.ATOMIC_GROUP:
        return _build(av)
    if op == _c.AT and av in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING, _c.AT_END, _c.AT_END_STRING):
        return None
    raise _Unsupported(str(op))


class PatternStrings:
    """Generates strings of a chosen length that full-match one pattern."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.regex = compile_pattern(pattern)
        if not self.regex.flags & re.ASCII:
            raise _Unsupported("non-ASCII classes")
        self._root = _build(_p.parse(self.regex.pattern, self.regex.flags))
        self._memo: dict[tuple[Any, ...], Spans] = {}

    def lengths(self, cap: int) -> Spans:
        """Every length up to ``cap`` of a string that full-matches the pattern."""
        return intersect(self._lens(self._root, _round_cap(cap)), ((0, cap),))

    def generate(self, ch: Chooser, length: int) -> str:
        """A string of exactly ``length`` characters; ``length`` must be one of :meth:`lengths`."""
        out: list[str] = []
        self._gen(self._root, length, _round_cap(length), ch, out)
        return "".join(out)

    def _lens(self, node: _Node, cap: int) -> Spans:
        key = (node, cap)
        found = self._memo.get(key)
        if found is not None:
            return found
        spans: Spans
        if isinstance(node, _Chars):
            spans = ((1, 1),) if node.spans else ()
        elif isinstance(node, _Seq):
            spans = _ZERO
            for item in node.items:
                spans = _add(spans, self._lens(item, cap), cap)
        elif isinstance(node, _Alt):
            spans = _norm([s for o in node.options for s in self._lens(o, cap)], cap)
        else:
            sizes, counts = self._rep(node, cap)
            spans = self._range(sizes, counts[0], counts[1], cap)
        self._memo[key] = spans
        return spans

    def _rep(self, node: _Rep, cap: int) -> tuple[Spans, tuple[int, int | None]]:
        """The non-empty item lengths of a repeat, and how many non-empty items it may hold."""
        item = self._lens(node.item, cap)
        if _contains(item, 0):  # empty items fill any count for free
            return _norm([(max(a, 1), b) for a, b in item], cap), (0, node.hi)
        return item, (node.lo, node.hi)

    def _range(self, item: Spans, lo: int, hi: int | None, cap: int) -> Spans:
        """Total lengths of ``lo`` to ``hi`` items, each of a (non-zero) length in ``item``."""
        key = (item, lo, hi, cap)
        found = self._memo.get(key)
        if found is not None:
            return found
        if hi is not None and hi < lo:
            result: Spans = ()
        else:
            base = self._power(item, min(lo, cap + 1), cap)
            optional = _norm([(0, 0), *item], cap)
            if hi is None or hi - lo > cap:
                tail = optional
                while (grown := _add(tail, tail, cap)) != tail:
                    tail = grown
            else:
                tail = self._power(optional, hi - lo, cap)
            result = _add(base, tail, cap)
        self._memo[key] = result
        return result

    @staticmethod
    def _power(item: Spans, count: int, cap: int) -> Spans:
        result, square = _ZERO, item
        while count:
            if count & 1:
                result = _add(result, square, cap)
            square, count = _add(square, square, cap), count >> 1
        return result

    def _gen(self, node: _Node, length: int, cap: int, ch: Chooser, out: list[str]) -> None:
        if isinstance(node, _Chars):
            out.append(_char(node, ch))
        elif isinstance(node, _Alt):
            options = [o for o in node.options if _contains(self._lens(o, cap), length)]
            self._gen(options[ch.integer(0, len(options) - 1)], length, cap, ch, out)
        elif isinstance(node, _Seq):
            if not node.items:
                return
            suffixes = [_ZERO]
            for item in reversed(node.items[1:]):
                suffixes.append(_add(self._lens(item, cap), suffixes[-1], cap))
            for item, rest in zip(node.items, reversed(suffixes), strict=True):
                size = pick_span(ch, intersect(self._lens(item, cap), _reflect(rest, length)))
                self._gen(item, size, cap, ch, out)
                length -= size
        elif isinstance(node.item, _Chars):
            out.append(_run(node.item, length, ch))
        else:
            sizes, (lo, hi) = self._rep(node, cap)
            if len(sizes) == 1 and sizes[0][0] == sizes[0][1]:  # fixed-size items: no choices
                for _ in range(length // sizes[0][0]):
                    self._gen(node.item, sizes[0][0], cap, ch, out)
                return
            done = 0
            while length > 0:
                done += 1
                rest = self._range(sizes, max(lo - done, 0), None if hi is None else hi - done, cap)
                size = pick_span(ch, intersect(sizes, _reflect(rest, length)))
                self._gen(node.item, size, cap, ch, out)
                length -= size


def _char(node: _Chars, ch: Chooser) -> str:
    """One character of the class: mostly printable ASCII, now and then anything in it."""
    total = node.starts[-1]
    if total == 1:
        return chr(node.spans[0][0])
    if node.preferred and (len(node.preferred) == total or ch.integer(0, 7) < 7):
        return node.preferred[ch.integer(0, len(node.preferred) - 1)]
    return _any_char(node, ch)


def _run(node: _Chars, size: int, ch: Chooser) -> str:
    """``size`` characters of the class, drawn as one string."""
    if node.starts[-1] == 1 or not node.preferred:
        return "".join(_char(node, ch) for _ in range(size))
    text = ch.text(node.preferred, size)
    if size and len(node.preferred) < node.starts[-1] and ch.integer(0, 7) == 7:
        i = ch.integer(0, size - 1)  # now and then, one character from the whole class
        text = text[:i] + _any_char(node, ch) + text[i + 1 :]
    return text


def _any_char(node: _Chars, ch: Chooser) -> str:
    index = ch.integer(0, node.starts[-1] - 1)
    span = bisect.bisect_right(node.starts, index) - 1
    return chr(node.spans[span][0] + index - node.starts[span])


def _round_cap(cap: int) -> int:
    """Round caps up to a power of two, so that few distinct caps are ever memoised."""
    return max(64, 1 << max(cap, 1).bit_length())


@lru_cache(maxsize=1024)
def pattern_strings(pattern: str) -> PatternStrings | None:
    """The generator for ``pattern``, or ``None`` when the pattern uses unsupported constructs.

    Each new generator is tried on a few lengths first: one whose strings do not full-match (an
    anchor in the middle of the pattern, say) is not used either.
    """
    try:
        gen = PatternStrings(pattern)
        matches = pattern_matcher(pattern).fullmatch
    except (_Unsupported, UnsupportedPattern, RecursionError):
        return None
    ch = Chooser(_no_draw, budget=0, rng=random.Random(pattern))
    lengths = gen.lengths(256)
    samples = {span[k] for span in (lengths[:2] + lengths[-1:]) for k in (0, 1)}
    for length in sorted(samples):
        if not all(matches(gen.generate(ch, length)) for _ in range(4)):
            return None
    return gen


def _no_draw(strategy: st.SearchStrategy[Any]) -> Any:
    raise AssertionError("a seeded chooser never draws")
