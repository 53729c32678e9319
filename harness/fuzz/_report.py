"""What a fuzz run found: violations, counts per check, latencies; baselines; JUnit XML.

A *baseline* is a JSON list of accepted violations (``fingerprint``, ``check``, ``operation``,
``message``): a nightly run against a target with known, accepted violations fails only on new
ones. The fingerprint masks the volatile parts of a message (ids, numbers, quoted values), so the
same bug found with other inputs keeps its fingerprint.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from harness.errors import InvalidArgument
from harness.fuzz._violations import CHECKS, Violation
from harness.stats import StatsBook

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from harness.fuzz._oracle import Finding

__all__ = [
    "CheckCount",
    "FuzzReport",
    "Tally",
    "describe",
    "load_baseline",
    "summary_text",
    "write_baseline",
    "write_junit",
]


@dataclass(slots=True)
class CheckCount:
    """How often one check held, failed, or could not be judged (unsendable, refused...)."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, other: CheckCount) -> None:
        """Add ``other``'s counts to these."""
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped

    def to_json(self) -> dict[str, int]:
        """The counts as a JSON-ready dict."""
        return {"passed": self.passed, "failed": self.failed, "skipped": self.skipped}


class Tally:
    """Counts per (operation, check) of every answer the checks judged (shrinking included)."""

    def __init__(self) -> None:
        self._counts: defaultdict[tuple[str, str], CheckCount] = defaultdict(CheckCount)

    def record(self, operation: str, checks: Iterable[str], findings: Iterable[Finding]) -> None:
        """One answer judged by ``checks``; ``findings`` are those that failed."""
        failed = {f.check for f in findings}
        for check in {*checks, *failed}:
            count = self._counts[(operation, check)]
            if check in failed:
                count.failed += 1
            else:
                count.passed += 1

    def skip(self, operation: str, checks: Iterable[str]) -> None:
        """An example ``checks`` could not judge."""
        for check in checks:
            self._counts[(operation, check)].skipped += 1

    def cases(self) -> list[tuple[str, str, CheckCount]]:
        """``(operation, check, counts)`` in operation order, then :data:`CHECKS` order."""
        order = {name: i for i, name in enumerate(CHECKS)}
        keys = sorted(self._counts, key=lambda k: (k[0], order.get(k[1], len(order)), k[1]))
        return [(op, check, self._counts[(op, check)]) for op, check in keys]

    def per_check(self) -> dict[str, CheckCount]:
        """Counts summed over operations, per check."""
        totals: dict[str, CheckCount] = {}
        for _, check, count in self.cases():
            totals.setdefault(check, CheckCount()).add(count)
        return {check: totals[check] for check in sorted(totals, key=_check_order)}


def _check_order(check: str) -> tuple[int, str]:
    return (CHECKS.index(check) if check in CHECKS else len(CHECKS), check)


