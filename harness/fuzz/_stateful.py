"""Stateful contract runs: state machines that keep a reference model of what they created.

Each machine (:mod:`harness.fuzz._machines_iot`, :mod:`harness.fuzz._machines`) creates, reads,
lists, updates and deletes the seed resources of one service in an order Hypothesis draws, and
keeps a plain-dict model of what the target should hold. Every answer is judged by the oracle
(``no-5xx``, ``error-declared``, ``response-conforms``...); every disagreement with the model is a
``read-after-create`` violation: a created resource that its Get or its List does not show with
the same fields, a listing with duplicates or gaps, a made-up pagination token accepted.

A failing run is shrunk to the shortest sequence of calls that still fails, and the violation's
snippet replays that whole sequence with boto3.
"""

from __future__ import annotations

import itertools
import uuid
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from hypothesis import reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from harness.fuzz._oracle import Finding, check_valid, excerpt
from harness.fuzz._properties import collect, fail, stable
from harness.fuzz._violations import Violation
from harness.model import load_service

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from harness.fuzz._report import FuzzReport
    from harness.fuzz._resources import Cleanup
    from harness.fuzz._safety import SafetyPolicy
    from harness.fuzz._session import FuzzSession
    from harness.transport import Reply

__all__ = ["ContractMachine", "MachineContext", "machines_for", "run_machines"]

#: A page-token value no target issued; each machine sends it and expects a 4xx.
_MADE_UP_TOKENS = ("bm90LWEtcmVhbC10b2tlbg", "not-a-real-token-0000", "AAAAAAAAAAAAAAAAAAAAAAAA")
#: Pages a listing may take before the machine gives up on it (a target that never ends).
_MAX_PAGES = 200
# Distinguishes this process's resources from those of earlier runs on a persistent target.
_PROCESS = uuid.uuid4().hex[:4]
_COUNTER = itertools.count()


@dataclass(frozen=True, slots=True)
class MachineContext:
    """What every machine of a run shares."""

    session: FuzzSession
    report: FuzzReport
    cleanup: Cleanup
    safety: SafetyPolicy


