"""Limits on job files, item sources and templates: each refusal names the limit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from harness.engine import Engine, Limits, Template, TemplateFailure, load_job, parse_job
from harness.engine._limits import TooLarge, measure
from harness.errors import InvalidArgument, JobError
from harness.transport import MockTransport, Reply

THING = {"service": "iot", "operation": "CreateThing", "params": {"thingName": "t-{{ index }}"}}


def job(**top: Any) -> dict[str, Any]:
    step = {"name": "a", **THING, **top.pop("step", {})}
    return {"name": "j", "steps": [step], **top}


class TestLimitsFromEnvironment:
    def test_defaults_and_overrides(self) -> None:
        limits = Limits.from_env({"HARNESS_MAX_DEPTH": "10", "HARNESS_MAX_VALUE_SIZE": "1_000"})
        assert (limits.depth, limits.value_size) == (10, 1000)
        assert limits.job_nodes == Limits().job_nodes == 1_000_000
        assert limits.exceeded("depth") == "the depth limit of 10 levels (HARNESS_MAX_DEPTH)"

    @pytest.mark.parametrize("text", ["0", "-3", "many", "1.5"])
    def test_a_bad_value_names_the_variable(self, text: str) -> None:
        with pytest.raises(InvalidArgument, match=r"HARNESS_MAX_JOB_NODES=.*positive integer"):
            Limits.from_env({"HARNESS_MAX_JOB_NODES": text})


class TestMeasure:
    def test_shared_references_count_every_time(self) -> None:
        inner = ["x" * 10] * 10
        assert measure([inner, inner], 10_000, 10)[0] == 1 + 2 * (1 + 10 * 11)
        layered: Any = "x"
        for _ in range(30):
            layered = [layered, layered]  # 2**30 leaves, 31 objects
        with pytest.raises(TooLarge, match="size"):
            measure(layered, 1_000_000, 64)

    def test_recursion_is_depth(self) -> None:
        loop: list[Any] = []
        loop.append(loop)
        with pytest.raises(TooLarge, match="depth"):
            measure(loop, 10**9, 64)


class TestJobDocument:
    def test_yaml_alias_bomb(self, tmp_path: Path) -> None:
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
        path = tmp_path / "bomb.yaml"
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(JobError, match=r"bomb\.yaml: .*job_nodes limit of 1,000,000"):
            load_job(path)
        # Lowered, it trips earlier: an alias bomb of 111 values against a limit of 100.
        path.write_text(
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        )
        with pytest.raises(JobError, match=r"more than 100 values"):
            load_job(path, limits=Limits(job_nodes=100))

    def test_nesting_in_yaml_json_and_documents(self, tmp_path: Path) -> None:
        deep = "[" * 65 + "]" * 65
        (tmp_path / "d.yaml").write_text(f"name: j\nx: {deep}\n")
        (tmp_path / "d.json").write_text(f'{{"name": "j", "x": {deep}}}')
        for name in ("d.yaml", "d.json"):
            with pytest.raises(JobError, match=r"nests deeper than the depth limit of 64"):
                load_job(tmp_path / name)
        nested: Any = "x"
        for _ in range(100):
            nested = {"n": nested}
        with pytest.raises(JobError, match=r"nests deeper than the depth limit of 64"):
            parse_job(job(step={"params": {"thingName": "t", "deep": nested}}))

    def test_file_size(self, tmp_path: Path) -> None:
        path = tmp_path / "big.yaml"
        path.write_text("name: j\n" + "#" * 200 + "\n")
        with pytest.raises(JobError, match=r"above the job_bytes limit of 100 bytes"):
            load_job(path, limits=Limits(job_bytes=100))

    @pytest.mark.parametrize(
        ("raw", "match"),
        [
            (job(concurrency=4097), r"concurrency: 4097 is above the maximum of 4,096"),
            (job(retries={"max_attempts": 101}), r"max_attempts: 101 is above the maximum of 100"),
            (job(retries={"max_delay": 1e9}), r"max_delay: 1000000000.0 is above the maximum"),
            (job(step={"rate": 2e6}), r"step 'a': rate: 2000000.0 is above the maximum"),
            (job(step={"items": {"count": 10**10}}), r"items.count 10,000,000,000 is above"),
            (job(step={"items": {"range": {"stop": 10**40}}}), r"more than 10\*\*18 items"),
        ],
    )
    def test_bounds(self, raw: dict[str, Any], match: str) -> None:
        with pytest.raises(JobError, match=match):
            parse_job(raw)

    def test_a_huge_integer_is_named_not_printed(self) -> None:
        with pytest.raises(
            JobError, match=r"concurrency: an integer of about [\d,]+ digits is above"
        ):
            parse_job(job(concurrency=10**5000))


class TestItemSources:
    def run(self, tmp_path: Path, kind: str, limits: Limits) -> JobError:
        raw = job(step={"items": {kind: f"items.{kind}"}, "params": {"thingName": "t"}})
        parsed = parse_job(raw, path=tmp_path / "job.yaml", limits=limits)
        engine = Engine(parsed, MockTransport(lambda call: Reply(200, output={})))
        with pytest.raises(JobError) as info:
            anyio.run(engine.preflight)
        return info.value

    def test_a_long_csv_line(self, tmp_path: Path) -> None:
        (tmp_path / "items.csv").write_text("thingName\nshort\n" + "x" * 5000 + "\n")
        error = self.run(tmp_path, "csv", Limits(line_bytes=1000))
        assert "items.csv:3: the line is longer than the line_bytes limit of 1,000" in str(error)

    def test_a_quoted_csv_row_spanning_lines(self, tmp_path: Path) -> None:
        (tmp_path / "items.csv").write_text('thingName\n"' + "x\n" * 600 + '"\n')
        error = self.run(tmp_path, "csv", Limits(line_bytes=1000))
        assert "the line is longer than the line_bytes limit" in str(error)

    def test_jsonl_long_and_deep(self, tmp_path: Path) -> None:
        (tmp_path / "items.jsonl").write_text('{"a": "' + "x" * 5000 + '"}\n')
        error = self.run(tmp_path, "jsonl", Limits(line_bytes=1000))
        assert "items.jsonl:1: the line is longer than the line_bytes limit" in str(error)
        (tmp_path / "items.jsonl").write_text('{"a": 1}\n\n{"a": ' + "[" * 70 + "]" * 70 + "}\n")
        error = self.run(tmp_path, "jsonl", Limits())
        assert "items.jsonl:3: nests deeper than the depth limit of 64" in str(error)


class TestDryRunItems:
    def test_known_sizes_are_refused_up_front(self) -> None:
        parsed = parse_job(job(step={"items": {"count": 10**9}}))
        engine = Engine(parsed, MockTransport(lambda call: Reply(200, output={})))
        with pytest.raises(JobError, match=r"dry_run_items limit"):
            anyio.run(lambda: engine.preflight(max_items=parsed.limits.dry_run_items))

    def test_streamed_sources_stop_at_the_limit(self, tmp_path: Path) -> None:
        (tmp_path / "items.jsonl").write_text('{"n": 1}\n' * 50)
        raw = job(step={"items": {"jsonl": "items.jsonl"}})
        parsed = parse_job(raw, path=tmp_path / "job.yaml")
        engine = Engine(parsed, MockTransport(lambda call: Reply(200, output={})))
        with pytest.raises(JobError, match=r"step 'a' brings it past 10 items, above the limit"):
            anyio.run(lambda: engine.preflight(max_items=10))
        assert anyio.run(engine.preflight).checked == 50


# Hostile templates render in a subprocess capped at 1 GiB: a guard that failed would make the
# child run out of memory (or time), not the test process.
HOSTILE = {
    "{{ 'x' * 2**31 }}": "value_size limit",
    "{{ [0] * 10**9 }}": "value_size limit",
    "{{ range(10**10) | list }}": "template_steps limit",
    "{{ 2 ** 100000 }}": "above 65,536 bits",
    "{{ 'x' | center(10**9) }}": "value_size limit",
    "{{ 'x'.ljust(10**9) }}": "value_size limit",
    "{{ '%0999999999d' % 1 }}": "value_size limit",
    "{{ '%*d' % (10**9, 1) }}": "value_size limit",
    "{{ '{:>{}}'.format(1, 10**9) }}": "value_size limit",
    "{{ ('x' * 1000)|list|join('y' * 1000000) }}": "value_size limit",
    "{{ ('x' * 1000000).replace('x', 'x' * 1000) }}": "value_size limit",
    "{{ ('a\\n' * 500000) | indent(1000) }}": "value_size limit",
    "{{ range(1000)|list|tojson(indent=100000) }}": "value_size limit",
    "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}": (
        "template_steps limit"
    ),
    "{% for i in range(50000) %}{{ 'x' * 100000 }}{% endfor %}": "value_size limit",
    "{% set ns = namespace(a='x') %}{% for i in range(60) %}{% set ns.a = ns.a ~ ns.a %}"
    "{% endfor %}{{ ns.a|length }}": "value_size limit",
    "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}": (
        "template_steps limit"
    ),
    "{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}": "recurses too deeply",
    "{% set a = ['x' * 1000] * 1000 %}{% set b = [a, a, a, a, a, a, a, a] %}{{ [b, b] }}": (
        "value_size limit"
    ),
    "{% set t = ''.maketrans({'a': 'x' * 1000000}) %}{{ ('a' * 1000).translate(t) }}": (
        "value_size limit"
    ),
    "{{ lipsum(10**9) }}": "'lipsum' is undefined",
}

RENDER = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))
from harness.engine import Template, TemplateFailure
results = {}
for spec in json.loads(sys.stdin.read()):
    started = time.process_time()
    try:
        Template({"v": spec}, "step 'a': params").render({"index": 1})
        results[spec] = ["rendered", 0.0]
    except TemplateFailure as exc:
        results[spec] = [str(exc), time.process_time() - started]
print(json.dumps(results))
"""


