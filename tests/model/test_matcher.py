"""The one matcher of model patterns: the same answers as ``compile_pattern``, in linear time."""

from __future__ import annotations

import time

import pytest
from adversarial import adversarial_values

from harness.model import (
    SEED_SERVICES,
    compile_pattern,
    fallback_patterns,
    load_service,
    pattern_matcher,
    regex_example,
)
from harness.model._linear import linear_in_re

ISO_DATE_TIME = load_service("iotwireless").shape("ISODateTimeString").pattern


def pinned_patterns() -> list[str]:
    return sorted(
        {s.pattern for n in SEED_SERVICES for s in load_service(n).shapes.values() if s.pattern}
    )


def sample_values(pattern: str) -> set[str]:
    values: set[str] = set()
    for length in (1, 2, 3, 6, 11):
        values.update(adversarial_values(pattern, length))
    for seed in range(4):
        example = regex_example(pattern, seed=seed)
        if example is not None:
            values.update({example, example + "\n", example[:-1], example.upper(), example * 2})
    return values


def agrees(pattern: str, value: str) -> bool:
    return pattern_matcher(pattern).fullmatch(value) == (
        compile_pattern(pattern).fullmatch(value) is not None
    )


class TestSameAnswersAsRe:
    """RE2 gets the pattern rewritten with nothing left to its own reading of the syntax."""

    def test_every_pinned_pattern(self) -> None:
        wrong = [(p, v) for p in pinned_patterns() for v in sample_values(p) if not agrees(p, v)]
        assert wrong == []

    @pytest.mark.parametrize(
        ("pattern", "value", "expected"),
        [
            ("abc$", "abc\n", False),  # full match: "$" never lets a final newline through
            ("abc$", "abc", True),
            (r"abc\Z", "abc\n", False),  # Java's \Z, at the end of a full match
            (r"abc\z", "abc", True),
            (r"a\sb", "a\x0bb", True),  # Java's and re.ASCII's \s include \v; RE2's does not
            (r"\d+", "١٢٣", False),
            (r"\w+", "é", False),
            ("(?i)k+", "kK", True),
            ("(?i)k+", "\u212a", False),  # Kelvin sign: RE2 would fold it, Java and re.ASCII not
            ("a.c", "a\u2028c", False),  # Java's "." stops at every line terminator
            ("a.c", "a\u00e9c", True),
            (r"[\p{L}]+", "Größe", True),
            ("a$|b", "a", True),
            ("(?:a$)?\n", "a\n", True),  # "$" before the final newline: not at the end, so re
            ("x{0,1500}", "x" * 1500, True),  # RE2 refuses bounds over 1,000
            ("x{0,1500}", "x" * 1501, False),
            ("(?:[a-z0-9]{1,63}\\.){0,126}", "a." * 126, True),  # nested bounds RE2 refuses
            ("(?:[a-z0-9]{1,63}\\.){0,126}", "a." * 127, False),
            ("a++a", "aaa", False),  # possessive
            ("(?!aws:)[a-z:]+", "aws:x", False),  # lookahead
            ("(a)\\1", "aa", True),  # back-reference
            ("(a|b)\\1", "ab", False),
        ],
    )
    def test_constructs(self, pattern: str, value: str, expected: bool) -> None:
        assert pattern_matcher(pattern).fullmatch(value) is expected
        assert agrees(pattern, value)

    @pytest.mark.parametrize(
        ("pattern", "value"),
        [
            ("[a-z]+", "ab\ud800"),  # no class takes a surrogate
            ("[^/]+", "ab\ud800"),  # a negated class takes them all
            (".+", "a\udfff"),
            (r"\S+", "\udc00"),
            ("[^a]x", "\ud800x"),  # re2
            ("[^a]+[^b]+!", "\ud800\udc00!"),
            (r"[^\x{D800}]+", "\udc00"),  # tells surrogates apart: the one case decided by re
            (r"[^\x{D800}]+", "\ud800"),
        ],
    )
    def test_lone_surrogates(self, pattern: str, value: str) -> None:
        assert agrees(pattern, value)


class TestEngines:
    def test_only_one_pinned_pattern_needs_re(self) -> None:
        # Listed in README ("The model layer and the validator"): the ISO 8601 pattern of IoT
        # Wireless uses lookaheads and back-references, which RE2 does not have.
        assert fallback_patterns(pinned_patterns()) == {
            ISO_DATE_TIME: ("lookaround", "back-reference")
        }

    def test_engines_of_the_pinned_patterns(self) -> None:
        engines = {pattern_matcher(p).engine for p in pinned_patterns()}
        assert engines == {"re", "re2", "re2+re"}
        assert pattern_matcher("^[a-z0-9]+[a-z0-9-\\.]+[a-z0-9]+$").engine == "re2"
        assert pattern_matcher("[a-zA-Z0-9:_-]+").engine == "re"

    def test_refused_patterns_log_nothing(self, capfd: pytest.CaptureFixture[str]) -> None:
        pattern_matcher("(?:[b-z0-9]{1,63}\\.){0,126}")
        assert capfd.readouterr().err == ""

    @pytest.mark.parametrize(
        ("pattern", "linear"),
        [
            ("[a-zA-Z0-9:_-]+", True),
            (r"arn:aws:iot:[a-z0-9-]+:\d{12}:thing/[^/]+", True),
            ("[a-z]+[0-9]*[A-Z]", True),
            ("^[a-z]*$", True),
            ("[a-z]+[a-z0-9]+", False),  # overlapping neighbours: quadratic
            ("[a-z]+[0-9]*[a-z]", False),  # overlap past an optional item
            ("^[a-z0-9]+[a-z0-9-\\.]+[a-z0-9]+$", False),  # the audit's 34 s pattern
            (".*[a-z]*.*", False),
            ("(a|b)+", False),
            ("(?:ab)+", False),
            (r"[^\p{C}]+", False),  # hundreds of ranges: re tests them one by one
        ],
    )
    def test_linear_rule(self, pattern: str, linear: bool) -> None:
        assert linear_in_re(pattern) is linear


class TestTheFallbackPattern:
    """The ISO 8601 pattern: RE2 checks a looser form first, re only sees what passes it."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2024-05-01T10:00:00Z", True),
            ("2024-05-01T10:00:00.123+02:00", True),
            ("20240501T100000Z", True),
            ("2024-0501", False),  # the back-reference: both dashes or neither
            ("202405", False),  # the lookahead: no year followed by two digits
            ("2024-05-01T10:00:00.5:00", False),
        ],
    )
    def test_answers(self, value: str, expected: bool) -> None:
        assert ISO_DATE_TIME is not None
        assert pattern_matcher(ISO_DATE_TIME).fullmatch(value) is expected
        assert agrees(ISO_DATE_TIME, value)

    def test_long_near_misses_are_fast(self) -> None:
        assert ISO_DATE_TIME is not None
        matcher = pattern_matcher(ISO_DATE_TIME)
        digits = "1" * 100_000
        near_misses = [
            f"2024-05-01T10:00:00.{digits}:",
            f"2024-05-01T10:00:00,{digits}!",
            f"2024-05-01T10:00:00.{digits}+02:0",
            f"2024-0501T10:00:00.{digits}",
            f"2024{digits}",
            *adversarial_values(ISO_DATE_TIME, 100_000),
        ]
        for value in near_misses:
            start = time.perf_counter()
            assert not matcher.fullmatch(value)
            assert time.perf_counter() - start < 0.5, value[:40]
