"""``harness specs``: list, show, validate against, sync and diff the pinned API models."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from harness.cli._extras import require_extra
from harness.errors import InvalidArgument
from harness.model import (
    ServiceModel,
    diff_models,
    format_issues,
    installed_botocore_version,
    load_service,
    pinned_services,
    specs_dir,
    sync_specs,
)

__all__ = ["specs"]


def _echo_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


@click.group()
def specs() -> None:
    """Inspect and maintain the pinned API models under specs/."""


@specs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(as_json: bool) -> None:
    """Show each pinned service: API version, protocol, signing name, operation counts."""
    rows = []
    for name in pinned_services():
        model = load_service(name)
        pages = [op for op in model.operations.values() if op.paginator]
        rows.append(
            {
                "service": name,
                "api_version": model.api_version,
                "protocol": model.protocol,
                "signing_name": model.signing_name,
                "operations": len(model.operations),
                "paginators": len(pages),
                "derived_paginators": sum(
                    1 for op in pages if op.paginator and op.paginator.derived
                ),
            }
        )
    if as_json:
        _echo_json(rows)
        return
    click.echo(f"pinned models in {specs_dir()}")
    click.echo(
        f"{'service':<26}{'api version':<13}{'protocol':<11}{'signing name':<24}"
        f"{'ops':>5}  paginators"
    )
    for r in rows:
        pag = f"{r['paginators']} ({r['derived_paginators']} derived)"
        click.echo(
            f"{r['service']:<26}{r['api_version']:<13}{r['protocol']:<11}{r['signing_name']:<24}"
            f"{r['operations']:>5}  {pag}"
        )


def _operation_info(model: ServiceModel, name: str) -> dict[str, Any]:
    op = model.operation(name)
    return {
        "service": model.name,
        "operation": op.name,
        "python_name": op.python_name,
        "protocol": model.protocol,
        "http": {"method": op.http_method, "uri": op.request_uri, "status": op.success_code},
        "target": f"{model.target_prefix}.{op.name}" if model.target_prefix else None,
        "input": op.input.name if op.input else None,
        "required": sorted(op.input.required) if op.input else [],
        "members": {
            m: {
                "shape": ref.shape.name,
                "type": ref.shape.type,
                "location": ref.location or "body",
                "wire_name": ref.wire_name,
            }
            for m, ref in (op.input.members.items() if op.input else ())
        },
        "output": op.output.name if op.output else None,
        "errors": {e.name: e.status for e in op.errors},
        "idempotency_members": list(op.idempotency_members),
        "paginator": None
        if op.paginator is None
        else {
            "input_token": list(op.paginator.input_token),
            "output_token": list(op.paginator.output_token),
            "limit_key": op.paginator.limit_key,
            "result_key": list(op.paginator.result_key),
            "derived": op.paginator.derived,
        },
        "quota": {
            "tps": op.quota.tps,
            "guess": op.quota.guess,
            "source": op.quota.source,
            "quota_code": op.quota.quota_code,
        },
    }


@specs.command()
@click.argument("service")
@click.argument("operation")
def show(service: str, operation: str) -> None:
    """Show what the model says about one OPERATION (API or Python name) of SERVICE, as JSON."""
    _echo_json(_operation_info(load_service(service), operation))


@specs.command()
@click.argument("service")
@click.argument("operation")
@click.argument("params")
def validate(service: str, operation: str, params: str) -> None:
    """Check request PARAMS (JSON text, @FILE, or - for stdin) against OPERATION's model.

    Exits 0 when valid, 1 with every broken constraint otherwise.
    """
    if params == "-":
        text = sys.stdin.read()
    elif params.startswith("@"):
        try:
            text = Path(params[1:]).read_text()
        except OSError as exc:
            raise InvalidArgument(
                f"cannot read params file {params[1:]!r}: {exc.strerror}"
            ) from None
    else:
        text = params
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"params are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument("params must be a JSON object")
    op = load_service(service).operation(operation)
    issues = op.validate(value)
    if issues:
        click.echo(f"{service}.{op.name}: {format_issues(issues)}")
        for issue in issues:
            click.echo(f"  [{issue.constraint}] {issue}")
        sys.exit(1)
    click.echo(f"{service}.{op.name}: valid")


@specs.command()
@click.option("--service", "-s", "services", multiple=True, help="Only this service (repeatable).")
@click.option(
    "--check", is_flag=True, help="Only report drift from the installed botocore; exit 1 if any."
)
def sync(services: tuple[str, ...], check: bool) -> None:
    """Regenerate the pinned models from the installed botocore."""
    if check:
        drift = []
        for name in services or pinned_services():
            diff = diff_models(load_service(name), load_service(name, "botocore"))
            if diff:
                drift.append(name)
                version = installed_botocore_version()
                click.echo(f"{name}: {len(diff.changes)} change(s) in botocore {version}")
        if drift:
            sys.exit(1)
        click.echo("pinned models match the installed botocore")
        return
    for result in sync_specs(services or None):
        state = "updated" if result.changed else "unchanged"
        click.echo(f"{result.service} {result.api_version}: {state}")
    click.echo(f"from botocore {installed_botocore_version()} into {specs_dir()}")


def _model_from_ref(ref: str, service: str | None) -> ServiceModel:
    """``pinned:S``, ``botocore:S`` or a path to a service-2.json file."""
    kind, _, name = ref.partition(":")
    if kind in ("pinned", "botocore") and name:
        return load_service(name, kind)
    path = Path(ref)
    if not path.is_file():
        raise InvalidArgument(
            f"{ref!r} is neither a model file nor pinned:SERVICE / botocore:SERVICE"
        )
    stem = service or (path.parent.parent.name if path.parent.parent.name else path.stem)
    return load_service(stem, str(path))


@specs.command()
@click.argument("old", required=False)
@click.argument("new", required=False)
@click.option(
    "--service", "-s", help="Compare the pinned model of SERVICE with the installed botocore's."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when the models differ (like git diff).")
def diff(
    old: str | None, new: str | None, service: str | None, as_json: bool, exit_code: bool
) -> None:
    """Show what changed between two models.

    OLD and NEW are service-2.json files, or pinned:SERVICE / botocore:SERVICE. With only
    --service, compares the pinned model with the installed botocore's.
    """
    if old and new:
        before, after = _model_from_ref(old, service), _model_from_ref(new, service)
    elif service and not old and not new:
        before, after = load_service(service), load_service(service, "botocore")
    else:
        raise click.UsageError("give OLD and NEW, or --service SERVICE alone")
    result = diff_models(before, after)
    if as_json:
        _echo_json(result.to_json())
    else:
        click.echo(result.to_text())
    if exit_code and result:
        sys.exit(1)


@specs.command()
@click.argument("service")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the document to FILE instead of standard output.",
)
@click.option("--operation", "operations", multiple=True, help="Only this operation (repeatable).")
def openapi(service: str, out: Path | None, operations: tuple[str, ...]) -> None:
    """Print an OpenAPI 3.1 document of SERVICE (rest-json or json), for wire-level fuzzers.

    json-protocol operations get pseudo-paths (/AwsProton20200720.CreateEnvironment) that the
    emulator accepts; to call AWS, rewrite them to POST / with X-Amz-Target (harness.fuzz's
    SigV4Auth does) before signing.
    """
    # Imported here: harness.fuzz loads Hypothesis and Schemathesis (the fuzz extra), which
    # `harness --help` and every other command should neither pay for nor need.
    require_extra("fuzz", "harness specs openapi")
    from harness.fuzz import openapi_document

    document = openapi_document(service, operations=operations or None)
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    if out is None:
        click.echo(text)
        return
    out.write_text(text + "\n")
    paths = document["paths"]
    count = sum(len(methods) for methods in paths.values())
    click.echo(f"{service}: {count} operations, OpenAPI {document['openapi']} -> {out}", err=True)
