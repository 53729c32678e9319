"""Model patterns in RE2's syntax, with exactly the meaning :func:`compile_pattern` gives them.

The pattern is first translated from Java to Python (:func:`translate_pattern`), then parsed by
Python's own regex parser, and the parse tree is written back out for RE2 with nothing left to
interpretation: every character class becomes an explicit list of code point ranges (ASCII
``\\d \\w \\s``, ASCII-only case folding, Java's ``.``), every group is non-capturing, laziness is
dropped (it cannot change whether a full match exists). The result is *exact* when RE2 then
accepts precisely the values Python's ``fullmatch`` accepts.

Where RE2 has no equivalent the writer produces a *superset* instead and says so (``exact`` is
false): lookarounds are dropped, a back-reference matches anything its group could, possessive
and atomic repeats become plain ones, a ``$`` that is not at the end of the pattern is dropped,
and repeat bounds RE2 refuses (over 1,000, or nested past its size limit) become open-ended.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from harness.model._patterns import UnsupportedPattern, translate_pattern

if TYPE_CHECKING:
    import sre_constants as _c
    import sre_parse as _p
    from collections.abc import Iterable, Sequence
else:  # the public names are deprecated aliases of these since Python 3.11
    import re._constants as _c
    import re._parser as _p

__all__ = [
    "Ranges",
    "Re2Pattern",
    "char_ranges",
    "complement",
    "intersects",
    "normalize",
    "re2_pattern",
]

#: A set of code points as sorted, disjoint, non-adjacent inclusive ``(lo, hi)`` ranges.
Ranges = tuple[tuple[int, int], ...]

_MAX_CP = 0x10FFFF
_RE2_MAX_REPEAT = 1000  # RE2 refuses {n,m} with n or m above this
_DIGIT: Ranges = ((0x30, 0x39),)
_WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_SPACE: Ranges = ((0x09, 0x0D), (0x20, 0x20))  # Python's ASCII \s, which is also Java's
_NEWLINE: Ranges = ((0x0A, 0x0A),)
_ZERO_WIDTH = (_c.AT, _c.ASSERT, _c.ASSERT_NOT)


def normalize(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Sort and merge ranges (overlapping or adjacent ones become one)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def complement(ranges: Ranges) -> Ranges:
    """Every code point not in ``ranges``."""
    out: list[tuple[int, int]] = []
    start = 0
    for lo, hi in ranges:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= _MAX_CP:
        out.append((start, _MAX_CP))
    return tuple(out)


def intersects(a: Ranges, b: Ranges) -> bool:
    """Whether two sets share a code point."""
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return True
    return False


def _fold_ascii(ranges: Ranges) -> Ranges:
    """Add the other case of every ASCII letter (Python's IGNORECASE under re.ASCII, and Java's)."""
    extra: list[tuple[int, int]] = []
    for lo, hi in ranges:
        for a, b, delta in ((0x41, 0x5A, 0x20), (0x61, 0x7A, -0x20)):
            s, e = max(lo, a), min(hi, b)
            if s <= e:
                extra.append((s + delta, e + delta))
    return normalize((*ranges, *extra)) if extra else ranges


_CATEGORIES: dict[Any, Ranges] = {
    _c.CATEGORY_DIGIT: _DIGIT,
    _c.CATEGORY_NOT_DIGIT: complement(_DIGIT),
    _c.CATEGORY_WORD: _WORD,
    _c.CATEGORY_NOT_WORD: complement(_WORD),
    _c.CATEGORY_SPACE: _SPACE,
    _c.CATEGORY_NOT_SPACE: complement(_SPACE),
}


def _class_ranges(items: Sequence[tuple[Any, Any]], fold: bool) -> Ranges:
    negate = False
    found: list[tuple[int, int]] = []
    for op, av in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            found.append((av, av))
        elif op is _c.RANGE:
            found.append(av)
        elif op is _c.CATEGORY and av in _CATEGORIES:
            found.extend(_CATEGORIES[av])
        else:
            raise re.error(f"unexpected {op} in a character class")
    ranges = normalize(found)
    if fold:
        ranges = _fold_ascii(ranges)
    return complement(ranges) if negate else ranges


def char_ranges(op: Any, av: Any, flags: int) -> Ranges | None:
    """The code points a single-character item matches, or ``None`` for any other item."""
    fold = bool(flags & re.IGNORECASE)
    if op is _c.LITERAL or op is _c.NOT_LITERAL:
        one = _fold_ascii(((av, av),)) if fold else ((av, av),)
        return one if op is _c.LITERAL else complement(one)
    if op is _c.IN:
        return _class_ranges(av, fold)
    if op is _c.ANY:
        return ((0, _MAX_CP),) if flags & re.DOTALL else complement(_NEWLINE)
    return None


def _cp(cp: int) -> str:
    ch = chr(cp)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{cp:X}}}"


def _class_text(ranges: Ranges) -> str:
    if not ranges:
        return f"[^\\x00-\\x{{{_MAX_CP:X}}}]"  # matches nothing
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _cp(ranges[0][0])
    body = "".join(_cp(lo) if lo == hi else f"{_cp(lo)}-{_cp(hi)}" for lo, hi in ranges)
    return f"[{body}]"


@dataclass
class _Writer:
    """Writes one parse tree; records what it had to widen and every character class it met."""

    groups: dict[int, str] = field(default_factory=dict)
    widened: list[str] = field(default_factory=list)
    classes: list[Ranges] = field(default_factory=list)
    cap_repeats: bool = False

    def seq(self, items: Sequence[tuple[Any, Any]], flags: int, tail: bool) -> str:
        parts = []
        for i, (op, av) in enumerate(items):
            # A "$" is exact only where nothing after it in the whole pattern consumes a character.
            rest_empty = all(o in _ZERO_WIDTH for o, _ in items[i + 1 :])
            parts.append(self.item(op, av, flags, tail and rest_empty))
        return "".join(parts)

    def item(self, op: Any, av: Any, flags: int, tail: bool) -> str:
        chars = char_ranges(op, av, flags)
        if chars is not None:
            self.classes.append(chars)
            return _class_text(chars)
        if op is _c.SUBPATTERN:
            number, add, remove, body = av
            text = f"(?:{self.seq(body, (flags | add) & ~remove, tail)})"
            if number is not None:
                self.groups[number] = text
            return text
        if op is _c.ATOMIC_GROUP:
            self.widened.append("atomic group")
            return f"(?:{self.seq(av, flags, tail)})"
        if op is _c.BRANCH:
            return "(?:" + "|".join(self.seq(alt, flags, tail) for alt in av[1]) + ")"
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            if op is _c.POSSESSIVE_REPEAT:
                self.widened.append("possessive repeat")
            lo, hi, body = av
            inner = self.seq(body, flags, tail and hi == 1)
            return f"(?:{inner}){self.bounds(lo, hi)}"
        if op is _c.AT:
            return self.anchor(av, tail)
        if op is _c.ASSERT and tail and self._end_lookahead(av):
            return "\\z"  # Java's \Z, translated as (?=\n?\Z): at the end of a full match, \z
        if op in (_c.ASSERT, _c.ASSERT_NOT):
            self.widened.append("lookaround")
            self.seq(av[1], flags, False)  # only for its character classes
            return ""
        if op is _c.GROUPREF:
            self.widened.append("back-reference")
            return self.groups.get(av, "")
        raise re.error(f"unexpected {op}")

    def bounds(self, lo: int, hi: int) -> str:
        top = None if hi is _c.MAXREPEAT else int(hi)
        if self.cap_repeats and top is not None and top > 1:
            self.widened.append("bounded repeat")
            top = None
        if lo > _RE2_MAX_REPEAT or (top is not None and top > _RE2_MAX_REPEAT):
            self.widened.append("repeat over 1,000")
            lo, top = min(lo, _RE2_MAX_REPEAT), None
        if top is None:
            return "*" if lo == 0 else "+" if lo == 1 else f"{{{lo},}}"
        if (lo, top) == (0, 1):
            return "?"
        return f"{{{lo}}}" if lo == top else f"{{{lo},{top}}}"

    def anchor(self, at: Any, tail: bool) -> str:
        if at in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING):
            return "\\A"
        if at is _c.AT_END_STRING:
            return "\\z"
        if at is _c.AT_END:
            if tail:
                return "\\z"
            self.widened.append("$ before the end")
            return ""
        if at is _c.AT_BOUNDARY:
            return "\\b"  # ASCII word characters, as in Python's re.ASCII
        if at is _c.AT_NON_BOUNDARY:
            return "\\B"
        self.widened.append(f"anchor {at}")
        return ""

    @staticmethod
    def _end_lookahead(av: Any) -> bool:
        direction, body = av
        return bool(
            direction == 1
            and len(body) == 2
            and body[0] == (_c.MAX_REPEAT, (0, 1, [(_c.LITERAL, 10)]))
            and body[1] == (_c.AT, _c.AT_END_STRING)
        )


@dataclass(frozen=True)
class Re2Pattern:
    """A model pattern written for RE2.

    :param text: the RE2 pattern (ASCII; non-capturing; anchored by the caller with ANCHOR_BOTH)
    :param exact: whether RE2 accepts exactly what Python's ``fullmatch`` accepts; when false it
        accepts a superset, and ``widened`` says why
    :param widened: the constructs written more loosely than the original, in order met
    :param classes: the code point set of every single-character item, literals included
    """

    text: str
    exact: bool
    widened: tuple[str, ...]
    classes: tuple[Ranges, ...]


@lru_cache(maxsize=256)
def parse_pattern(pattern: str) -> Any:
    """Python's parse tree of a model pattern (translated first), shared by the matcher's steps.

    :raises re.error: when Python cannot parse the translation
    :raises UnsupportedPattern: when the pattern cannot be translated
    """
    with warnings.catch_warnings():
        # Python warns that "[[", "&&" or "--" in a class may change meaning some day; we
        # read them as re does today, the way compile_pattern does.
        warnings.simplefilter("ignore", FutureWarning)
        return _p.parse(translate_pattern(pattern), re.ASCII)


def re2_pattern(pattern: str, *, cap_repeats: bool = False) -> Re2Pattern:
    """Write a model pattern (Java flavour, as in the model) for RE2.

    :param cap_repeats: make every bounded repeat open-ended (for patterns whose nested bounds
        RE2 refuses); the result is then a superset
    :raises UnsupportedPattern: when the pattern cannot be translated or parsed
    """
    try:
        tree = parse_pattern(pattern)
        writer = _Writer(cap_repeats=cap_repeats)
        text = writer.seq(tree.data, tree.state.flags, True)
    except re.error as exc:
        raise UnsupportedPattern(pattern, str(exc)) from None
    widened = tuple(dict.fromkeys(writer.widened))
    return Re2Pattern(text, not widened, widened, tuple(writer.classes))
