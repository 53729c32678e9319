"""Micro benchmarks of two per-item costs of ``harness run`` (``pytest perf/test_bench_micro.py``).

* the full validator on a realistic ``CreateDeployment`` (every item is validated in preflight);
* a journal append (one ``os.write`` of a JSON line per finished item).

Token bucket and histogram benchmarks are in ``test_bench_throttle.py`` and ``test_bench_stats.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.engine import Journal
from harness.model import load_service

# Short runs: these guard against regressions of multiples, not of percents.
BENCH = pytest.mark.benchmark(max_time=0.3, min_rounds=5, disable_gc=True, warmup=False)

DEPLOYMENT = {
    "targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/fleet-01",
    "deploymentName": "fleet-01-rollout",
    "components": {
        "com.example.Sensor": {
            "componentVersion": "1.2.0",
            "configurationUpdate": {"merge": '{"interval": 30}', "reset": ["/debug"]},
        },
        "aws.greengrass.Nucleus": {"componentVersion": "2.12.0"},
    },
    "deploymentPolicies": {
        "failureHandlingPolicy": "ROLLBACK",
        "componentUpdatePolicy": {"timeoutInSeconds": 60, "action": "NOTIFY_COMPONENTS"},
    },
    "iotJobConfiguration": {
        "jobExecutionsRolloutConfig": {"maximumPerMinute": 100},
        "timeoutConfig": {"inProgressTimeoutInMinutes": 30},
    },
    "tags": {"team": "fleet", "stage": "canary"},
}


@BENCH
def test_validate_create_deployment(benchmark: Any) -> None:
    operation = load_service("greengrassv2").operation("CreateDeployment")
    issues = benchmark(operation.validate, DEPLOYMENT)
    assert issues == []


@BENCH
def test_journal_record(benchmark: Any, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "bench.jsonl", "bench")
    output = {"thingName": "sensor-00042", "thingArn": "arn:aws:iot:us-east-1:1:thing/s-42"}
    try:
        benchmark(journal.record, "things", "42", "ok", attempts=1, latency=0.0123, output=output)
    finally:
        journal.close()
    assert (tmp_path / "bench.jsonl").stat().st_size > 0
