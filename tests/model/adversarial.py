"""Values built to make a backtracking regex engine explode on a model pattern.

The classic attack on a pattern: a long run of characters it accepts, in an order that leaves
many ways to split the run among its repeats, ended by one character that makes the match fail
(``"a" * 2400 + "!"`` against ``^[a-z0-9]+[a-z0-9-\\.]+[a-z0-9]+$``). For every pattern we build
such runs from every character class it contains (one character, and pairs of neighbouring
classes), and from repeated valid examples, each ended by a handful of characters that usually
fail. Used by ``tests/model/test_pattern_scan.py`` and ``perf/validation_stall.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from harness.model import UnsupportedPattern, regex_example
from harness.model._re2_syntax import Ranges, re2_pattern

#: Characters that end a run: newline (``$`` and ``.`` differ there), punctuation, space, NUL,
#: a Java-only line terminator, a letter outside ASCII, a lone surrogate.
ENDINGS = ("\n", "!", " ", "\x00", "\u2028", "é", "\ud800")
_MAX_REPS = 12


def _members(ranges: Ranges) -> list[str]:
    """Up to two members of a set: a printable ASCII one if any, and a non-ASCII one if any."""
    out: list[str] = []
    for lo, hi in ranges:
        start = max(lo, 0x21)
        if start <= min(hi, 0x7E):
            out.append(chr(start))
            break
    for lo, hi in ranges:
        cp = max(lo, 0xA1)
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0xE000
        if cp <= hi:
            out.append(chr(cp))
            break
    return out or ([chr(ranges[0][0])] if ranges else [])


def representatives(pattern: str) -> list[str]:
    """One or two characters of each character class of ``pattern``, in pattern order."""
    seen: dict[str, None] = {}
    for ranges in re2_pattern(pattern).classes:
        for ch in _members(ranges):
            seen.setdefault(ch)
    return list(seen)[: _MAX_REPS * 2]


def adversarial_values(pattern: str, length: int) -> Iterator[str]:
    """Values of exactly ``length`` characters that almost match ``pattern`` (see the module)."""
    reps = representatives(pattern)
    runs = [*reps, *(a + b for a, b in itertools.pairwise(reps))]
    for seed in range(3):
        try:
            example = regex_example(pattern, min_len=1, seed=seed)
        except UnsupportedPattern:
            example = None
        if example:
            runs.append(example)
    for run in dict.fromkeys(runs):
        body = (run * (length // len(run) + 1))[: length - 1]
        for end in ENDINGS:
            yield body + end
