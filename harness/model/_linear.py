"""Which model patterns Python's :mod:`re` full-matches in linear time, by construction.

RE2 is linear but each call costs a few microseconds more than :mod:`re` on short values, and
most model patterns are plain sequences (``arn:aws:iot:[a-z0-9-]+:\\d{12}:thing/[^/]+``) on which
backtracking cannot explode. This module recognises them, soundly, so that they keep :mod:`re`'s
speed; every other pattern is matched by RE2.

**The rule.** After translation and parsing, the pattern is a flat sequence (groups without a
quantifier are inlined) of anchors and of single-character items (a literal, a class, ``.``),
each alone or under one quantifier, with no alternation or lookaround. For every item whose
count can vary, its characters are disjoint from those of the items that can come right after
it: the following items up to and including the first that must match at least one character.
And no class has more than 16 ranges of code points (a Unicode category, tested range by range,
would make each character cost microseconds).

**Why that is linear.** ``fullmatch`` starts at position 0 only. A repeated single character
compiles to one counting loop that takes its characters (greedily or lazily) and then backs off
or extends one character at a time, re-trying the rest of the pattern each time. On every retry
the next character is one the loop itself accepts, which by the rule no item that could
consume it next accepts: each optional item in between takes zero characters and the first
mandatory one fails at once, so a retry costs O(k) for k items and never consumes a character.
Only the first, forward pass consumes anything; the retries number at most the characters the
loops took, at most n. The total is O(n * k).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from harness.model._patterns import UnsupportedPattern
from harness.model._re2_syntax import Ranges, char_ranges, intersects, parse_pattern

if TYPE_CHECKING:
    import sre_constants as _c
    from collections.abc import Sequence
else:  # the public names are deprecated aliases of these since Python 3.11
    import re._constants as _c

__all__ = ["linear_in_re"]

# re tests a character against a class in time that can grow with its number of ranges (a
# Unicode category is hundreds of them: 3.6 µs per character for [^\p{C}]); those go to RE2.
_MAX_RANGES = 16
_REPEATS = (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT)
# (characters, least count, most count); anchors are None: zero-width, checked in O(1).
_Item = tuple[Ranges, int, float] | None


def _flatten(items: Sequence[tuple[Any, Any]], flags: int, out: list[_Item]) -> bool:
    for op, av in items:
        if op is _c.AT:
            out.append(None)
            continue
        if op is _c.SUBPATTERN:
            _, add, remove, body = av
            if not _flatten(body, (flags | add) & ~remove, out):
                return False
            continue
        lo, hi, body = (av[0], av[1], av[2]) if op in _REPEATS else (1, 1, [(op, av)])
        if len(body) != 1:
            return False
        inner_op, inner_av = body[0]
        chars = char_ranges(inner_op, inner_av, flags)
        if chars is None or len(chars) > _MAX_RANGES:
            return False
        out.append((chars, lo, float("inf") if hi is _c.MAXREPEAT else hi))
    return True


@lru_cache(maxsize=8192)
def linear_in_re(pattern: str) -> bool:
    """Whether :mod:`re` full-matches ``pattern`` in time linear in the value (see the rule)."""
    try:
        tree = parse_pattern(pattern)
    except (re.error, UnsupportedPattern):
        return False
    items: list[_Item] = []
    if not _flatten(tree.data, tree.state.flags, items):
        return False
    for i, item in enumerate(items):
        if item is None or item[1] == item[2]:
            continue
        for after in items[i + 1 :]:
            if after is None:
                continue
            if intersects(item[0], after[0]):
                return False
            if after[1] >= 1:
                break
    return True
