"""Run Schemathesis against an endpoint with AWS-aware checks, and report :class:`Violation` s.

>>> from harness.fuzz import run_schemathesis
>>> found = run_schemathesis("greengrassv2", emu.url, examples=25, seed=1)  # doctest: +SKIP

The wire layer of the contract fuzzer: the OpenAPI document from :func:`openapi_document`,
Schemathesis's engine (examples, coverage, fuzzing and link-driven stateful phases, exactly as
``schemathesis run`` would do), SigV4 on every request, and Schemathesis's checks minus those
that misfire on AWS semantics, plus AWS-aware replacements (:mod:`harness.fuzz._aws_checks`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import schemathesis
from schemathesis import GenerationMode
from schemathesis.engine import events, from_schema

from harness.errors import HarnessError
from harness.fuzz._aws_checks import CHECK_NAMES, read_error, register_model, wire_request
from harness.fuzz._openapi import openapi_document
from harness.fuzz._sigv4 import SigV4Auth
from harness.fuzz._violations import Violation, boto3_snippet
from harness.model import load_service

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import requests
    from schemathesis import Case, Response
    from schemathesis.engine.recorder import ScenarioRecorder
    from schemathesis.schemas import BaseSchema

    from harness.fuzz._sigv4 import CredentialsLike
    from harness.model import ServiceModel

__all__ = ["EMULATOR_CREDENTIALS", "EXCLUDED_CHECKS", "load_schema", "run_schemathesis"]

#: Built-in checks we turn off, and why each misfires on AWS semantics.
EXCLUDED_CHECKS: dict[str, str] = {
    # Replaced by aws_valid_accepted: a schema-valid request may legitimately get a modeled
    # business error (ResourceNotFound for a drawn id, Conflict, a semantic ValidationException
    # such as "a subdeployment can only target a thing group"); only a constraint rejection of a
    # request the model accepts is a bug.
    "positive_data_acceptance": "replaced by aws_valid_accepted",
    # Replaced by aws_invalid_rejected: AWS ignores members it does not know and reads a JSON null
    # as an unset member, so "additional property" and many type mutations are valid requests;
    # whether a request is invalid is decided by the model's validator on the bytes sent.
    "negative_data_rejection": "replaced by aws_invalid_rejected",
    # Replaced by aws_no_server_error (same rule, with the AWS error code in the report);
    # keeping both would report every 5xx twice.
    "not_a_server_error": "replaced by aws_no_server_error",
    # AWS never answers 405: an undeclared method is an UnknownOperationException (404) or a
    # MissingAuthenticationToken (403), and OPTIONS gets no Allow header.
    "unsupported_method": "AWS answers undeclared methods with 404/403, never 405",
    "allow_header_conformance": "AWS sends no Allow header",
    # With the SigV4 security scheme it expects 401 for a missing Authorization header; AWS
    # answers 403, and our auth signs every request anyway, so the header is never missing.
    "missing_required_header": "AWS answers 403, not 401; SigV4Auth always signs",
    # Its "no credentials" probes still go through our requests auth, which signs them, so the
    # service rightly accepts them; an emulator also accepts any credentials by design.
    "ignored_auth": "SigV4Auth signs its unauthenticated probes too",
}
#: Credentials for endpoints that accept any (the emulator, moto, LocalStack).
EMULATOR_CREDENTIALS: tuple[str, str] = ("AKIAHARNESSFUZZ00000", "harness-fuzz-secret")
_BODY_EXCERPT = 500


def _credentials(endpoint_url: str, given: CredentialsLike | None) -> CredentialsLike | None:
    """The given credentials; else the standard chain for AWS, or any for another endpoint."""
    if given is not None:
        return given
    host = urlsplit(endpoint_url).hostname or ""
    if host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn"):
        return None  # SigV4Auth resolves the standard chain, or says there is none
    return EMULATOR_CREDENTIALS


def _whole_floats_as_ints(ctx: Any, body: Any) -> Any:
    """``2.0`` -> ``2`` throughout a JSON body (a ``map_body`` hook).

    JSON Schema 2020-12 counts 2.0 as an integer, so Schemathesis may send it for an integer
    member; AWS's validator (and ours) reads a float there as a type error, and a positive case
    would be spent on a rejection. A ``number`` member means the same either way.
    """
    if isinstance(body, float) and body.is_integer() and abs(body) < 2**63:
        return int(body)
    if isinstance(body, dict):
        return {key: _whole_floats_as_ints(ctx, value) for key, value in body.items()}
    if isinstance(body, list):
        return [_whole_floats_as_ints(ctx, value) for value in body]
    return body


def load_schema(
    service: str | ServiceModel,
    endpoint_url: str | None = None,
    *,
    examples: int | None = 25,
    seed: int | None = None,
    negative: bool = True,
    operations: Sequence[str] | None = None,
    auth: requests.auth.AuthBase | None = None,
) -> BaseSchema:
    """A Schemathesis schema of ``service``, configured the way :func:`run_schemathesis` runs it.

    :param endpoint_url: the base URL (default: the document's AWS endpoint; or pass
        ``base_url=`` to ``case.call_and_validate``)
    :param examples: Hypothesis examples per operation and mode (``None``: the active profile's)
    :param negative: generate invalid requests too
    :param operations: only these operations (API names)
    :param auth: a ``requests`` auth for every request, e.g. :class:`SigV4Auth`
    """
    model = load_service(service) if isinstance(service, str) else service
    register_model(model)
    doc = openapi_document(model, operations=operations)
    schema = schemathesis.openapi.from_dict(doc, config=schemathesis.Config(seed=seed))
    if endpoint_url is not None:
        schema.config.update(base_url=endpoint_url.rstrip("/"))
    # One worker: cases, and so the state they build on the endpoint, come in a seeded order.
    schema.config.update(workers=1, continue_on_failure=True)
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if negative else None
    schema.config.generation.update(
        modes=modes or [GenerationMode.POSITIVE],
        max_examples=examples,
        # Replaying saved failures from .hypothesis/ would make runs depend on earlier runs.
        database="none",
        deterministic=seed is not None,
        # SigV4Auth writes Authorization; generating one only to overwrite it wastes cases.
        with_security_parameters=False,
    )
    schema.config.checks.update(excluded_check_names=sorted(EXCLUDED_CHECKS))
    # Stateful runs follow the document's links only. AWS names ids generically (Id,
    # Identifier, Arn), so inferred links join unrelated resources (CreateFuotaTask's Id into
    # GetMulticastGroupSession) and ensure_resource_availability then blames the service.
    schema.config.phases.stateful.inference.algorithms = []
    schema.hook("map_body")(_whole_floats_as_ints)
    if auth is not None:
        schema.auth.set_from_requests(auth)
    return schema


def run_schemathesis(
    service: str,
    endpoint_url: str,
    *,
    examples: int = 25,
    seed: int | None = None,
    negative: bool = True,
    operations: Sequence[str] | None = None,
    credentials: tuple[str, str] | None = None,
    region: str = "us-east-1",
) -> list[Violation]:
    """Fuzz ``service`` at ``endpoint_url`` with Schemathesis; every distinct violation found.

    :param examples: Hypothesis examples per operation, phase and mode
    :param seed: makes generation deterministic (the endpoint's answers may still vary)
    :param negative: also send requests that break the model (each must be rejected)
    :param operations: only these operations (API names; default: all)
    :param credentials: (access key, secret key); default: the standard chain for AWS, any
        for another endpoint
    :param region: the region requests are signed for (and the emulator keeps state per region)
    :raises HarnessError: when Schemathesis cannot run at all
    """
    model = load_service(service)
    auth = SigV4Auth.for_service(model, region, _credentials(endpoint_url, credentials))
    _ = auth.credentials  # fail now, not in a worker thread, when there are none
    schema = load_schema(
        model,
        endpoint_url,
        examples=examples,
        seed=seed,
        negative=negative,
        operations=operations,
        auth=auth,
    )
    found: dict[str, Violation] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.FatalError):
            raise HarnessError(f"Schemathesis failed: {event.exception}") from event.exception
        if isinstance(event, events.NonFatalError):
            violation = Violation(
                check="schemathesis-error",
                operation=f"{model.name}.{event.label}",
                message=f"{event.info.title}: {event.info.message}",
            )
            found.setdefault(violation.fingerprint, violation)
        elif isinstance(event, events.ScenarioFinished):
            for violation in _violations(model, event.recorder, endpoint_url, region):
                found.setdefault(violation.fingerprint, violation)
    return sorted(found.values(), key=lambda v: (v.operation, v.check, v.message))


def _violations(
    model: ServiceModel, recorder: ScenarioRecorder, endpoint_url: str, region: str
) -> Iterator[Violation]:
    for case_id, nodes in recorder.checks.items():
        for node in nodes:
            info = node.failure_info
            if info is None:
                continue
            case = recorder.cases[case_id].value
            interaction = recorder.interactions.get(case_id)
            response = interaction.response if interaction is not None else None
            yield _violation(model, node.name, info.failure, case, response, endpoint_url, region)


def _violation(
    model: ServiceModel,
    check: str,
    failure: Any,
    case: Case[Any],
    response: Response | None,
    endpoint_url: str,
    region: str,
) -> Violation:
    op = model.operations.get(case.operation.definition.raw.get("operationId", ""))
    name = op.name if op is not None else case.operation.label
    custom = check in CHECK_NAMES and check.startswith("aws_")
    message = failure.message if custom else f"{failure.title}: {failure.message}"
    params: dict[str, Any] = {}
    status, code, body = 0, None, ""
    if response is not None:
        status = response.status_code
        body = response.content[:_BODY_EXCERPT].decode(errors="replace")
        if status >= 400:
            code = read_error(model.protocol, response).code
        wire = wire_request(op, response) if op is not None else None
        params = wire.params if wire is not None else {}
    snippet = (
        boto3_snippet(model.name, op.python_name, params, endpoint_url, region)
        if op is not None
        else ""
    )
    return Violation(
        check=CHECK_NAMES.get(check, check),
        operation=f"{model.name}.{name}",
        message=message.strip(),
        params=params,
        status=status,
        error_code=code,
        body=body,
        snippet=snippet,
    )
