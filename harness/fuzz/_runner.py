"""Run the oracle's checks on operations with Hypothesis, and shrink what fails.

Per operation there are up to three properties, each a Hypothesis test whose body sends drawn
requests and raises when a check fails:

* *positive*: valid requests (``valid-accepted``, ``response-conforms``, ``error-declared``,
  ``no-5xx``);
* *negative*: requests breaking one constraint (``invalid-rejected``, ``error-declared``,
  ``no-5xx``);
* *replay*: for operations with an idempotency token (``idempotent-replay``).

Each failed check raises its own exception class, so Hypothesis sees one distinct bug per check
(and per broken constraint kind) and shrinks each separately; we catch what it finally raises and
build the :class:`~harness.fuzz.Violation` s from the shrunk examples.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning

from harness.fuzz._invalid import invalid_params
from harness.fuzz._oracle import (
    check_invalid,
    check_valid,
    excerpt,
)
from harness.fuzz._properties import ReplayProperty, collect, fail, fresh_token, stable
from harness.fuzz._resources import Cleanup
from harness.fuzz._safety import WRITE_OPERATIONS, SafetyPolicy
from harness.fuzz._sendable import beyond_http_limits, unsendable
from harness.fuzz._stateful import run_machines
from harness.fuzz._strategies import valid_params
from harness.fuzz._violations import Violation, boto3_snippet
from harness.model import load_service

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.fuzz._invalid import Breakage
    from harness.fuzz._oracle import Finding
    from harness.fuzz._report import FuzzReport
    from harness.fuzz._session import FuzzSession
    from harness.model import Operation
    from harness.transport import Reply

__all__ = ["SEED_OPERATIONS", "FuzzConfig", "OperationFuzzer", "fuzz_settings", "run_fuzz"]

#: The operations fuzzed when none are named: the writes of the seed resource types and the
#: reads that show them.
SEED_OPERATIONS: tuple[tuple[str, str], ...] = tuple(
    sorted(
        WRITE_OPERATIONS
        | {
            ("iot", "DescribeThing"),
            ("iot", "ListThings"),
            ("iot", "DescribeThingGroup"),
            ("iot", "ListThingGroups"),
            ("iot", "ListThingsInThingGroup"),
            ("iot", "GetPackage"),
            ("iot", "ListPackages"),
            ("iot", "GetPackageVersion"),
            ("iot", "ListPackageVersions"),
            ("greengrassv2", "GetDeployment"),
            ("greengrassv2", "ListDeployments"),
            ("proton", "GetEnvironmentTemplate"),
            ("proton", "ListEnvironmentTemplates"),
            ("proton", "GetEnvironmentTemplateVersion"),
            ("proton", "ListEnvironmentTemplateVersions"),
            ("iotwireless", "GetFuotaTask"),
            ("iotwireless", "ListFuotaTasks"),
            ("iot-managed-integrations", "GetOtaTask"),
            ("iot-managed-integrations", "ListOtaTasks"),
        }
    )
)
_POSITIVE = ("valid-accepted", "response-conforms", "error-declared", "no-5xx")
_NEGATIVE = ("invalid-rejected", "error-declared", "no-5xx")
#: Parents a drawn request names that must exist for it to get past "not found":
#: (service, operation) -> [(member naming the parent, operation creating it, its name member)].
_PARENTS: dict[tuple[str, str], list[tuple[str, str, str]]] = {
    ("iot", "CreateThingGroup"): [("parentGroupName", "CreateThingGroup", "thingGroupName")],
    ("iot", "CreatePackageVersion"): [("packageName", "CreatePackage", "packageName")],
    ("proton", "CreateEnvironmentTemplateVersion"): [
        ("templateName", "CreateEnvironmentTemplate", "name")
    ],
}


@dataclass(frozen=True, slots=True)
class FuzzConfig:
    """What to fuzz, and how hard.

    :param operations: ``(service, operation)`` pairs
    :param examples: examples per property (``None``: the current Hypothesis profile's)
    :param seed: the Hypothesis seed (``None``: derandomized, the same examples every run)
    :param negative: run the invalid-request property
    :param stateful: run the state machines of the services of ``operations``
    :param safety: what may be sent, and how writes are marked
    """

    operations: tuple[tuple[str, str], ...] = SEED_OPERATIONS
    examples: int | None = 50
    seed: int | None = None
    negative: bool = True
    stateful: bool = False
    safety: SafetyPolicy = field(default_factory=SafetyPolicy)


def fuzz_settings(examples: int | None, parent: settings | None = None) -> settings:
    """Hypothesis settings for contract properties: no deadline, no example database (runs are
    reproducible from the seed alone), no health checks (slow targets are fine), quiet."""
    extra: dict[str, Any] = {} if examples is None else {"max_examples": examples}
    return settings(
        parent,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=True,
        # No explain phase: it replays failing examples again to comment them, and we report
        # examples ourselves.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        **extra,
    )


class OperationFuzzer:
    """The properties of one operation, run against one session.

    :param session: sends the requests
    :param op: the operation
    :param report: where violations, counts and notes go
    :param cleanup: where the resources created are remembered (for deletion at the end)
    :param safety: what may be sent, and how writes are marked
    :param hypothesis: the settings of every property (see :func:`fuzz_settings`)
    :param seed: the run's Hypothesis seed (each property derives its own from it), or ``None``
    """

    def __init__(
        self,
        session: FuzzSession,
        op: Operation,
        report: FuzzReport,
        cleanup: Cleanup,
        safety: SafetyPolicy,
        hypothesis: settings,
        seed: int | None = None,
    ) -> None:
        self.session = session
        self.op = op
        self.report = report
        self.cleanup = cleanup
        self.safety = safety
        self.settings = hypothesis
        self.seed = seed
        self.key = f"{op.service.name}.{op.name}"
        page = op.paginator
        # A drawn pagination token is valid to the model, but targets accept only the tokens
        # they issued: it would be refused for its meaning. Stateful runs check tokens instead.
        self._drop = set(page.input_token) if page is not None else set()

    # ------------------------------------------------------------------------- plumbing
    def send(self, params: dict[str, Any]) -> Reply | None:
        """Send ``params``; ``None`` when nothing could be judged (unsendable, throttled)."""
        service, name = self.op.service.name, self.op.name
        reply = self.session.call(service, name, params)
        if reply is None or self.session.throttled(service, name, reply):
            return None
        if reply.ok and self.safety.mode == "aws":
            self.cleanup.created(service, name, params, reply.output)
        return reply

    def violation(self, finding: Finding, params: dict[str, Any], reply: Reply | None) -> Violation:
        """A violation of ``finding`` with its input, its answer and a reproducer."""
        return Violation(
            check=finding.check,
            operation=self.key,
            message=stable(finding.message),
            params=params,
            status=reply.status if reply is not None else 0,
            error_code=reply.error_code if reply is not None else None,
            body=excerpt(reply) if reply is not None else "",
            snippet=boto3_snippet(
                self.op.service.name,
                self.op.python_name,
                params,
                self.session.endpoint_url,
                self.session.region,
            ),
        )

    def prepare(self, params: dict[str, Any]) -> None:
        """Create the parents ``params`` names, so that it gets past "not found"."""
        for member, creator, name in _PARENTS.get((self.op.service.name, self.op.name), []):
            value = params.get(member)
            parent = self.op.service.operation(creator)
            if isinstance(value, str) and self.safety.refuses(parent) is None:
                args = self.safety.stamp(parent, {name: value})
                reply = self.session.call(self.op.service.name, creator, args)
                if reply is not None and reply.ok and self.safety.mode == "aws":
                    self.cleanup.created(self.op.service.name, creator, args, reply.output)

    def valid(self, params: dict[str, Any], token: str | None = None) -> dict[str, Any] | None:
        """``params`` ready to send as a valid request, or ``None`` when they cannot be: HTTP
        cannot carry them as they are, or marking them for the run made them invalid.

        :param token: the client token to send (default: a fresh one, as SDKs do: drawn tokens
            repeat from one example to the next, and a reused token is a conflict, not a test
            of the request; the replay property tests tokens)
        """
        params = {k: v for k, v in params.items() if k not in self._drop}
        if self.op.idempotency_members:
            params[self.op.idempotency_members[0]] = token or fresh_token(self.op)
        if beyond_http_limits(self.op, params) is not None:
            return None
        stamped = self.safety.stamp(self.op, params)
        if stamped is not params and self.op.validate(stamped):
            return None
        return stamped

    def run(self, name: str, strategy: st.SearchStrategy[Any], body: Callable[..., None]) -> None:
        """Run one property; add the shrunk violations (or the harness error) to the report."""
        test = settings(self.settings)(given(strategy)(body))
        if self.seed is not None:
            test = seed(self.seed ^ zlib.crc32(f"{self.key}/{name}".encode()))(test)
        try:
            with warnings.catch_warnings():
                # Hypothesis warns when it prints the repr of a huge example (a 64 KiB string
                # breaking a maximum); we report examples ourselves and never print them whole.
                warnings.simplefilter("ignore", HypothesisWarning)
                test()
        except Exception as exc:
            violations, others = collect(exc)
            self.report.add(violations)
            # Anything else is a bug of the harness, not of the target: report it, go on.
            self.report.errors.extend(f"{self.key} {name}: {type(e).__name__}: {e}" for e in others)

    # ------------------------------------------------------------------------ properties
    def positive(self) -> None:
        """Valid requests: accepted, conforming, declared errors, no 5xx."""
        reason = self.safety.refuses(self.op)
        if reason is not None:
            self.report.notes.append(f"{self.key}: valid requests not sent: {reason}")
            return

        def body(params: dict[str, Any]) -> None:
            ready = self.valid(params)
            if ready is None:
                self.report.tally.skip(self.key, _POSITIVE)
                return
            self.prepare(ready)
            reply = self.send(ready)
            if reply is None:
                self.report.tally.skip(self.key, _POSITIVE)
                return
            findings = check_valid(self.op, reply)
            last = "response-conforms" if reply.ok else "error-declared"
            applicable = ("valid-accepted", "no-5xx", last)
            self.report.tally.record(self.key, applicable, findings)
            fail([(f.check, self.violation(f, ready, reply)) for f in findings])

        self.run("positive", valid_params(self.op), body)

    def negative(self) -> None:
        """Requests breaking one constraint: rejected with a validation error, no 5xx."""

        def body(case: tuple[dict[str, Any], Breakage]) -> None:
            params, breakage = case
            # As in valid requests, no drawn pagination token (unless it is what is broken):
            # a refused token would hide what the broken constraint gets.
            params = {
                k: v for k, v in params.items() if k not in self._drop or _touches(breakage.path, k)
            }
            token = self.op.idempotency_members[0] if self.op.idempotency_members else None
            if token is not None and not _touches(breakage.path, token):
                # A fresh token, as in valid requests: a drawn one repeats across examples,
                # and the reuse conflict would hide what the broken constraint gets.
                params = {**params, token: fresh_token(self.op)}
            if self.safety.refuses_invalid(self.op, params, breakage) is not None:
                self.report.tally.skip(self.key, _NEGATIVE)
                return
            params = self.safety.stamp(self.op, params, breakage.path)
            reply = self.send(params)
            if reply is None:
                self.report.tally.skip(self.key, _NEGATIVE)
                return
            findings = check_invalid(self.op, params, breakage, reply)
            judged = ["no-5xx"] if reply.ok else ["no-5xx", "error-declared"]
            if unsendable(self.op, params, breakage) is None:
                judged.append("invalid-rejected")
            else:
                self.report.tally.skip(self.key, ["invalid-rejected"])
            self.report.tally.record(self.key, judged, findings)
            failures = []
            for f in findings:
                # One distinct bug per broken constraint kind: a missing max check and a missing
                # pattern check are two bugs, and each gets its own shrunk example.
                key = (
                    f"{f.check}:{breakage.constraint}" if f.check == "invalid-rejected" else f.check
                )
                failures.append((key, self.violation(f, params, reply)))
            fail(failures)

        self.run("negative", invalid_params(self.op), body)

    def replay(self) -> None:
        """Idempotency: the same token replays, another request with it conflicts."""
        if not self.op.idempotency_members or self.op.input is None:
            return
        if self.safety.refuses(self.op) is not None:
            self.report.notes.append(f"{self.key}: idempotent-replay not run (it writes)")
            return
        prop = ReplayProperty(self)
        self.run("replay", prop.strategy(), prop.body)


def _touches(path: str, member: str) -> bool:
    """Whether a validator path is ``member`` or inside it."""
    return path == member or path.startswith((f"{member}.", f"{member}["))


def run_fuzz(config: FuzzConfig, session: FuzzSession, report: FuzzReport) -> FuzzReport:
    """Run every property of every operation of ``config`` (and the state machines), then
    delete what the run created, whatever happened.

    :returns: ``report``, filled
    """
    cleanup = Cleanup()
    # Without a seed, the same examples every run (derandomized); with one, that seed's.
    hypothesis = fuzz_settings(config.examples, settings(derandomize=config.seed is None))
    try:
        if config.stateful:
            services = sorted({service for service, _ in config.operations})
            run_machines(
                session, services, report, cleanup, config.safety, hypothesis, seed=config.seed
            )
        for service, name in config.operations:
            op = load_service(service).operation(name)
            fuzzer = OperationFuzzer(
                session, op, report, cleanup, config.safety, hypothesis, config.seed
            )
            fuzzer.positive()
            if config.negative:
                fuzzer.negative()
            fuzzer.replay()
    finally:
        report.leftovers.extend(cleanup.run(session))
        report.stats = session.stats
    return report
