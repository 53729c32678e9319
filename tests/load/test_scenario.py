"""Scenarios (weights, placeholders, validation, files and overrides) and rate profiles."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InvalidArgument
from harness.load import RateProfile, load_scenario, parse_duration, parse_ramp, parse_scenario

MIX = [
    {
        "operation": "greengrassv2:CreateDeployment",
        "weight": 80,
        "params": {"targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/g-{n}"},
    },
    {"service": "greengrassv2", "operation": "list_deployments", "weight": 20},
]


def parse(**data: Any) -> Any:
    return parse_scenario({"rate": 10, "duration": "5s", "operations": MIX, **data})


class TestProfile:
    def test_constant_rate(self) -> None:
        profile = RateProfile(rate=50, duration=3)
        assert profile.total == 150
        assert [profile.time_of(i) for i in (0, 1, 149)] == [0.0, 0.02, 2.98]
        assert profile.mean_rate == 50

    def test_ramp_from_zero_is_quadratic_then_linear(self) -> None:
        profile = RateProfile(rate=100, duration=3, ramp=2)
        assert profile.count_by(2) == 100 and profile.total == 200
        assert profile.time_of(25) == pytest.approx(1.0)  # N(t) = 25 t^2
        assert profile.time_of(100) == pytest.approx(2.0)
        assert profile.time_of(150) == pytest.approx(2.5)
        assert profile.rate_at(1.0) == 50

    def test_ramp_between_rates(self) -> None:
        profile = RateProfile(rate=500, duration=40, ramp=30, ramp_from=100)
        assert profile.count_by(30) == pytest.approx(9000)
        for i in (1, 10, 4000, 8999, 9000, 12000):
            assert profile.count_by(profile.time_of(i)) == pytest.approx(i)

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ({"rate": 0, "duration": 1}, "rate must be positive"),
            ({"rate": 1, "duration": 0}, "duration must be positive"),
            ({"rate": 1, "duration": 1, "ramp": 2}, "must fit"),
        ],
    )
    def test_bad_profiles(self, args: dict[str, float], message: str) -> None:
        with pytest.raises(InvalidArgument, match=message):
            RateProfile(**args)

    def test_durations_and_ramps(self) -> None:
        assert [parse_duration(t) for t in ("500ms", "3s", "2m", "1h", "1.5", 4)] == [
            0.5,
            3.0,
            120.0,
            3600.0,
            1.5,
            4.0,
        ]
        assert parse_ramp("10s") == (None, None, 10.0)
        assert parse_ramp("100:500:30s") == (100.0, 500.0, 30.0)
        for bad in ("ten", "1:2", "a:b:3s", "5:0:1s"):
            with pytest.raises(InvalidArgument, match=repr(bad) if ":" in bad else "duration"):
                parse_ramp(bad)


class TestScenario:
    def test_weights_and_names(self) -> None:
        scenario = parse()
        assert [op.name for op in scenario.operations] == [
            "greengrassv2.CreateDeployment",
            "greengrassv2.ListDeployments",
        ]
        mix = Counter(scenario.pick(n).operation for n in range(1000))
        assert mix == {"CreateDeployment": 800, "ListDeployments": 200}
        # The mix holds over any stretch, not only on average.
        assert Counter(scenario.pick(n).operation for n in range(500, 600))["CreateDeployment"] in (
            79,
            80,
            81,
        )

    def test_placeholders(self) -> None:
        op = parse_scenario(
            {
                "rate": 1,
                "duration": 1,
                "operations": [
                    {
                        "operation": "iot:CreateThing",
                        "params": {
                            "thingName": "t-{n:04d}-{worker}",
                            "attributePayload": {"attributes": {"id": "{uuid}", "k": "{{x}}"}},
                        },
                        "validate": False,
                    }
                ],
            }
        ).operations[0]
        params = op.render(7, worker=2)
        assert params["thingName"] == "t-0007-2"
        assert len(params["attributePayload"]["attributes"]["id"]) == 36
        assert params["attributePayload"]["attributes"]["k"] == "{x}"
        assert parse_scenario(
            {
                "rate": 1,
                "duration": 1,
                "operations": [
                    {
                        "operation": "greengrassv2:ListDeployments",
                        "params": {"maxResults": "{n}"},
                        "validate": False,
                    }
                ],
            }
        ).operations[0].render(5) == {"maxResults": 5}

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"operations": []}, "non-empty list"),
            ({"operations": [{"weight": 1}]}, "needs an operation"),
            ({"operations": [{"operation": "TagResource"}]}, "ambiguous: name the service"),
            (
                {"operations": [{"service": "proton", "operation": "iot:CreateThing"}]},
                "'iot' is not one of proton",
            ),
            ({"operations": [{"operation": "CreateThing"}]}, "request 0 is invalid"),
            ({"operations": [{"operation": "iot:CreateThingy"}]}, "no operation 'CreateThingy'"),
            ({"operations": [{"operation": "iot:CreateThing"}]}, "request 0 is invalid"),
            ({"operations": [{**MIX[1], "weight": 0}]}, "weight must be a positive"),
            ({"operations": [{**MIX[0], "params": {"targetArn": "{nope}"}}]}, "bad placeholder"),
            ({"rate": None, "operations": MIX}, "rate and duration are required"),
            ({"rate": 10, "ramp": "5:20:1s", "operations": MIX}, "ramp ends at 20/s"),
            ({"connections": 10, "max_in_flight": 5, "operations": MIX}, "connections <="),
            ({"operations": MIX, "thresholds": ["CreateThing:p99<1s"]}, "names no operation"),
            ({"operations": MIX, "thresholds": ["p99 < 1"]}, "needs a unit"),
            ({"operations": MIX, "speed": 3}, "unknown keys"),
        ],
    )
    def test_problems_are_named(self, data: dict[str, Any], message: str) -> None:
        with pytest.raises(InvalidArgument, match=message):
            parse_scenario({"rate": 10, "duration": 5, **data})

    @pytest.mark.parametrize(
        "entry",
        [
            {"operation": "iot:CreateThing"},
            {"operation": "iot.CreateThing"},
            {"operation": "CreateThing"},
            {"operation": "create_thing"},
            {"operation": "iot:create_thing"},
            {"service": "iot", "operation": "create_thing"},
            {"service": "iot", "operation": "iot.CreateThing"},
        ],
    )
    def test_every_operation_spelling(self, entry: dict[str, Any]) -> None:
        scenario = parse(operations=[{**entry, "params": {"thingName": "t-{n}"}}])
        assert [op.name for op in scenario.operations] == ["iot.CreateThing"]

    def test_validation_can_be_turned_off(self) -> None:
        scenario = parse(operations=[{"operation": "iot:CreateThing", "validate": False}])
        assert scenario.operations[0].render(0) == {}

    def test_files_with_command_line_overrides(self, tmp_path: Path) -> None:
        path = tmp_path / "mix.yaml"
        path.write_text(
            "name: mix\nrate: 100\nduration: 1m\nramp: 10s\nconnections: 8\n"
            "operations:\n  - operation: greengrassv2:ListDeployments\n"
            "thresholds: ['p99<200ms']\n"
        )
        scenario = load_scenario(path, {"rate": 200, "thresholds": ["errors<1%"]})
        assert scenario.name == "mix" and scenario.connections == 8
        assert scenario.profile == RateProfile(rate=200, duration=60, ramp=10)
        assert [t.text for t in scenario.thresholds] == ["p99<200ms", "errors<1%"]
        path.write_text("rate: [")
        with pytest.raises(InvalidArgument, match="cannot read scenario"):
            load_scenario(path)

    def test_the_examples_parse(self) -> None:
        examples = sorted(Path(__file__).parents[2].joinpath("examples", "load").glob("*.yaml"))
        assert examples
        for path in examples:
            assert load_scenario(path).operations
