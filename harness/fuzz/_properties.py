"""How a property body tells Hypothesis which check failed, and the idempotency property.

Hypothesis tells bugs apart by the type (and place) of the exception a test raises, and shrinks
each distinct one. :func:`fail` raises one :class:`CheckFailed` subclass per check key, so a
missing max check and a 5xx found by the same property are two bugs with two shrunk examples;
several failed checks in one answer are raised together as an exception group.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from hypothesis import strategies as st

from harness.fuzz._oracle import Finding, conflict_codes, ids_of
from harness.fuzz._strategies import valid_params, valid_values

if TYPE_CHECKING:
    from harness.fuzz._runner import OperationFuzzer
    from harness.fuzz._violations import Violation
    from harness.model import Operation

__all__ = ["CheckFailed", "ReplayProperty", "collect", "fail", "fresh_token", "stable"]

_KINDS: dict[str, type[CheckFailed]] = {}
# Map keys in validator paths (``tags["k1"]``) and list indexes change with every input; the
# message of a violation must not, or a baseline could never match it again.
_SUBSCRIPT = re.compile(r"\[(?:\"(?:[^\"\\]|\\.)*\"|\d+)\]")


class CheckFailed(Exception):
    """A check failed on the current example (subclassed per check key; see :func:`fail`)."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(f"[{violation.check}] {violation.operation}: {violation.message}")
        self.violation = violation


def _kind(key: str) -> type[CheckFailed]:
    found = _KINDS.get(key)
    if found is None:
        name = "CheckFailed_" + re.sub(r"\W", "_", key)
        found = _KINDS[key] = type(name, (CheckFailed,), {"__module__": __name__})
    return found


def fail(failures: list[tuple[str, Violation]]) -> None:
    """Raise the failures of one example (nothing when there are none).

    :param failures: ``(check key, violation)`` pairs; the key tells bugs apart
    """
    if len(failures) == 1:
        key, violation = failures[0]
        raise _kind(key)(violation)
    if failures:
        raise ExceptionGroup("checks failed", [_kind(key)(v) for key, v in failures])


def collect(exc: BaseException) -> tuple[list[Violation], list[BaseException]]:
    """The violations in what a Hypothesis test raised, and anything else it raised."""
    if isinstance(exc, CheckFailed):
        return [exc.violation], []
    if isinstance(exc, BaseExceptionGroup):
        violations: list[Violation] = []
        others: list[BaseException] = []
        for inner in exc.exceptions:
            found, rest = collect(inner)
            violations += found
            others += rest
        return violations, others
    return [], [exc]


def stable(message: str) -> str:
    """``message`` with map keys and list indexes in paths replaced by ``[]``."""
    return _SUBSCRIPT.sub("[]", message)


def fresh_token(op: Operation) -> str:
    """A new client token that fits ``op``'s token member (a UUID, as SDKs send)."""
    assert op.input is not None
    shape = op.input.members[op.idempotency_members[0]].shape
    for token in (str(uuid.uuid4()), uuid.uuid4().hex, uuid.uuid4().hex[:16]):
        if not op.service.validator.validate_shape(shape, token):
            return token
    return str(uuid.uuid4())


def _digest(params: dict[str, Any], skip: str) -> bytes:
    return orjson.dumps(
        {k: v for k, v in params.items() if k != skip}, option=orjson.OPT_SORT_KEYS, default=repr
    )


class ReplayProperty:
    """``idempotent-replay``: a request replayed with its client token answers the same ids; the
    token with other parameters is a conflict the operation declares (ConflictException,
    IdempotentParameterMismatch...; see :func:`~harness.fuzz._oracle.conflict_codes`)."""

    def __init__(self, fuzzer: OperationFuzzer) -> None:
        self.fuzzer = fuzzer
        self.op = fuzzer.op
        self.token = self.op.idempotency_members[0]

    def strategy(self) -> st.SearchStrategy[tuple[dict[str, Any], tuple[str, Any]]]:
        """A valid request, and another value for one of its members (the other request)."""
        assert self.op.input is not None
        members = sorted(m for m in self.op.input.members if m != self.token)
        shapes = {m: self.op.input.members[m].shape for m in members}
        change = st.sampled_from(members).flatmap(
            lambda m: st.tuples(st.just(m), valid_values(shapes[m]))
        )
        # One changed member, not a second whole request: it shrinks in a few steps.
        return st.tuples(valid_params(self.op), change)

    def body(self, case: tuple[dict[str, Any], tuple[str, Any]]) -> None:
        """Create, replay, then reuse the token with the other request."""
        fuzzer = self.fuzzer
        tally, key = fuzzer.report.tally, fuzzer.key
        # A fresh token per example: a token drawn by Hypothesis repeats across examples, and
        # a replay of an earlier example's request tests nothing new.
        token = fresh_token(self.op)
        member, value = case[1]
        first = fuzzer.valid(case[0], token)
        second = fuzzer.valid({**case[0], member: value}, token)
        if first is None or second is None:
            tally.skip(key, ["idempotent-replay"])
            return
        fuzzer.prepare(first)
        created = fuzzer.send(first)
        if created is None or not created.ok:
            tally.skip(key, ["idempotent-replay"])  # nothing was created: nothing to replay
            return
        failures: list[tuple[str, Violation]] = []
        again = fuzzer.send(first)
        if again is not None:
            finding: Finding | None = None
            if not again.ok:
                finding = Finding(
                    "idempotent-replay",
                    f"replaying a request with its client token got {again.status} "
                    f"{again.error_code}",
                )
            else:
                before, after = ids_of(created.output), ids_of(again.output)
                changed = sorted(
                    k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
                )
                if changed:
                    finding = Finding(
                        "idempotent-replay",
                        f"replaying a request with its client token answered other ids: {changed}",
                    )
            tally.record(key, ["idempotent-replay"], [finding] if finding else [])
            if finding is not None:
                failures.append(("idempotent-replay:same", fuzzer.violation(finding, first, again)))
        if _digest(first, self.token) != _digest(second, self.token):
            other = fuzzer.send(second)
            if other is not None:
                finding = None
                if other.ok or other.error_code not in conflict_codes(self.op):
                    finding = Finding(
                        "idempotent-replay",
                        "reusing a client token with other parameters got "
                        f"{other.status} {other.error_code or ''}, not a conflict".replace(
                            "  ", " "
                        ),
                    )
                tally.record(key, ["idempotent-replay"], [finding] if finding else [])
                if finding is not None:
                    failures.append(
                        ("idempotent-replay:other", fuzzer.violation(finding, second, other))
                    )
        fail(failures)