class ContractMachine(RuleBasedStateMachine):
    """Base of the state machines: calls judged by the oracle, model checks, listings.

    Subclasses set :attr:`service` and are configured for a run by :meth:`configured`.
    """

    #: The service the machine exercises.
    service: ClassVar[str]
    #: Its main create operation (what decides whether the run may write).
    creates: ClassVar[str]
    ctx: ClassVar[MachineContext]

    def __init__(self) -> None:
        super().__init__()
        # Every resource name of this run of the machine starts with this (the run's prefix
        # against AWS), so that listings can tell its resources from anybody else's.
        base = self.ctx.safety.prefix if self.ctx.safety.mode == "aws" else "fz-"
        self.prefix = f"{base}{_PROCESS}{next(_COUNTER):x}-"
        self.log: list[tuple[str, dict[str, Any]]] = []
        #: The last answer, for judgements over several calls (a whole listing).
        self.last_reply: Reply | None = None

    @classmethod
    def configured(cls, ctx: MachineContext) -> type[ContractMachine]:
        """A subclass of this machine bound to ``ctx``."""
        return type(cls.__name__, (cls,), {"ctx": ctx, "__module__": cls.__module__})

    # ----------------------------------------------------------------------------- calls
    def call(self, operation: str, params: dict[str, Any], *, judge: bool = True) -> Reply:
        """Send one call, log it for the reproducer and judge the answer with the oracle."""
        ctx = self.ctx
        op = load_service(self.service).operation(operation)
        params = ctx.safety.stamp(op, params, names=False)
        self.log.append((operation, params))
        reply = ctx.session.call(self.service, operation, params)
        if reply is None:
            raise AssertionError(f"{operation}{params}: the machine built an unsendable request")
        self.last_reply = reply
        if reply.ok and ctx.safety.mode == "aws":
            ctx.cleanup.created(self.service, operation, params, reply.output)
        if ctx.session.throttled(self.service, operation, reply):
            # Still throttled after every retry: the model cannot know what happened, so this
            # run of the machine proves nothing either way.
            reject()
        if judge:
            findings = check_valid(op, reply)
            checks = ["no-5xx", "response-conforms" if reply.ok else "error-declared"]
            ctx.report.tally.record(f"{self.service}.{operation}", checks, findings)
            fail(
                [(f"{f.check}:{operation}", self.violation(f, operation, reply)) for f in findings]
            )
        return reply

    def violation(self, finding: Finding, operation: str, reply: Reply | None) -> Violation:
        """A violation of the last call of ``operation``, with the whole sequence as snippet."""
        params: dict[str, Any] = next(
            (p for name, p in reversed(self.log) if name == operation), {}
        )
        reply = reply or self.last_reply
        return Violation(
            check=finding.check,
            operation=f"{self.service}.{operation}",
            message=stable(finding.message),
            params=params,
            status=reply.status if reply is not None else 0,
            error_code=reply.error_code if reply is not None else None,
            body=excerpt(reply) if reply is not None else "",
            snippet=sequence_snippet(
                self.service, self.log, self.ctx.session.endpoint_url, self.ctx.session.region
            ),
        )

    def expect(self, held: bool, operation: str, message: str, reply: Reply | None) -> None:
        """Record a ``read-after-create`` judgement; raise the violation when it failed."""
        finding = None if held else Finding("read-after-create", f"{operation}: {message}")
        key = f"{self.service}.{operation}"
        self.ctx.report.tally.record(key, ["read-after-create"], [finding] if finding else [])
        if finding is not None:
            fail([(f"read-after-create:{operation}", self.violation(finding, operation, reply))])

    def expect_answer(self, operation: str, reply: Reply, expected: str | None) -> None:
        """The answer is a 2xx (``expected=None``) or the error ``expected``."""
        got = None if reply.ok else reply.error_code
        if expected is None:
            message = f"expected success, got {reply.status} {got}"
        else:
            message = f"expected {expected}, got {reply.status} {got or 'success'}"
        self.expect(got == expected, operation, message, reply)

    def expect_fields(
        self, operation: str, reply: Reply | None, item: dict[str, Any], expected: dict[str, Any]
    ) -> None:
        """``item`` (from ``reply``) holds every member of ``expected`` with the same value."""
        wrong = {k: item.get(k) for k, v in expected.items() if item.get(k) != v}
        if wrong:
            want = {k: expected[k] for k in wrong}
            self.expect(False, operation, f"answered {wrong!r} where the model has {want!r}", reply)
        else:
            self.expect(True, operation, "", reply)

    def listing(
        self,
        operation: str,
        params: dict[str, Any],
        page_size: int,
        key: Callable[[Any], str],
    ) -> list[Any]:
        """Every item of a listing, paged ``page_size`` at a time; duplicates are violations."""
        page = load_service(self.service).operation(operation).paginator
        assert page is not None and page.limit_key is not None
        items: list[Any] = []
        seen: set[str] = set()
        token: Any = None
        for _ in range(_MAX_PAGES):
            args = {**params, page.limit_key: page_size}
            if token is not None:
                args[page.input_token[0]] = token
            reply = self.call(operation, args)
            self.expect_answer(operation, reply, None)
            found = (reply.output or {}).get(page.result_key[0]) or []
            twice = sorted({key(i) for i in found if key(i) in seen})
            self.expect(not twice, operation, f"listed {twice!r} on two pages", reply)
            seen.update(key(i) for i in found)
            items.extend(found)
            token = (reply.output or {}).get(page.output_token[0])
            if not token:
                break
        return items

    def expect_listed(
        self,
        operation: str,
        listed: Iterable[str],
        expected: Iterable[str],
        known: set[str] | None = None,
    ) -> None:
        """A listing, filtered to this machine's resources (names with its prefix, or the ids
        in ``known``), shows exactly the model's."""

        def ours(name: str) -> bool:
            return name in known if known is not None else name.startswith(self.prefix)

        mine = {name for name in listed if ours(name)}
        want = set(expected)
        missing, extra = sorted(want - mine), sorted(mine - want)
        message = f"the listing misses {missing!r} and shows {extra!r} that should not be there"
        self.expect(not missing and not extra, operation, message, None)

    def bad_token(self, operation: str, params: dict[str, Any]) -> None:
        """A pagination token the target never issued is refused with a 4xx."""
        op = load_service(self.service).operation(operation)
        page = op.paginator
        assert page is not None
        for candidate in _MADE_UP_TOKENS:
            args = {**params, page.input_token[0]: candidate}
            if not op.validate(args):
                reply = self.call(operation, args)
                refused = 400 <= reply.status < 500
                message = f"a made-up pagination token got {reply.status}, not a 4xx"
                self.expect(refused, operation, message, reply)
                return

    def quietly(self, operation: str, params: dict[str, Any]) -> None:
        """Send a call whose answer does not matter (teardown), ignoring every failure."""
        try:
            self.call(operation, params, judge=False)
        except Exception:  # teardown must not mask the failure that led to it
            return


