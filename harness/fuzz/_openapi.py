"""OpenAPI 3.1 documents generated from the pinned service models, for wire-level fuzzers.

>>> from harness.fuzz import openapi_document
>>> doc = openapi_document("greengrassv2")
>>> doc["paths"]["/greengrass/v2/deployments"]["get"]["operationId"]
'ListDeployments'

rest-json operations map one to one: URI labels, query string, headers and a JSON body, each
member where its ``location`` trait puts it, under its wire name. json-protocol operations (Proton)
are all ``POST /`` with ``X-Amz-Target``, which OpenAPI cannot tell apart, so each gets a
pseudo-path ``/<targetPrefix>.<Operation>``: the emulator accepts it as it is, and
:class:`~harness.fuzz.SigV4Auth` rewrites it to ``POST /`` + ``X-Amz-Target`` before signing.

3.1, not 3.0: 3.0 has no ``propertyNames``, so map keys would go unconstrained. Request schemas are
closed (``additionalProperties: false``) so generators stay inside the model; response schemas are
open, because AWS adds members before the models know them. What OpenAPI cannot say is noted in
``x-aws-*`` extensions: greedy labels (``{key+}``), ARN path parameters (Schemathesis never puts a
``/`` in a path parameter), host prefixes, dropped patterns.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from harness.fuzz._openapi_schemas import ShapeSchemas
from harness.model import load_service

if TYPE_CHECKING:
    from collections.abc import Iterable

    from harness.model import ErrorRef, Member, Operation, ServiceModel, Shape

__all__ = ["COMMON_ERRORS", "openapi_document", "pseudo_path"]

#: Errors any AWS operation may answer although its model does not declare them (AWS's "common
#: errors"), with the status each is usually sent with.
COMMON_ERRORS: dict[str, int] = {
    "AccessDeniedException": 403,
    "ExpiredTokenException": 403,
    "IncompleteSignature": 400,
    "InternalFailure": 500,
    "InvalidSignatureException": 403,
    "MissingAuthenticationTokenException": 403,
    "NotAuthorized": 400,
    "RequestExpired": 400,
    "SerializationException": 400,
    "ServiceUnavailable": 503,
    "ThrottlingException": 429,
    "UnknownOperationException": 404,
    "UnrecognizedClientException": 403,
    "ValidationException": 400,
}
# OpenAPI ignores header parameters with these names (the media type and security own them).
_RESERVED_HEADERS = frozenset({"accept", "content-type", "authorization"})
_LABEL = re.compile(r"\{([^}]+)\}")
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "Message": {"type": "string"}},
}


def pseudo_path(model: ServiceModel, operation: str) -> str:
    """The OpenAPI path of a json-protocol operation: ``/AwsProton20200720.CreateEnvironment``."""
    return f"/{model.target_prefix}.{operation}"


def _media_type(model: ServiceModel) -> str:
    if model.protocol == "json":
        return f"application/x-amz-json-{model.json_version}"
    return "application/json"


class _Builder(ShapeSchemas):
    """Builds one document: operations, responses and (in :func:`_links`) links."""

    def operation(self, op: Operation) -> tuple[str, dict[str, Any]]:
        """The path and the operation object of ``op``."""
        model = self.model
        media = _media_type(model)
        spec: dict[str, Any] = {
            "operationId": op.name,
            "summary": f"{model.service_id} {op.name}",
            "x-aws-operation": op.name,
        }
        if op.deprecated:
            spec["deprecated"] = True
        if op.host_prefix:
            spec["x-aws-host-prefix"] = op.host_prefix
        shape = op.input
        if model.protocol == "json":
            path = pseudo_path(model, op.name)
            spec["x-aws-pseudo-path"] = True
            body = self.structure(shape, shape.members.values(), request=True) if shape else {}
            if not shape:
                body = {"type": "object", "additionalProperties": False}
            spec["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
        else:
            path = op.path_template
            greedy = [label[:-1] for label in _LABEL.findall(path) if label.endswith("+")]
            if greedy:
                path = path.replace("+}", "}")
                spec["x-aws-greedy-labels"] = greedy
            if shape is not None:
                self._rest_input(op, shape, spec, media)
        spec["responses"] = self.responses(op, media)
        return path, spec

    def _rest_input(self, op: Operation, shape: Shape, spec: dict[str, Any], media: str) -> None:
        params: list[dict[str, Any]] = []
        body: list[Member] = []
        for ref in shape.members.values():
            if ref.location is None:
                body.append(ref)
                continue
            where = {"uri": "path", "querystring": "query", "header": "header"}.get(ref.location)
            if where is None or (where == "header" and ref.wire_name.lower() in _RESERVED_HEADERS):
                spec.setdefault("x-aws-unsupported-members", []).append(ref.name)
                continue
            param: dict[str, Any] = {
                "name": ref.wire_name,
                "in": where,
                "required": where == "path" or ref.name in shape.required,
                "schema": self.schema(
                    ref.shape,
                    request=True,
                    where={"path": "uri"}.get(where, where),
                    fmt=ref.timestamp_format,
                ),
            }
            if where == "query" and ref.shape.type in ("list", "map"):
                param.update(style="form", explode=True)  # AWS repeats the key: ?k=a&k=b
            if where == "path" and "/" in (ref.shape.pattern or ""):
                # Schemathesis never puts "/" in a path parameter: a pattern that needs one
                # (arn:...:ota-task/x) filters out every case. The model still judges.
                param["schema"].pop("pattern", None)
                param["schema"]["x-aws-pattern"] = ref.shape.pattern
            if where == "path" and "arn" in ref.wire_name.lower():
                param["x-aws-arn"] = True
                param["description"] = (
                    "An ARN in a URI label: Schemathesis never generates '/' in path parameters, "
                    "so ARNs with a resource path (thing/x) are not exercised here."
                )
            params.append(param)
        if params:
            spec["parameters"] = params
        if shape.payload:
            ref = shape.members[shape.payload]
            if ref.shape.type == "structure":
                content = {media: {"schema": self.component(ref.shape, request=True)}}
            elif ref.shape.type == "string":
                content = {"text/plain": {"schema": {"type": "string"}}}
            else:
                content = {"application/octet-stream": {"schema": {}}}
            required = shape.payload in shape.required
            spec["requestBody"] = {"required": required, "content": content}
        elif body:
            schema = self.structure(shape, body, request=True)
            required = any(ref.name in shape.required for ref in body)
            spec["requestBody"] = {"required": required, "content": {media: {"schema": schema}}}

    def responses(self, op: Operation, media: str) -> dict[str, Any]:
        """The success response, then one response per error status, then the common errors."""
        success: dict[str, Any] = {"description": "Success"}
        out = op.output
        body: dict[str, Any]
        if out is not None:
            success_media = media
            if out.payload:
                payload = out.members[out.payload].shape
                if payload.type != "structure":
                    # A blob or text payload is sent as it is, with a type the model does not say.
                    body = {}
                    success_media = "*/*"
                else:
                    body = self.component(payload, request=False)
            else:
                members = [ref for ref in out.members.values() if ref.location is None]
                body = self.structure(out, members, request=False)
                if not members or op.success_code == 204:
                    # No body members: AWS sends an empty body (204 No Content), not "{}".
                    success_media = ""
            headers = {
                ref.wire_name: {"schema": self.schema(ref.shape, request=False, where="header")}
                for ref in out.members.values()
                if ref.location == "header"
            }
            if headers:
                success["headers"] = headers
            if success_media:
                success["content"] = {success_media: {"schema": body}}
        # else: no output, no body (a 204 from DeleteDeployment is empty, as AWS sends it)
        responses: dict[str, Any] = {str(op.success_code): success}
        by_status: dict[int, list[ErrorRef]] = {}
        for error in op.errors:
            by_status.setdefault(error.status, []).append(error)
        for status, errors in sorted(by_status.items()):
            schemas = [self.component(error.shape, request=False) for error in errors]
            schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
            responses[str(status)] = {
                "description": " | ".join(error.code for error in errors),
                "content": {media: {"schema": schema}},
                "x-aws-errors": [error.code for error in errors],
            }
        common: dict[int, list[str]] = {}
        for name, status in COMMON_ERRORS.items():
            if str(status) not in responses:
                common.setdefault(status, []).append(name)
        for status, names in sorted(common.items()):
            responses[str(status)] = {
                "description": "Common AWS errors: " + " | ".join(names),
                "content": {media: {"schema": _ERROR_SCHEMA}},
                "x-aws-errors": names,
            }
        return responses


def _links(model: ServiceModel, doc: dict[str, Any]) -> None:
    """Link create outputs to the path parameters of the resource's other operations.

    ``CreateDeployment`` 201 ``deploymentId`` feeds ``GetDeployment``'s ``{deploymentId}``: a
    target must be a Get/Describe/Update/Delete of the created resource (``Deployment``) or a List
    naming it, and every one of its path parameters must be a top-level output member of the
    create.
    """
    located: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for path, methods in doc["paths"].items():
        for method, spec in methods.items():
            located[spec["operationId"]] = (path, method, spec)
    for name, (_, _, spec) in located.items():
        op = model.operations[name]
        if not name.startswith("Create") or op.output is None or model.protocol == "json":
            continue
        noun = name.removeprefix("Create")
        outputs = {ref.wire_name for ref in op.output.members.values() if ref.location is None}
        links: dict[str, Any] = {}
        for target, (_, _, target_spec) in sorted(located.items()):
            # Reads, updates and deletes of the resource itself (GetDeployment, not
            # GetWirelessGatewayTask: the gateway need not have a task), and listings under it
            # (ListThingsInThingGroup), which answer an empty page rather than a 404.
            own = target in {verb + noun for verb in ("Get", "Describe", "Delete", "Update")}
            if not (own or (target.startswith("List") and noun in target)):
                continue
            labels = [p["name"] for p in target_spec.get("parameters", ()) if p["in"] == "path"]
            if labels and all(label in outputs for label in labels):
                links[target] = {
                    "operationId": target,
                    "parameters": {label: f"$response.body#/{label}" for label in labels},
                }
        if links:
            spec["responses"][str(op.success_code)]["links"] = links


def openapi_document(
    service: str | ServiceModel, *, operations: Iterable[str] | None = None
) -> dict[str, Any]:
    """An OpenAPI 3.1 document of a rest-json or json service, generated from its model.

    :param service: a service name (the pinned model is loaded) or a :class:`ServiceModel`
    :param operations: only these operations (API names); default: all of them
    :raises InvalidArgument: for another protocol, or an unknown operation
    """
    from harness.errors import InvalidArgument

    model = load_service(service) if isinstance(service, str) else service
    if model.protocol not in ("rest-json", "json"):
        raise InvalidArgument(f"{model.name}: the {model.protocol} protocol has no OpenAPI form")
    selected = (
        list(model.operations.values())
        if operations is None
        else [model.operation(name) for name in operations]
    )
    builder = _Builder(model)
    paths: dict[str, dict[str, Any]] = {}
    seen: dict[tuple[str, str], str] = {}
    skipped: list[str] = []
    for op in selected:
        path, spec = builder.operation(op)
        method = op.http_method.lower() if model.protocol != "json" else "post"
        # OpenAPI forbids two operations on equivalent templated paths with the same method.
        key = (_LABEL.sub("{}", path), method)
        if key in seen:
            skipped.append(op.name)
            continue
        seen[key] = op.name
        paths.setdefault(path, {})[method] = spec
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": model.full_name,
            "version": model.api_version,
            "description": f"Generated by harness from the {model.name} {model.api_version} model.",
            "x-aws-service": model.name,
            "x-aws-protocol": model.protocol,
            "x-aws-signing-name": model.signing_name,
        },
        "servers": [
            {
                "url": f"https://{model.endpoint_prefix}.{{region}}.amazonaws.com",
                "variables": {"region": {"default": "us-east-1"}},
            }
        ],
        "security": [{"sigv4": []}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(builder.components.items())),
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "AWS Signature Version 4",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                }
            },
        },
    }
    if model.target_prefix:
        doc["info"]["x-aws-target-prefix"] = model.target_prefix
    if skipped:
        doc["info"]["x-aws-skipped-operations"] = skipped
    _links(model, doc)
    return doc
