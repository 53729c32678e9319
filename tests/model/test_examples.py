"""example_value and regex_example build valid values for every shape and pattern of the models."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from harness.errors import ModelError
from harness.model import (
    SEED_SERVICES,
    Shape,
    UnsupportedPattern,
    Validator,
    compile_pattern,
    example_value,
    load_service,
    regex_example,
)
from harness.model._shapes import build_shapes

#: (service, shape) -> why no valid value exists. Empty: every shape of the five models works.
IMPOSSIBLE: dict[tuple[str, str], str] = {}

ARN = r"^arn:aws(-[a-z]+)*:iot:[a-z0-9-]+:[0-9]{12}:thing/[a-zA-Z0-9:_-]+$"


def valid(pattern: str, text: str | None, lo: int = 0, hi: int | None = None) -> bool:
    return (
        text is not None
        and compile_pattern(pattern).fullmatch(text) is not None
        and lo <= len(text) <= (len(text) if hi is None else hi)
    )


def shapes_of(raw: dict[str, dict[str, Any]]) -> dict[str, Shape]:
    return build_shapes(raw)


class TestEveryModel:
    @pytest.mark.parametrize("service", SEED_SERVICES)
    def test_every_shape_has_a_valid_example(self, service: str) -> None:
        model = load_service(service)
        broken = []
        for shape in model.shapes.values():
            if (service, shape.name) in IMPOSSIBLE:
                continue
            for kwargs in ({}, {"seed": 7, "required_only": True}, {"seed": 3, "max_depth": 1}):
                try:
                    issues = model.validator.validate_shape(shape, example_value(shape, **kwargs))
                except ModelError as exc:
                    broken.append(f"{shape.name} {kwargs}: {exc}")
                    continue
                broken.extend(f"{shape.name} {kwargs}: {issue}" for issue in issues)
        assert broken == []

    @pytest.mark.parametrize("service", SEED_SERVICES)
    def test_every_pattern_has_a_matching_example(self, service: str) -> None:
        found = {
            (s.pattern, s.min, s.max) for s in load_service(service).shapes.values() if s.pattern
        }
        assert found
        for pattern, lo, hi in found:
            low, high = int(lo or 0), None if hi is None else int(hi)
            assert valid(pattern, regex_example(pattern)), pattern
            for seed in (0, 1, 12345):
                text = regex_example(pattern, min_len=low, max_len=high, seed=seed)
                assert valid(pattern, text, low, high), (pattern, lo, hi, seed, text)

    def test_all_shapes_take_well_under_a_second(self) -> None:
        shapes = [s for name in SEED_SERVICES for s in load_service(name).shapes.values()]
        start = time.perf_counter()
        for shape in shapes:
            example_value(shape, seed=11)
        assert time.perf_counter() - start < 2.0


class TestRegexExample:
    def test_arn(self) -> None:
        assert regex_example(ARN) == "arn:aws:iot:a:012345678901:thing/a"
        long = regex_example(ARN, min_len=60, max_len=64)
        assert valid(ARN, long, 60, 64)
        assert long is not None and long.startswith("arn:aws:iot:a:012345678901:thing/")

    @pytest.mark.parametrize(
        "pattern",
        [
            "arn:aws(-cn|-us-gov|-iso-b|-iso)?:acm:[a-z]{2}-(gov-|iso-|isob-)?[a-z]{4,9}-\\d{1}"
            ":\\d{12}:certificate/[a-zA-Z0-9/-]+",
            "arn:[^:]*:greengrass:[^:]*:(aws|[0-9]+):components:[^:]+:versions:[^:]+",
            "arn:aws:iotmanagedintegrations:[0-9a-zA-Z-]+:[0-9]+:account-association/[0-9a-zA-Z]+",
        ],
    )
    def test_model_arns(self, pattern: str) -> None:
        for seed in range(5):
            assert valid(pattern, regex_example(pattern, min_len=67, max_len=1011, seed=seed))

    def test_unicode_property_tag_pattern_gives_readable_ascii(self) -> None:
        pattern = r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$"
        assert regex_example(pattern, min_len=1, max_len=128) == "a"
        text = regex_example(pattern, min_len=128, max_len=128, seed=99)
        assert valid(pattern, text, 128, 128) and text is not None and text.isascii()
        assert valid("[^\\p{C}]+", regex_example("[^\\p{C}]+", min_len=5), 5)

    def test_bounded_length(self) -> None:
        pattern = "^[a-zA-Z0-9-]+$"
        assert regex_example(pattern, min_len=1, max_len=64) == "a"
        assert regex_example(pattern, min_len=3) == "abc"
        assert valid(pattern, regex_example(pattern, min_len=64, max_len=64), 64, 64)
        assert regex_example(r"\S{36,64}", min_len=36, max_len=64) == (
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
        )
        assert valid(r"\S{36,64}", regex_example(r"\S{36,64}", min_len=50), 50, 64)
        assert regex_example(r"[0-9]{12}") == "012345678901"

    def test_seeds_differ_and_repeat(self) -> None:
        pattern = "[a-zA-Z0-9:_-]+"
        texts = [regex_example(pattern, min_len=1, max_len=128, seed=s) for s in range(500)]
        assert len(set(texts)) == 500
        assert all(valid(pattern, t, 1, 128) for t in texts)
        assert texts[:3] == ["a", "b", "c"]
        assert regex_example(pattern, seed=10**9) == regex_example(pattern, seed=10**9)
        # A large seed needs more room: the string grows, but only within max_len.
        assert len(regex_example(pattern, seed=10**9) or "") > 1
        assert valid(pattern, regex_example(pattern, max_len=1, seed=10**9), 1, 1)

    def test_lookaheads_and_backreferences(self) -> None:
        iso = load_service("iotwireless").shape("ISODateTimeString").pattern
        assert iso is not None and "(?!" in iso
        assert valid(iso, regex_example(iso))
        assert regex_example("^(?!abc)[a-z]{3}$") == "bcd"
        assert regex_example("^(ab|cd)-\\1$", seed=1) == "cd-cd"
        base64 = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
        assert valid(base64, regex_example(base64, min_len=6), 6)

    def test_alternatives_and_empty(self) -> None:
        assert regex_example("$|^(https):\\/\\/.*") == ""
        assert regex_example("$|^(https):\\/\\/.*", min_len=1) == "https://"
        assert regex_example("(p0|p0\\.1|p1)", seed=1) == "p1"

    @pytest.mark.parametrize(
        ("pattern", "lo", "hi"),
        [("[a-z]{4}", 5, None), ("[a-z]{4}", 0, 3), ("^(?!a)a$", 0, None), ("(abcd)+", 5, 7)],
    )
    def test_none_when_impossible(self, pattern: str, lo: int, hi: int | None) -> None:
        assert regex_example(pattern, min_len=lo, max_len=hi) is None

    def test_untranslatable_pattern_raises(self) -> None:
        with pytest.raises(UnsupportedPattern):
            regex_example(r"\p{NoSuchProperty}")


class TestExampleValue:
    def test_scalars(self) -> None:
        shapes = shapes_of(
            {
                "S": {"type": "string", "min": 10, "max": 12},
                "Short": {"type": "string", "max": 3},
                "E": {"type": "string", "enum": ["ON", "OFF"]},
                "I": {"type": "integer", "min": 5, "max": 9},
                "Neg": {"type": "integer", "max": -3},
                "L": {"type": "long"},
                "D": {"type": "double", "min": 0.5},
                "B": {"type": "boolean"},
                "T": {"type": "timestamp"},
                "Blob": {"type": "blob", "min": 10},
                "Doc": {"type": "structure", "document": True},
            }
        )
        got = {name: example_value(shape) for name, shape in shapes.items()}
        assert got == {
            "S": "exampleexa",
            "Short": "exa",
            "E": "ON",
            "I": 5,
            "Neg": -3,
            "L": 1,
            "D": 0.5,
            "B": False,
            "T": datetime(2026, 1, 1, tzinfo=UTC),
            "Blob": b"exampleexa",
            "Doc": {},
        }
        assert example_value(shapes["E"], seed=1) == "OFF"
        assert example_value(shapes["S"], seed=4) == "example4ex"

    def test_structures_lists_maps(self) -> None:
        shapes = shapes_of(
            {
                "Thing": {
                    "type": "structure",
                    "required": ["name"],
                    "members": {
                        "name": {"shape": "Name"},
                        "ids": {"shape": "Ids"},
                        "attrs": {"shape": "Attrs"},
                    },
                },
                "Name": {"type": "string", "pattern": "[a-zA-Z0-9:_-]+", "min": 1, "max": 128},
                "Ids": {"type": "list", "member": {"shape": "Name"}, "min": 3, "max": 5},
                "Attrs": {"type": "map", "key": {"shape": "Name"}, "value": {"shape": "Name"}},
            }
        )
        thing = shapes["Thing"]
        assert example_value(thing) == {"name": "a", "ids": ["a", "b", "c"], "attrs": {"a": "a"}}
        assert example_value(thing, required_only=True, seed=2) == {"name": "c"}
        assert Validator().validate_shape(thing, example_value(thing, seed=5)) == []

    def test_recursion_ends(self) -> None:
        shapes = shapes_of(
            {
                "Node": {
                    "type": "structure",
                    "required": ["children"],
                    "members": {"children": {"shape": "Nodes"}, "next": {"shape": "Node"}},
                },
                "Nodes": {"type": "list", "member": {"shape": "Node"}},
                "Expr": {
                    "type": "structure",
                    "union": True,
                    "members": {f"m{i}": {"shape": "Expr"} for i in range(6)}
                    | {"leaf": {"shape": "Leaf"}},
                },
                "Leaf": {"type": "integer"},
                "Loop": {
                    "type": "structure",
                    "union": True,
                    "members": {"again": {"shape": "Loop"}},
                },
            }
        )
        node = example_value(shapes["Node"], max_depth=2)
        assert node["next"]["next"] == {"children": []}
        assert example_value(shapes["Expr"]) == {"m0": {"m0": {"m0": {"leaf": 1}}}}
        start = time.perf_counter()
        with pytest.raises(ModelError, match="'Loop'"):
            example_value(shapes["Loop"])
        assert time.perf_counter() - start < 1.0

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ({"type": "string", "min": 5, "max": 3}, "minimum 5 is above maximum 3"),
            ({"type": "string", "pattern": "[a-z]{4}", "max": 3}, "cannot build a string"),
            ({"type": "string", "enum": ["LONG"], "max": 2}, "no enum value fits"),
            ({"type": "integer", "min": 2**40}, "no integer lies in"),
        ],
    )
    def test_impossible_shapes_raise(self, raw: dict[str, Any], reason: str) -> None:
        with pytest.raises(ModelError, match=re.escape(reason)) as err:
            example_value(shapes_of({"Bad": raw})["Bad"])
        assert "'Bad'" in str(err.value)

    def test_required_endless_recursion_raises(self) -> None:
        raw = {"type": "structure", "required": ["me"], "members": {"me": {"shape": "Self"}}}
        with pytest.raises(ModelError, match=r"'Self'.*recurse"):
            example_value(shapes_of({"Self": raw})["Self"])

    def test_map_keys_differ(self) -> None:
        shapes = shapes_of(
            {
                "M": {"type": "map", "key": {"shape": "K"}, "value": {"shape": "V"}, "min": 2},
                "K": {"type": "string", "enum": ["a", "b", "c"]},
                "V": {"type": "string"},
                "Few": {"type": "map", "key": {"shape": "One"}, "value": {"shape": "V"}, "min": 2},
                "One": {"type": "string", "enum": ["only"]},
            }
        )
        assert example_value(shapes["M"]) == {"a": "example", "b": "example1"}
        with pytest.raises(ModelError, match="distinct keys"):
            example_value(shapes["Few"])