def sequence_snippet(
    service: str, calls: list[tuple[str, dict[str, Any]]], endpoint_url: str | None, region: str
) -> str:
    """Runnable boto3 code that replays ``calls`` in order, printing each answer."""
    from botocore import xform_name

    endpoint = f", endpoint_url={endpoint_url!r}" if endpoint_url else ""
    lines = [
        "import boto3, json",
        "from botocore.config import Config",
        f"client = boto3.client({service!r}, region_name={region!r}{endpoint},",
        "                      config=Config(parameter_validation=False,"
        " retries={'total_max_attempts': 1}))",
        "calls = [",
    ]
    for operation, params in calls:
        args = orjson.dumps(params, default=str).decode()
        lines.append(f"    ({xform_name(operation)!r}, json.loads({args!r})),")
    lines += [
        "]",
        "for name, params in calls:",
        "    try:",
        "        print(name, getattr(client, name)(**params))",
        "    except client.exceptions.ClientError as exc:",
        "        print(name, exc.response['Error'])",
    ]
    return "\n".join(lines) + "\n"


def machines_for(services: Iterable[str]) -> list[type[ContractMachine]]:
    """The machines of ``services``."""
    from harness.fuzz._machines import MACHINES as OTHERS
    from harness.fuzz._machines_iot import MACHINES as IOT

    wanted = set(services)
    return [m for m in (*IOT, *OTHERS) if m.service in wanted]


def run_machines(
    session: FuzzSession,
    services: Iterable[str],
    report: FuzzReport,
    cleanup: Cleanup,
    safety: SafetyPolicy,
    hypothesis: settings,
    machines: Iterable[type[ContractMachine]] | None = None,
    seed: int | None = None,
) -> None:
    """Run the machines of ``services`` (or ``machines``); add their shrunk violations to
    ``report``.

    Machines write: against AWS they run only with ``--allow-writes``.

    :param seed: the Hypothesis seed (each machine derives its own from it)
    """
    ctx = MachineContext(session, report, cleanup, safety)
    # A machine run costs a few dozen calls per step: fewer, longer examples than properties.
    examples = max(3, hypothesis.max_examples // 4)
    machine_settings = settings(hypothesis, max_examples=examples, stateful_step_count=25)
    for machine in machines_for(services) if machines is None else machines:
        reason = safety.refuses(load_service(machine.service).operation(machine.creates))
        if reason is not None:
            report.notes.append(f"{machine.__name__}: not run: {reason}")
            continue
        configured = machine.configured(ctx)
        if seed is not None:
            configured = hypothesis_seed(seed ^ zlib.crc32(machine.__name__.encode()))(configured)
        try:
            run_state_machine_as_test(configured, settings=machine_settings)
        except Exception as exc:
            violations, others = collect(exc)
            report.add(violations)
            report.errors.extend(f"{machine.__name__}: {type(e).__name__}: {e}" for e in others)
