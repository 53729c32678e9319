"""The one matcher of model patterns: linear time, with AWS's meaning.

Python's :mod:`re` backtracks: ``^[a-z0-9]+[a-z0-9-\\.]+[a-z0-9]+$`` (Proton's ``S3Bucket``) takes
seconds on a few thousand characters that almost match. Every judgement of a value against a
model pattern (the validator, so the emulator and the client preflight; the fuzzer's oracle and
generators) goes through :func:`pattern_matcher`, which matches with RE2 (``google-re2``), whose
time is linear in the length of the value, except for the patterns :mod:`harness.model._linear`
proves :mod:`re` runs in linear time too (engine ``"re"``: RE2's calls cost a microsecond more).

Each pattern is written for RE2 by :mod:`harness.model._re2_syntax` with exactly the meaning
:func:`compile_pattern` gives it (full match, ASCII ``\\d \\w \\s``, Java's ``.`` and classes).
A pattern that uses a construct RE2 lacks (lookarounds, back-references, possessive repeats,
repeat bounds over 1,000, a ``$`` before the end) has engine ``"re2+re"``: RE2 first checks a
looser version of it, and only a value that passes is checked by :mod:`re`, so a value that fails
the looser pattern costs linear time too. :func:`fallback_patterns` lists such patterns.

Lone surrogates (possible in Python strings, not in UTF-8) are swapped for a code point that
every character class of the pattern treats the same way, so the answer does not change.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from functools import cached_property, lru_cache
from typing import Any, Literal

from re2 import _re2

from harness.model._linear import linear_in_re
from harness.model._patterns import UnsupportedPattern, compile_pattern
from harness.model._re2_syntax import Ranges, re2_pattern

__all__ = ["Engine", "PatternMatcher", "fallback_patterns", "pattern_matcher"]

#: ``"re"``: :mod:`re`, for patterns it runs in linear time by construction (see
#: :mod:`harness.model._linear`); ``"re2"``: RE2 alone decides; ``"re2+re"``: RE2 on a looser
#: pattern, then :mod:`re`.
Engine = Literal["re", "re2", "re2+re"]

_ANCHOR_BOTH = _re2.RE2.Anchor.ANCHOR_BOTH
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATES = (0xD800, 0xDFFF)
_WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))


def _options(max_mem: int) -> Any:
    options = _re2.RE2.Options()
    options.log_errors = False  # a refused pattern is reported by us, once, not on stderr
    options.never_capture = True
    options.max_mem = max_mem
    return options


def _compile_re2(text: str) -> Any | None:
    """The compiled RE2 object, or ``None`` if RE2 refuses the pattern."""
    for max_mem in (8 << 20, 64 << 20):  # the default budget, then more for huge classes
        compiled = _re2.RE2(text.encode(), _options(max_mem))
        if compiled.ok():
            return compiled
    return None


def _contains(ranges: Ranges, cp: int) -> bool:
    i = bisect_right(ranges, (cp, 0x10FFFF)) - 1
    return i >= 0 and ranges[i][0] <= cp <= ranges[i][1]


def _uniform_over_surrogates(ranges: Ranges) -> bool:
    lo, hi = _SURROGATES
    return all(b < lo or a > hi or (a <= lo and b >= hi) for a, b in ranges)


class PatternMatcher:
    """Full-matches values against one model pattern in time linear in their length.

    :param pattern: the pattern as the model writes it (Java flavour)
    :raises UnsupportedPattern: when the pattern cannot be translated, parsed or compiled
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        #: Which constructs RE2 lacks, in the order met (empty unless the engine is ``re2+re``).
        self.widened: tuple[str, ...] = ()
        self._classes: tuple[Ranges, ...] = ()
        self._re2: Any = None
        self._re: re.Pattern[str] | None = None
        if linear_in_re(pattern):
            #: ``"re"``, ``"re2"`` or ``"re2+re"`` (see the module's documentation).
            self.engine: Engine = "re"
            self._re = compile_pattern(pattern)
            return
        written = re2_pattern(pattern)
        compiled = _compile_re2(written.text)
        if compiled is None:
            # RE2 refused the nesting of the repeat bounds: open them all up (a looser pattern).
            written = re2_pattern(pattern, cap_repeats=True)
            compiled = _compile_re2(written.text)
        if compiled is None:
            raise UnsupportedPattern(pattern, "RE2 cannot compile even a looser form of it")
        self._re2 = compiled
        self._classes = written.classes
        self.widened = written.widened
        self.engine = "re2" if written.exact else "re2+re"
        if not written.exact:
            self._re = compile_pattern(pattern)

    def __repr__(self) -> str:
        return f"PatternMatcher({self.pattern!r}, engine={self.engine!r})"

    def fullmatch(self, value: str) -> bool:
        """Whether the whole of ``value`` matches the pattern (Java's ``Matcher.matches()``)."""
        if self._re2 is None:  # engine "re": linear by construction
            return self._re is not None and self._re.fullmatch(value) is not None
        try:
            data = value.encode()
        except UnicodeEncodeError:  # lone surrogates: not UTF-8
            return self._fullmatch_surrogates(value)
        if self._re2.Match(_ANCHOR_BOTH, data, 0, len(data))[0][0] < 0:
            return False
        return self._re is None or self._re.fullmatch(value) is not None

    def _fullmatch_surrogates(self, value: str) -> bool:
        stand_in = self._surrogate_stand_in
        if stand_in is None:
            # The pattern tells surrogates apart from every other code point (no model does).
            return compile_pattern(self.pattern).fullmatch(value) is not None
        return self.fullmatch(_SURROGATE.sub(stand_in, value))

    @cached_property
    def _surrogate_stand_in(self) -> str | None:
        """A code point outside the surrogates that every class of the pattern (and ``\\b``'s word
        class) contains exactly when it contains the surrogates; ``None`` if there is none."""
        classes = (*self._classes, _WORD)
        if not all(_uniform_over_surrogates(c) for c in classes):
            return None
        want = [_contains(c, _SURROGATES[0]) for c in classes]
        # Membership is constant between range edges: try the first code point of each stretch.
        edges = {0, *(e for c in classes for a, b in c for e in (a, b + 1))}
        for cp in sorted(edges):
            if cp > 0x10FFFF or _SURROGATES[0] <= cp <= _SURROGATES[1]:
                continue
            if [_contains(c, cp) for c in classes] == want:
                return chr(cp)
        return None


@lru_cache(maxsize=8192)
def pattern_matcher(pattern: str) -> PatternMatcher:
    """The (cached) matcher of a model pattern: ``pattern_matcher(p).fullmatch(value)``.

    :raises UnsupportedPattern: when the pattern cannot be translated, parsed or compiled
    """
    return PatternMatcher(pattern)


def fallback_patterns(patterns: list[str]) -> dict[str, tuple[str, ...]]:
    """Those of ``patterns`` that RE2 cannot decide alone, with the constructs it lacks."""
    out: dict[str, tuple[str, ...]] = {}
    for pattern in patterns:
        try:
            matcher = pattern_matcher(pattern)
        except UnsupportedPattern:
            continue
        if matcher.engine == "re2+re":
            out[pattern] = matcher.widened
    return out