def test_hostile_templates_are_refused_before_they_allocate() -> None:
    import json

    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RENDER)],
        input=json.dumps(list(HOSTILE)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout)
    for spec, expected in HOSTILE.items():
        message, cpu = outcomes[spec]
        assert message.startswith("step 'a': params.v: "), (spec, message)
        assert expected in message, (spec, message)
        assert cpu < 5, (spec, cpu)


class TestTemplatesWithinLimits:
    def test_ordinary_templates_still_render(self) -> None:
        template = Template(
            {
                "a": "sensor-{{ '%05d' % index }}",
                "b": "{{ index * 3 + 1 }}",
                "c": "{% for t in item.tags %}{{ t }},{% endfor %}",
                "d": "{{ item.tags | join('-') | replace('-', '_') | upper }}",
                "e": "{{ '{:>8}'.format(index) }}",
                "f": "{{ 'x' * 1000 }}",
                "g": "{{ range(3) | list }}",
            }
        )
        out = template.render({"index": 7, "item": {"tags": ["p", "q"]}})
        assert out == {
            "a": "sensor-00007",
            "b": 22,
            "c": "p,q,",
            "d": "P_Q",
            "e": "       7",
            "f": "x" * 1000,
            "g": [0, 1, 2],
        }

    def test_the_budget_is_per_value_and_per_render(self) -> None:
        limits = Limits(template_steps=100, value_size=100)
        template = Template({"v": "{% for i in range(20) %}{{ i }}{% endfor %}"}, "", limits)
        for _ in range(5):  # a fresh budget each time
            assert template.render({})["v"] == "".join(map(str, range(20)))
        with pytest.raises(TemplateFailure, match=r"v: .*value_size limit of 100 characters"):
            Template({"v": "{{ 'x' * 101 }}"}, "", limits).render({})
        with pytest.raises(TemplateFailure, match=r"template_steps limit of 100 steps"):
            Template({"v": "{{ range(120) | list }}"}, "", limits).render({})
