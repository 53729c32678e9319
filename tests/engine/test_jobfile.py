"""Job files: every JobError path names the problem; every item source parses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness.engine import Job, RetrySettings, Source, load_job, parse_job
from harness.errors import JobError

THING = {"service": "iot", "operation": "CreateThing", "params": {"thingName": "t-{{ index }}"}}


def step(name: str = "a", **fields: Any) -> dict[str, Any]:
    return {"name": name, **THING, **fields}


def job(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "j", "steps": list(steps) or [step()], **top}


def fails(raw: Any, match: str, *, path: Path | None = None) -> JobError:
    with pytest.raises(JobError, match=match) as info:
        parse_job(raw, path=path)
    return info.value


class TestFiles:
    def test_yaml_syntax_error_names_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text("name: j\nsteps: [\n  - {name: a\n")
        with pytest.raises(JobError, match=r"(?s)bad\.yaml: invalid YAML: .*line \d+"):
            load_job(path)

    def test_json_syntax_error_names_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.json"
        path.write_text('{"name": "j", "steps": [}')
        with pytest.raises(JobError, match=r"bad\.json: invalid JSON"):
            load_job(path)

    def test_json_file_is_read(self, tmp_path: Path) -> None:
        path = tmp_path / "good.json"
        path.write_text(
            '{"name": "j", "steps": [{"name": "a", "service": "iot", '
            '"operation": "CreateThing", "params": {"thingName": "x"}}]}'
        )
        loaded = load_job(path)
        assert loaded.name == "j"
        assert loaded.path == path.resolve()

    def test_unreadable_file(self, tmp_path: Path) -> None:
        with pytest.raises(JobError, match=r"cannot read job file .*missing\.yaml"):
            load_job(tmp_path / "missing.yaml")

    def test_the_name_defaults_to_the_file_stem(self, tmp_path: Path) -> None:
        path = tmp_path / "onboarding.yaml"
        path.write_text(
            "steps:\n  - {name: a, service: iot, operation: CreateThing, params: {thingName: x}}\n"
        )
        assert load_job(path).name == "onboarding"

    def test_a_document_that_is_not_a_mapping(self) -> None:
        fails(["a", "b"], "a job file must be a mapping with 'name' and 'steps'")


class TestTopLevel:
    def test_missing_name(self) -> None:
        fails({"steps": [step()]}, r"'name' must be 1-64 letters")

    def test_bad_name(self) -> None:
        fails(job(name="has space"), r"'name' must be 1-64 letters")

    def test_missing_steps(self) -> None:
        fails({"name": "j"}, r"'steps' must be a non-empty list")

    def test_empty_steps(self) -> None:
        fails({"name": "j", "steps": []}, r"'steps' must be a non-empty list")

    def test_unknown_top_level_field(self) -> None:
        fails(job(stpes=[], retry=1), re.escape("unknown top-level field(s) ['retry', 'stpes']"))

    def test_description_and_region_are_accepted(self) -> None:
        parsed = parse_job(job(description="demo", region="eu-west-1"))
        assert parsed.region == "eu-west-1"
        assert parsed.steps[0].region == "eu-west-1"

    def test_step_must_be_a_mapping(self) -> None:
        fails({"name": "j", "steps": ["a"]}, r"steps\[0\]: each step must be a mapping")

    def test_step_needs_a_valid_name(self) -> None:
        fails({"name": "j", "steps": [{**THING}]}, r"steps\[0\]: 'name' must be 1-64")


class TestSteps:
    def test_unknown_step_field(self) -> None:
        fails(
            job(step(parms={}, rates=1)), re.escape("step 'a': unknown field(s) ['parms', 'rates']")
        )

    def test_service_and_operation_are_required(self) -> None:
        fails(job({"name": "a", "service": "iot"}), "step 'a': 'operation' is a required string")
        fails(
            job({"name": "a", "operation": "CreateThing"}),
            "step 'a': name the service: 'service: iot' or 'operation: iot:CreateThing'",
        )

    @pytest.mark.parametrize(
        "fields",
        [
            {"operation": "iot:CreateThing"},
            {"operation": "iot.create_thing"},
            {"service": "iot", "operation": "iot:CreateThing"},
        ],
    )
    def test_the_operation_may_carry_its_service(self, fields: dict[str, str]) -> None:
        raw = {"name": "a", "params": THING["params"], **fields}
        parsed = parse_job(job(raw)).steps[0]
        assert (parsed.service, parsed.operation.name) == ("iot", "CreateThing")

    def test_a_prefix_must_agree_with_the_service(self) -> None:
        fails(
            job(step(service="greengrassv2", operation="iot:CreateThing")),
            "step 'a': 'iot:CreateThing': service 'iot' is not one of greengrassv2",
        )

    def test_unknown_service_lists_the_known_ones(self) -> None:
        error = fails(job(step(service="iotx")), r"step 'a': unknown service 'iotx'")
        assert "known services: greengrassv2, iot" in str(error)

    def test_unknown_operation_suggests_close_names(self) -> None:
        fails(
            job(step(operation="CreateThin")),
            r"step 'a': service 'iot' has no operation 'CreateThin'; did you mean CreateThing",
        )

    def test_python_style_operation_names_work(self) -> None:
        assert (
            parse_job(job(step(operation="create_thing"))).steps[0].operation.name == "CreateThing"
        )

    def test_bad_kind(self) -> None:
        fails(job(step(kind="get")), r"step 'a': kind must be 'call' or 'list', not 'get'")

    def test_list_kind_needs_a_paginator(self) -> None:
        fails(job(step(kind="list")), r"step 'a': iot.CreateThing has no paginator; use kind: call")

    def test_expect_items_only_on_list_steps(self) -> None:
        fails(job(step(expect_items=3)), r"step 'a': expect_items is a non-negative integer")
        fails(
            job(
                {
                    "name": "l",
                    "service": "iot",
                    "operation": "ListThings",
                    "kind": "list",
                    "expect_items": -1,
                }
            ),
            r"expect_items is a non-negative integer",
        )

    def test_bad_after(self) -> None:
        fails(job(step(after=[1])), r"step 'a': 'after' must be a list of step names")

    def test_after_as_a_string(self) -> None:
        parsed = parse_job(job(step("a"), step("b", after="a")))
        assert parsed.step("b").after == ("a",)

    def test_bad_params(self) -> None:
        fails(job(step(params=[1, 2])), r"step 'a': 'params' must be a mapping")

    def test_key_region_rate_and_list_fields(self) -> None:
        parsed = parse_job(
            job(
                step("a", key="k-{{ index }}", region="eu-west-1", rate=12.5),
                {
                    "name": "l",
                    "service": "iot",
                    "operation": "ListThings",
                    "kind": "list",
                    "expect_items": 0,
                },
            )
        )
        a, listing = parsed.steps
        assert (a.key, a.region, a.rate, a.kind) == ("k-{{ index }}", "eu-west-1", 12.5, "call")
        assert a.operation_key == "iot.CreateThing"
        assert (listing.kind, listing.expect_items, listing.source.kind) == ("list", 0, "once")

    @pytest.mark.parametrize("rate", [0, -1, "fast", float("inf"), float("nan"), True, [1]])
    def test_bad_rate(self, rate: Any) -> None:
        fails(job(step(rate=rate)), r"step 'a': rate: expected a positive number")

    def test_jobs_defaults(self) -> None:
        parsed = parse_job(job())
        assert parsed.concurrency == 64
        assert parsed.retries == RetrySettings(8, 0.2, 20.0)


class TestSources:
    @pytest.mark.parametrize(
        ("items", "match"),
        [
            ("ten", r"'items' must be one of count, range, csv, jsonl, values, from"),
            ({"count": 1, "range": {"stop": 2}}, r"'items' must be one of"),
            ({"count": -1}, r"items.count must be a non-negative integer, not -1"),
            ({"count": "5"}, r"items.count must be a non-negative integer, not '5'"),
            ({"count": True}, r"items.count must be a non-negative integer"),
            ({"range": {"start": 1}}, r"items.range needs at least 'stop'"),
            ({"range": [1, 2]}, r"items.range needs at least 'stop'"),
            ({"range": {"stop": "x"}}, r"items.range values must be integers"),
            ({"range": {"stop": 5, "step": 0}}, r"items.range step must not be 0"),
            ({"values": {"a": 1}}, r"items.values must be a list of mappings"),
            ({"values": [1, 2]}, r"items.values must be a list of mappings"),
            (
                {"rows": 3},
                r"unknown item source 'rows'; use count, range, csv, jsonl, values or from",
            ),
        ],
    )
    def test_bad_items_source(self, items: Any, match: str) -> None:
        error = fails(job(step(items=items)), match)
        assert str(error).startswith("step 'a': ")

    @pytest.mark.parametrize("kind", ["csv", "jsonl"])
    def test_missing_file(self, tmp_path: Path, kind: str) -> None:
        fails(
            job(step(items={kind: f"devices.{kind}"})),
            rf"step 'a': items.{kind} file 'devices.{kind}' does not exist",
            path=tmp_path / "job.yaml",
        )

    def test_every_source_kind(self, tmp_path: Path) -> None:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "d.csv").write_text("name\nx\n")
        (tmp_path / "data" / "d.jsonl").write_text('{"name": "x"}\n')
        parsed = parse_job(
            job(
                step("count", items={"count": 5}),
                step("range", items={"range": {"start": 10, "stop": 0, "step": -3}}),
                step("csv", items={"csv": "data/d.csv"}),
                step("jsonl", items={"jsonl": "data/d.jsonl"}),
                step("values", items={"values": [{"thingName": "x"}, {"thingName": "y"}]}),
                step("from", items={"from": "count"}),
                step("once"),
            ),
            path=tmp_path / "job.yaml",
        )
        sources = {s.name: s.source for s in parsed.steps}
        assert sources["count"] == Source("count", 0, 5, 1)
        assert sources["count"].total == 5
        assert sources["range"] == Source("range", 10, 0, -3)
        assert sources["range"].total == 4  # 10, 7, 4, 1
        assert sources["csv"].kind == "csv"
        assert sources["csv"].path == (tmp_path / "data" / "d.csv").resolve()
        assert sources["csv"].total is None
        assert sources["jsonl"].path == (tmp_path / "data" / "d.jsonl").resolve()
        assert sources["values"].values == ({"thingName": "x"}, {"thingName": "y"})
        assert sources["values"].total == 2
        assert sources["from"] == Source("from", upstream="count")
        assert sources["from"].total is None
        assert sources["once"] == Source("once")
        assert sources["once"].total == 1
        assert parsed.step("from").upstream == ("count",)
        assert [s.name for s in parsed.downstream("count")] == ["from"]

    def test_range_defaults(self) -> None:
        source = parse_job(job(step(items={"range": {"stop": 3}}))).steps[0].source
        assert (source.start, source.stop, source.step, source.total) == (0, 3, 1, 3)

    def test_empty_range_has_zero_items(self) -> None:
        source = parse_job(job(step(items={"range": {"start": 5, "stop": 1}}))).steps[0].source
        assert source.total == 0

    def test_paths_are_relative_to_the_job_file(self, tmp_path: Path) -> None:
        (tmp_path / "rows.csv").write_text("a\n1\n")
        path = tmp_path / "job.yaml"
        path.write_text(
            "name: j\nsteps:\n  - {name: a, service: iot, operation: CreateThing, "
            "items: {csv: rows.csv}, params: {thingName: x}}\n"
        )
        assert load_job(path).steps[0].source.path == (tmp_path / "rows.csv").resolve()


class TestGraph:
    def test_duplicate_step_names(self) -> None:
        fails(
            job(step("a"), step("b"), step("a"), step("b")),
            re.escape("duplicate step name(s): ['a', 'b']"),
        )

    def test_unknown_upstream(self) -> None:
        fails(job(step("a", items={"from": "nope"})), r"step 'a': refers to unknown step 'nope'")

    def test_unknown_after(self) -> None:
        fails(job(step("a"), step("b", after=["a", "c"])), r"step 'b': refers to unknown step 'c'")

    def test_self_dependency(self) -> None:
        fails(job(step("a", after=["a"])), r"step 'a': cannot depend on itself")
        fails(job(step("a", items={"from": "a"})), r"step 'a': cannot depend on itself")

    def test_two_step_cycle_is_named(self) -> None:
        fails(
            job(step("a", after=["b"]), step("b", items={"from": "a"})),
            r"steps form a cycle: a -> b -> a",
        )

    def test_longer_cycle_is_named(self) -> None:
        error = fails(
            job(
                step("start"),
                step("a", after=["b", "start"]),
                step("b", items={"from": "c"}),
                step("c", after="a"),
            ),
            r"steps form a cycle: ",
        )
        cycle = str(error).removeprefix("steps form a cycle: ").split(" -> ")
        assert cycle[0] == cycle[-1]
        assert sorted(cycle[:-1]) == ["a", "b", "c"]

    def test_a_diamond_is_not_a_cycle(self) -> None:
        parsed = parse_job(
            job(
                step("a"),
                step("b", items={"from": "a"}),
                step("c", items={"from": "a"}),
                step("d", items={"from": "b"}, after=["c"]),
            )
        )
        assert parsed.step("d").upstream == ("b", "c")


class TestRetriesAndConcurrency:
    def test_retries(self) -> None:
        parsed = parse_job(job(retries={"max_attempts": 3, "base_delay": 0.5, "max_delay": 4}))
        assert parsed.retries == RetrySettings(3, 0.5, 4.0)
        assert (parsed.retries.throttle_budget, parsed.retries.in_progress_budget) == (900, 120)

    def test_time_budgets(self) -> None:
        parsed = parse_job(job(retries={"throttle_budget": 60, "in_progress_budget": 7.5}))
        assert parsed.retries == RetrySettings(throttle_budget=60.0, in_progress_budget=7.5)

    @pytest.mark.parametrize("retries", [{"max_tries": 3}, [3], "3"])
    def test_unknown_retry_fields(self, retries: Any) -> None:
        fails(
            job(retries=retries),
            r"'retries' takes max_attempts, base_delay, max_delay, throttle_budget",
        )

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("max_attempts", 0),
            ("max_attempts", -2),
            ("max_attempts", "x"),
            ("max_attempts", 2.5),
            ("max_attempts", True),
            ("base_delay", 0),
            ("base_delay", "soon"),
            ("max_delay", -1),
            ("max_delay", float("nan")),
            ("max_delay", float("inf")),
            ("throttle_budget", 0),
            ("throttle_budget", float("nan")),
            ("in_progress_budget", -1),
        ],
    )
    def test_bad_retries(self, field: str, value: Any) -> None:
        what = "integer" if field == "max_attempts" else "number"
        fails(job(retries={field: value}), rf"retries.{field}: expected a positive {what}, not ")

    @pytest.mark.parametrize("value", [0, -4, 2.5, "many", False])
    def test_bad_concurrency(self, value: Any) -> None:
        fails(job(concurrency=value), r"concurrency: expected a positive integer, not ")

    def test_integral_floats_are_accepted_for_counts(self) -> None:
        assert parse_job(job(concurrency=8.0)).concurrency == 8

    def test_job_lookup(self) -> None:
        parsed: Job = parse_job(job(step("a"), step("b")))
        assert parsed.step("b").name == "b"
        with pytest.raises(KeyError):
            parsed.step("c")