@dataclass(slots=True)
class FuzzReport:
    """Everything one run found.

    :param target: where requests went, in words
    :param violations: distinct violations (by fingerprint), shrunk
    :param known: fingerprints of the baseline: violations accepted earlier
    :param notes: operations or checks not run, and why
    :param errors: failures of the harness itself (not of the target)
    :param leftovers: resources the run created and could not delete
    """

    target: str
    run_id: str
    seed: int | None = None
    violations: list[Violation] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    stats: StatsBook = field(default_factory=StatsBook)
    known: frozenset[str] = frozenset()
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    def add(self, violations: Iterable[Violation]) -> None:
        """Add violations, dropping those whose fingerprint is already reported."""
        seen = {v.fingerprint for v in self.violations}
        for violation in violations:
            if violation.fingerprint not in seen:
                seen.add(violation.fingerprint)
                self.violations.append(violation)

    @property
    def new(self) -> list[Violation]:
        """The violations the baseline does not list."""
        return [v for v in self.violations if v.fingerprint not in self.known]

    @property
    def failed(self) -> bool:
        """Whether the run should fail: a new violation, or an error of the harness."""
        return bool(self.new or self.errors)

    def to_json(self) -> dict[str, Any]:
        """The whole report as JSON-ready data."""
        return {
            "target": self.target,
            "run_id": self.run_id,
            "seed": self.seed,
            "violations": [
                {**v.to_json(), "new": v.fingerprint not in self.known} for v in self.violations
            ],
            "checks": {check: c.to_json() for check, c in self.tally.per_check().items()},
            "cases": [
                {"operation": op, "check": check, **count.to_json()}
                for op, check, count in self.tally.cases()
            ],
            "operations": self.stats.to_json(),
            "notes": self.notes,
            "errors": self.errors,
            "leftovers": self.leftovers,
        }

    def write_json(self, path: Path) -> None:
        """Write :meth:`to_json` to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2, default=str))


def load_baseline(path: Path) -> frozenset[str]:
    """The fingerprints a baseline file accepts (an absent file accepts none).

    :raises InvalidArgument: when the file is not a JSON list of objects with a fingerprint
    """
    if not path.exists():
        return frozenset()
    try:
        data = orjson.loads(path.read_bytes())
        return frozenset(str(entry["fingerprint"]) for entry in data)
    except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
        raise InvalidArgument(
            f"baseline {path}: expected a JSON list of violations ({exc})"
        ) from exc


def write_baseline(path: Path, violations: Iterable[Violation]) -> None:
    """Write ``violations`` as the accepted ones (sorted, without their volatile details)."""
    entries = sorted(
        (
            {
                "fingerprint": v.fingerprint,
                "check": v.check,
                "operation": v.operation,
                "message": v.message,
            }
            for v in violations
        ),
        key=lambda e: (e["operation"], e["check"], e["fingerprint"]),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(entries, option=orjson.OPT_INDENT_2) + b"\n")


def write_junit(report: FuzzReport, path: Path) -> None:
    """JUnit XML: one test case per operation and check; a failure per violation."""
    by_case: defaultdict[tuple[str, str], list[Violation]] = defaultdict(list)
    for violation in report.violations:
        by_case[(violation.operation, violation.check)].append(violation)
    cases = [(op, check) for op, check, _ in report.tally.cases()]
    cases += [key for key in by_case if key not in set(cases)]
    suite = ET.Element(
        "testsuite",
        name=f"harness fuzz {report.target}",
        tests=str(len(cases)),
        failures=str(sum(1 for key in cases if by_case.get(key))),
        errors=str(len(report.errors)),
    )
    for operation, check in cases:
        case = ET.SubElement(suite, "testcase", classname=operation, name=check)
        for violation in by_case.get((operation, check), []):
            failure = ET.SubElement(case, "failure", message=violation.message)
            failure.text = describe(violation, violation.fingerprint not in report.known)
    for error in report.errors:
        case = ET.SubElement(suite, "testcase", classname="harness", name="error")
        ET.SubElement(case, "error", message=error.splitlines()[0][:200]).text = error
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def describe(violation: Violation, new: bool = True) -> str:
    """A violation in plain text: what, the answer, the input and the reproducer."""
    params = orjson.dumps(violation.params, option=orjson.OPT_INDENT_2, default=repr).decode()
    return (
        f"[{violation.check}] {violation.operation}: {violation.message}"
        f"{'' if new else ' (known: in the baseline)'}\n"
        f"answer: {violation.status} {violation.error_code or ''}\n"
        f"body: {violation.body}\n"
        f"input: {params}\n"
        f"fingerprint: {violation.fingerprint}\n"
        f"reproduce:\n{violation.snippet}"
    )


def summary_text(report: FuzzReport, *, details: bool = True) -> str:
    """The report for a console: counts per check, latency per operation, then the violations
    (new ones in full with their reproducers), notes, leftovers and errors."""
    lines = [f"harness fuzz: {report.target} (run {report.run_id}, seed {report.seed})", ""]
    lines.append(f"{'check':<20} {'passed':>8} {'failed':>8} {'skipped':>8}")
    for check, count in report.tally.per_check().items():
        lines.append(f"{check:<20} {count.passed:>8} {count.failed:>8} {count.skipped:>8}")
    lines += ["", f"{'operation':<55} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"]
    for stats in report.stats:
        latency = stats.call_latency.summary()
        lines.append(
            f"{stats.operation:<55} {stats.calls:>6} {latency.p50 * 1e3:>8.2f} "
            f"{latency.p90 * 1e3:>8.2f} {latency.p99 * 1e3:>8.2f}"
        )
    new = report.new
    lines += ["", f"violations: {len(report.violations)} ({len(new)} new)"]
    for violation in report.violations:
        fresh = violation.fingerprint not in report.known
        if details and fresh:
            lines += ["", describe(violation, fresh)]
        else:
            known = "" if fresh else " (known)"
            lines.append(f"  [{violation.check}] {violation.operation}: {violation.message}{known}")
    for title, entries in (
        ("not run", report.notes),
        ("left behind", report.leftovers),
        ("harness errors", report.errors),
    ):
        if entries:
            lines += ["", f"{title}:"] + [f"  {entry}" for entry in entries]
    return "\n".join(lines)
