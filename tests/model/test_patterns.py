"""Every pattern of the five pinned models compiles, with AWS's meaning."""

from __future__ import annotations

import re

import pytest

from harness.model import (
    SEED_SERVICES,
    UnsupportedPattern,
    compile_pattern,
    load_service,
    translate_pattern,
)


def all_patterns() -> list[tuple[str, str, str]]:
    found = []
    for service in SEED_SERVICES:
        for shape in load_service(service).shapes.values():
            raw = shape.raw.get("pattern")
            if raw:
                found.append((service, shape.name, raw))
    return found


class TestEveryModelPattern:
    def test_there_are_many(self) -> None:
        assert len(all_patterns()) > 200

    @pytest.mark.parametrize(("service", "shape", "pattern"), all_patterns())
    def test_compiles_or_is_overlaid(self, service: str, shape: str, pattern: str) -> None:
        effective = load_service(service).shape(shape).pattern
        if effective is None:
            # Only the overlay may switch a pattern off, and only this known-broken one.
            assert (service, shape) == ("iotwireless", "CertificatePEM")
            return
        assert isinstance(compile_pattern(effective), re.Pattern)


class TestPythonRejectedPatterns:
    """The patterns Python's re rejects as written, handled explicitly."""

    @pytest.mark.parametrize(
        "pattern",
        [
            r"[^\p{C}]+",
            r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$",
            r"[\p{Upper}\p{Digit}_]+",
            r"[\p{Graph}\x20]*",
            r"[^\p{Cntrl}]*",
            r"[\p{L}\p{N} ._-]+",
            r"[a-zA-Z0-9\s'\x{0022},.:\\\/{$}\[\]=_\-\+]+",
        ],
    )
    def test_python_rejects_them_raw(self, pattern: str) -> None:
        with pytest.raises(re.error):
            re.compile(pattern)
        compile_pattern(pattern)

    def test_unicode_categories(self) -> None:
        tag = compile_pattern(r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$")
        assert tag.fullmatch("Größe 42_é:/=+-@")
        assert tag.fullmatch("日本語")
        assert not tag.fullmatch("bad!")
        assert not tag.fullmatch("tab\there")

    def test_not_control(self) -> None:
        p = compile_pattern(r"[^\p{C}]+")
        assert p.fullmatch("any printable text, ünïcode too")
        assert not p.fullmatch("line\nbreak")
        assert not p.fullmatch("zero\u200bwidth")  # Cf (format) is in C

    def test_java_posix_classes_are_ascii(self) -> None:
        upper = compile_pattern(r"[\p{Upper}\p{Digit}_]+")
        assert upper.fullmatch("ABC_123")
        assert not upper.fullmatch("ÄBC")
        graph = compile_pattern(r"[\p{Graph}\x20]*")
        assert graph.fullmatch("a b ~!")
        assert not graph.fullmatch("é")
        assert not compile_pattern(r"[^\p{Cntrl}]*").fullmatch("bell\x07")

    def test_code_point_escape(self) -> None:
        p = compile_pattern(r"[a-zA-Z0-9\s'\x{0022},.:\\\/{$}\[\]=_\-\+]+")
        assert p.fullmatch('key="value", other:{x}')
        assert not p.fullmatch("semi;colon")

    def test_negated_property_outside_class(self) -> None:
        assert compile_pattern(r"\P{L}+").fullmatch("123 !")
        assert not compile_pattern(r"\P{L}+").fullmatch("a")


class TestAsciiMeaning:
    def test_digit_and_word_are_ascii(self) -> None:
        assert not compile_pattern(r"\d+").fullmatch("١٢٣")  # Arabic-Indic digits
        assert not compile_pattern(r"\w+").fullmatch("é")
        assert compile_pattern(r"\w+").fullmatch("a_1")

    def test_full_match_not_search(self) -> None:
        thing = compile_pattern("[a-zA-Z0-9:_-]+")
        assert thing.fullmatch("thing-1")
        assert not thing.fullmatch("my thing")


class TestTranslation:
    def test_dash_after_class_escape_is_literal(self) -> None:
        with pytest.raises(re.error):
            re.compile(r"[\w-_]+")
        assert compile_pattern(r"[\w-_]+").fullmatch("a-b_c")
        assert not compile_pattern(r"[\w-_]+").fullmatch("a.b")

    def test_absolute_end(self) -> None:
        assert translate_pattern(r"abc\z") == r"abc\Z"
        assert not compile_pattern(r"abc\z").fullmatch("abc\n")

    def test_plain_patterns_unchanged(self) -> None:
        for p in ("^[a-zA-Z0-9-]+$", r"arn:aws:iot:[a-z0-9-]+:\d{12}:thing/[^/]+", "[]a]", "[^]a]"):
            assert translate_pattern(p) == p

    def test_dot_stops_at_every_java_line_terminator(self) -> None:
        dot = compile_pattern("a.+")
        assert dot.fullmatch("a b[.]")
        for terminator in ("\n", "\r", "\u0085", "\u2028", "\u2029"):
            assert not dot.fullmatch(f"a{terminator}b")
        assert compile_pattern("[.]").fullmatch(".")

    def test_huge_numbers_and_lone_surrogates_are_issues_not_crashes(self) -> None:
        iot = load_service("iot")
        (issue,) = iot.validator.validate_shape(iot.shape("Percent"), 10**400)
        assert issue.constraint == "type" and len(issue.message) < 80
        assert iot.validator.validate_shape(iot.shape("MqttPassword"), "\ud800") == []

    def test_failed_compile_does_not_poison_the_cache(self) -> None:
        from harness.model import Validator
        from harness.model._shapes import build_shapes

        shape = build_shapes({"S": {"type": "string", "pattern": "\\p{Bogus}"}})["S"]
        validator = Validator()
        for _ in range(2):
            with pytest.raises(UnsupportedPattern):
                validator.validate_shape(shape, "x")

    def test_unknown_property_is_explicit(self) -> None:
        with pytest.raises(UnsupportedPattern, match="unknown character property"):
            compile_pattern(r"\p{NoSuchThing}")

    def test_negated_property_inside_class_is_explicit(self) -> None:
        with pytest.raises(UnsupportedPattern, match="negated property"):
            compile_pattern(r"[a\P{L}]")

    def test_invalid_regex_is_explicit(self) -> None:
        with pytest.raises(UnsupportedPattern, match="nothing to repeat"):
            compile_pattern("a|${1,4}")
