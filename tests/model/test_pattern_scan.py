"""Every pattern of the five pinned models, attacked: no value takes more than a few milliseconds.

With Python's backtracking ``re`` a 2,401-character Proton ``S3Bucket`` froze the emulator for
34 s, and ten 800-character managed-integrations metadata values ending in a newline for 14.5 s.
The values here are built the same way (``tests/adversarial.py``) for every pattern: at the longest
length the model allows (or 10,000 characters where it sets none), matched directly, and at 2x
and 10x that length through the validator, which must reject them on their length alone.

The limit is generous for a loaded machine; the old code takes seconds on these values. A value
over the limit is measured again (best of four) before it counts, so a descheduled process does
not fail the test, while a slow matcher still does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from adversarial import adversarial_values

from harness.model import SEED_SERVICES, Validator, load_service, pattern_matcher
from harness.model._shapes import Shape

LIMIT_S = 0.005  # "a few milliseconds"...
PER_CHAR_S = 100e-9  # ...plus linear time, at 10 MB/s, for the few shapes that allow 100,000s
UNBOUNDED = 10_000  # the length tried for patterns of shapes without a maximum


def string_shapes() -> list[tuple[str, Shape]]:
    return [
        (service, shape)
        for service in SEED_SERVICES
        for shape in load_service(service).shapes.values()
        if shape.type == "string" and shape.pattern
    ]


def longest_allowed() -> dict[str, int]:
    """Each pattern, with the longest length any shape using it allows."""
    out: dict[str, int] = {}
    for _, shape in string_shapes():
        assert shape.pattern is not None
        allowed = UNBOUNDED if shape.max is None else int(shape.max)
        out[shape.pattern] = max(out.get(shape.pattern, 0), allowed)
    return out


def limit(length: int) -> float:
    return LIMIT_S + PER_CHAR_S * length


def slowest(check: Callable[[str], object], values: list[str]) -> tuple[float, str]:
    """The worst time of ``check`` over ``values`` relative to :func:`limit` (1.0: at the limit),
    outliers re-measured (best of four)."""
    worst, worst_value = 0.0, ""
    for value in values:
        elapsed = _timed(check, value)
        if elapsed > limit(len(value)):
            elapsed = min(elapsed, *(_timed(check, value) for _ in range(3)))
        share = elapsed / limit(len(value))
        if share > worst:
            worst, worst_value = share, value
    return worst, worst_value


def _timed(check: Callable[[str], object], value: str) -> float:
    start = time.perf_counter()
    check(value)
    return time.perf_counter() - start


class TestEveryPinnedPattern:
    def test_there_are_many(self) -> None:
        assert len(longest_allowed()) > 100

    @pytest.mark.parametrize(("pattern", "length"), sorted(longest_allowed().items()))
    def test_adversarial_values_at_the_longest_allowed_length(
        self, pattern: str, length: int
    ) -> None:
        values = list(adversarial_values(pattern, length))
        assert values and all(len(v) == length for v in values)
        worst, value = slowest(pattern_matcher(pattern).fullmatch, values)
        assert worst < 1, f"{worst:.1f}x the limit on {value[:40]!r}... ({len(value)} chars)"


class TestValuesOverTheirLength:
    """A value that fails its length check is never matched against the pattern."""

    @pytest.mark.parametrize("factor", [2, 10])
    def test_too_long_values_cost_nothing(self, factor: int) -> None:
        for service, shape in string_shapes():
            if shape.max is None:
                continue
            assert shape.pattern is not None
            validator = Validator()
            values = list(adversarial_values(shape.pattern, int(shape.max) * factor))

            def check(value: str, shape: Shape = shape, validator: Validator = validator) -> None:
                (issue,) = validator.validate_shape(shape, value)
                assert issue.constraint == "max"

            worst, value = slowest(check, values)
            assert worst < 1, f"{service} {shape.name}: {worst:.1f}x the limit on {value[:40]!r}"


class TestTheAuditInputs:
    def test_long_proton_bucket_name(self) -> None:
        op = load_service("proton").operation("CreateEnvironmentTemplateVersion")
        params = {
            "templateName": "t",
            "source": {"s3": {"bucket": "a" * 2400 + "!", "key": "k"}},
        }
        start = time.perf_counter()
        issues = op.validate(params)
        assert time.perf_counter() - start < 0.05
        assert [(i.path, i.constraint) for i in issues] == [("source.s3.bucket", "max")]

    def test_metadata_values_ending_in_a_newline(self) -> None:
        service = load_service("iot-managed-integrations")
        shape = service.shape("MetaData")
        value = {f"k{i}": "x" * 799 + "\n" for i in range(10)}
        start = time.perf_counter()
        issues = service.validator.validate_shape(shape, value)
        assert time.perf_counter() - start < 0.05
        assert {i.constraint for i in issues} == {"pattern"} and len(issues) == 10
