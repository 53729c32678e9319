"""Focused tests of the harness.fuzz strategies: unions, recursion, sizes, patterns, breakages."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from harness.errors import InvalidArgument
from harness.fuzz import Breakage, invalid_params, valid_params, valid_values
from harness.fuzz._regex import pattern_strings
from harness.model import SEED_SERVICES, ServiceModel, Shape, Validator, compile_pattern
from harness.model import load_service as load

SMALL = settings(max_examples=40, deadline=None, database=None)
SEARCH = settings(max_examples=2000, deadline=None, database=None)  # for find(): rare examples

#: A small service that has what the pinned inputs lack: unions with several members, recursion,
#: a required cycle, an operation without input, bounded maps and lists.
SYNTHETIC_MODEL: dict[str, Any] = {
    "metadata": {"protocol": "rest-json"},
    "operations": {
        "Ping": {"http": {"method": "GET", "requestUri": "/ping"}},
        "Put": {"input": {"shape": "PutRequest"}},
        "Choose": {"input": {"shape": "Choice"}},
        "Tag": {"input": {"shape": "TagRequest"}},
    },
    "shapes": {
        "PutRequest": {
            "type": "structure",
            "required": ["name", "items"],
            "members": {
                "name": {"shape": "Name"},
                "choice": {"shape": "Choice"},
                "tree": {"shape": "Node"},
                "tags": {"shape": "TagMap"},
                "items": {"shape": "Counts"},
                "level": {"shape": "Level"},
                "ratio": {"shape": "Ratio"},
                "big": {"shape": "Big"},
                "when": {"shape": "When"},
                "payload": {"shape": "Payload"},
                "flag": {"shape": "Flag"},
                "doc": {"shape": "Doc"},
            },
        },
        "TagRequest": {
            "type": "structure",
            "required": ["tags"],
            "members": {"tags": {"shape": "TagMap"}},
        },
        "Choice": {
            "type": "structure",
            "union": True,
            "members": {
                "text": {"shape": "Text"},
                "count": {"shape": "Count"},
                "pair": {"shape": "Pair"},
                "tree": {"shape": "Node"},
            },
        },
        "Pair": {
            "type": "structure",
            "required": ["left"],
            "members": {"left": {"shape": "Name"}, "right": {"shape": "Count"}},
        },
        "Node": {
            "type": "structure",
            "required": ["label"],
            "members": {
                "label": {"shape": "Name"},
                "children": {"shape": "Nodes"},
                "next": {"shape": "Node"},
                "attributes": {"shape": "NodeMap"},
            },
        },
        "Nodes": {"type": "list", "member": {"shape": "Node"}, "max": 4},
        "NodeMap": {"type": "map", "key": {"shape": "Name"}, "value": {"shape": "Node"}},
        "Loop": {
            "type": "structure",
            "required": ["again"],
            "members": {"again": {"shape": "Loop"}},
        },
        "TagMap": {
            "type": "map",
            "key": {"shape": "TagKey"},
            "value": {"shape": "Text"},
            "min": 1,
            "max": 3,
        },
        "Counts": {"type": "list", "member": {"shape": "Count"}, "min": 2, "max": 5},
        "Name": {"type": "string", "min": 3, "max": 10, "pattern": "[a-z]+"},
        "TagKey": {"type": "string", "min": 1, "max": 8, "pattern": "^[a-z0-9]+$"},
        "Text": {"type": "string", "max": 5},
        "Level": {"type": "string", "enum": ["LOW", "HIGH"], "pattern": "[A-Z]+", "max": 4},
        "Count": {"type": "integer", "min": 1, "max": 9},
        "Big": {"type": "long", "min": -5, "max": 4611686018427387904},
        "Ratio": {"type": "double", "min": 0.5, "max": 2.5},
        "When": {"type": "timestamp"},
        "Payload": {"type": "blob", "min": 2, "max": 4},
        "Flag": {"type": "boolean"},
        "Doc": {"type": "structure", "document": True},
    },
}
SYNTHETIC = ServiceModel("synthetic", SYNTHETIC_MODEL, {}, "inline")


def shape(name: str) -> Shape:
    return SYNTHETIC.shape(name)


def nesting(value: Any) -> int:
    """How deeply structures, lists and maps nest in ``value``."""
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    return 0


def check_strings(model: ServiceModel, strings: list[Shape]) -> None:
    """Draw a few values for each string shape and validate them."""

    @settings(max_examples=4, deadline=None, database=None)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        for target in strings:
            value = data.draw(valid_values(target), label=target.name)
            assert model.validator.validate_shape(target, value) == [], target.name

    check()


class TestUnions:
    @SMALL
    @given(value=valid_values(shape("Choice")))
    def test_exactly_one_member_is_set(self, value: dict[str, Any]) -> None:
        assert len(value) == 1
        assert next(iter(value.values())) is not None
        assert Validator().validate_shape(shape("Choice"), value) == []

    def test_every_member_gets_drawn(self) -> None:
        seen: set[str] = set()

        @settings(max_examples=100, deadline=None, database=None)
        @given(valid_values(shape("Choice")))
        def collect(value: dict[str, Any]) -> None:
            seen.update(value)

        collect()
        assert seen == set(shape("Choice").members)

    def test_the_pinned_input_union(self) -> None:
        union = load("proton").shape("TemplateVersionSourceInput")
        assert union.union
        value = find(valid_values(union), lambda v: True, settings=SMALL)
        assert list(value) == ["s3"]

    @pytest.mark.parametrize("extra", [False, True], ids=["none", "two"])
    def test_breaking_a_union_sets_none_or_two_members(self, extra: bool) -> None:
        op = SYNTHETIC.operation("Choose")

        def chosen(drawn: tuple[dict[str, Any], Breakage]) -> bool:
            params, breakage = drawn
            return breakage.constraint == "union" and (len(params) == 2) == extra

        params, breakage = find(invalid_params(op), chosen, settings=SEARCH)
        assert breakage.path == ""
        assert [(i.path, i.constraint) for i in op.validate(params)] == [("", "union")]


class TestRecursion:
    @pytest.mark.parametrize("max_depth", [0, 1, 2, 3])
    def test_recursive_shapes_terminate(self, max_depth: int) -> None:
        node = shape("Node")

        @SMALL
        @given(valid_values(node, max_depth=max_depth))
        def check(value: dict[str, Any]) -> None:
            assert Validator().validate_shape(node, value) == []
            # Below max_depth only required members (a label): one more level at most.
            assert nesting(value) <= max_depth + 1

        check()

    def test_the_deepest_values_do_get_drawn(self) -> None:
        find(valid_values(shape("Node"), max_depth=2), lambda v: nesting(v) == 3, settings=SEARCH)

    def test_a_cycle_of_required_members_is_refused(self) -> None:
        with pytest.raises(InvalidArgument, match="Loop"):
            valid_values(shape("Loop"))

    def test_negative_limits_are_refused(self) -> None:
        with pytest.raises(InvalidArgument):
            valid_values(shape("Node"), max_depth=-1)
        with pytest.raises(InvalidArgument):
            valid_values(shape("Node"), max_collection=-1)


class TestSizes:
    @SMALL
    @given(data=st.data(), cap=st.integers(0, 6))
    def test_lists_and_maps_honour_min_max_and_the_cap(self, data: st.DataObject, cap: int) -> None:
        items = data.draw(valid_values(shape("Counts"), max_collection=cap))
        tags = data.draw(valid_values(shape("TagMap"), max_collection=cap))
        # min 2, max 5 (min 1, max 3): at most the cap, unless the minimum asks for more.
        assert 2 <= len(items) <= max(2, min(5, cap))
        assert 1 <= len(tags) <= max(1, min(3, cap))

    @SMALL
    @given(data=st.data())
    def test_scalars_honour_their_bounds(self, data: st.DataObject) -> None:
        assert 3 <= len(data.draw(valid_values(shape("Name")))) <= 10
        assert 1 <= data.draw(valid_values(shape("Count"))) <= 9
        assert -5 <= data.draw(valid_values(shape("Big"))) <= 2**62
        assert 0.5 <= data.draw(valid_values(shape("Ratio"))) <= 2.5
        assert 2 <= len(data.draw(valid_values(shape("Payload")))) <= 4
        assert data.draw(valid_values(shape("Level"))) in ("LOW", "HIGH")
        assert data.draw(valid_values(shape("When"))).tzinfo is not None

    @pytest.mark.parametrize(
        ("service", "name"),
        [
            ("iot", "CertificateId"),  # (0x)?[a-fA-F0-9]+, exactly 64 characters
            ("iot", "ClientToken"),  # \S{36,64}, 36 to 64
            ("iot-managed-integrations", "AccountAssociationArn"),  # an ARN of at least 67
            ("iotwireless", "FileDescriptor"),  # base64 quads, at most 332
            ("iotwireless", "MacAddress"),  # 12 to 17, six hex pairs with optional separators
        ],
    )
    def test_tight_lengths_with_patterns(self, service: str, name: str) -> None:
        target = load(service).shape(name)

        @SMALL
        @given(valid_values(target))
        def check(value: str) -> None:
            assert Validator().validate_shape(target, value) == []

        check()


class TestPatterns:
    def test_unicode_properties_generate_matching_strings(self) -> None:
        tag_key = load("iot").shape("TagKey")  # ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$, 1 to 128
        assert tag_key.pattern is not None and "\\p{L}" in tag_key.pattern
        regex = compile_pattern(tag_key.pattern)

        @SMALL
        @given(valid_values(tag_key))
        def check(value: str) -> None:
            assert 1 <= len(value) <= 128
            assert regex.fullmatch(value)

        check()
        # Not just ASCII: letters, numbers and spaces from the whole of Unicode show up too.
        beyond = find(
            valid_values(tag_key), lambda v: any(ord(c) > 127 for c in v), settings=SEARCH
        )
        assert regex.fullmatch(beyond)

    def test_patterns_without_parse_fall_back_to_from_regex(self) -> None:
        iso = load("iotwireless").shape("ISODateTimeString")  # lookahead and back-references
        assert iso.pattern is not None and pattern_strings(iso.pattern) is None

        @settings(max_examples=10, deadline=None, database=None)
        @given(valid_values(iso))
        def check(value: str) -> None:
            assert Validator().validate_shape(iso, value) == []

        check()

    @pytest.mark.parametrize("service", SEED_SERVICES)
    def test_every_string_shape_of_the_models(self, service: str) -> None:
        model = load(service)
        strings = [s for s in model.shapes.values() if s.type == "string"]
        for start in range(0, len(strings), 25):  # 25 shapes per test case: entropy budget
            check_strings(model, strings[start : start + 25])

    def test_exact_lengths(self) -> None:
        base64 = pattern_strings("^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
        assert base64 is not None
        # Quads, then optionally a padded pair or triple (a quad too): multiples of four.
        assert base64.lengths(12) == ((0, 0), (4, 4), (8, 8), (12, 12))
        either = pattern_strings("[0-9]{2,3}|x")
        assert either is not None
        assert either.lengths(10) == ((1, 3),)

    def test_patterns_whose_strings_would_not_match_are_not_used(self) -> None:
        # A mid-pattern anchor: the length analysis sees "ab", but nothing matches.
        assert pattern_strings("a$b") is None
        assert pattern_strings("(^$)|^[0-9]+$") is not None  # anchors at the edges are fine


class TestOperations:
    @SMALL
    @given(data=st.data())
    def test_synthetic_valid_and_invalid_params(self, data: st.DataObject) -> None:
        op = SYNTHETIC.operation("Put")
        assert op.validate(data.draw(valid_params(op))) == []
        params, breakage = data.draw(invalid_params(op))
        found = [(i.path, i.constraint) for i in op.validate(params)]
        assert found == [(breakage.path, breakage.constraint)], breakage.description

    def test_every_constraint_kind_gets_broken(self) -> None:
        seen: set[str] = set()
        put, choose = SYNTHETIC.operation("Put"), SYNTHETIC.operation("Choose")

        @settings(max_examples=300, deadline=None, database=None)
        @given(st.data())
        def collect(data: st.DataObject) -> None:
            for op in (put, choose):
                params, breakage = data.draw(invalid_params(op))
                assert [(i.path, i.constraint) for i in op.validate(params)] == [
                    (breakage.path, breakage.constraint)
                ]
                seen.add(breakage.constraint)

        collect()
        kinds = {"required", "type", "min", "max", "pattern", "enum", "union", "unknown"}
        assert seen == kinds

    def test_an_operation_without_input(self) -> None:
        op = SYNTHETIC.operation("Ping")
        assert find(valid_params(op), lambda v: True, settings=SMALL) == {}
        params, breakage = find(invalid_params(op), lambda v: True, settings=SMALL)
        assert breakage.constraint == "unknown"
        assert [(i.path, i.constraint) for i in op.validate(params)] == [("", "unknown")]

    def test_map_key_breakages_name_the_new_key(self) -> None:
        op = SYNTHETIC.operation("Tag")
        seen: list[str] = []

        @settings(max_examples=300, deadline=None, database=None)
        @given(invalid_params(op))
        def check(drawn: tuple[dict[str, Any], Breakage]) -> None:
            params, breakage = drawn
            if breakage.path.startswith("tags[") and breakage.constraint != "unknown":
                keys = {f"tags[{orjson.dumps(key).decode()}]" for key in params["tags"]}
                assert breakage.path in keys
                seen.append(breakage.constraint)

        check()
        # TagKey is 1 to 8 of [a-z0-9]: too long and off the pattern. Too short is out of reach
        # (the pattern needs a character), so the strategy never breaks it.
        assert {"max", "pattern"} <= set(seen)
        assert "min" not in seen

    def test_breakage_is_a_frozen_slotted_dataclass(self) -> None:
        breakage = Breakage("tags[0].key", "pattern", "off the pattern")
        assert not hasattr(breakage, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            breakage.path = "x"  # type: ignore[misc]
