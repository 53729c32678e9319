"""What :class:`~harness.transport.FastTransport` works out once per operation, from botocore.

Everything here comes from one aiobotocore client per (service, region), built exactly as
:class:`~harness.transport.AioBotocoreTransport` builds it: the endpoint URL and signing context
from botocore's endpoint ruleset, the User-Agent from botocore's own creator, the serializer and
parser botocore would use. Only the per-call work is then done without botocore's machinery.

That is sound only where botocore's per-call machinery does nothing FastTransport does not
reproduce, so :func:`plan_operation` refuses (:class:`~harness.errors.InvalidArgument`) every
operation where it would: streaming, event streams, checksums, compression, endpoint discovery,
endpoints that depend on parameters, signing other than plain SigV4, other protocols, colliding
header members, and any botocore hook on the call path beyond the known generic ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import botocore.parsers
import botocore.serialize
from botocore.auth import resolve_auth_scheme_preference

from harness.errors import InvalidArgument

__all__ = ["OperationPlan", "plan_operation"]

#: Protocols whose serializer and parser FastTransport drives (JSON bodies, no customizations).
PROTOCOLS: Final = frozenset({"rest-json", "json"})

# The hooks a generic rest-json/json call runs, per event, and why skipping them is sound:
# generate_idempotent_uuid and add_recursion_detection_header are called directly; the signer,
# User-Agent and retry-header handlers are reproduced; the checksum, API-version and signer-choice
# hooks do nothing for operations that pass the checks below; the retry hooks do nothing with one
# attempt. Anything else (service customizations, user hooks) makes the operation unsupported.
_KNOWN_HOOKS: Final[dict[str, frozenset[str]]] = {
    "provide-client-params": frozenset(),
    "before-parameter-build": frozenset(
        {
            "botocore.handlers.generate_idempotent_uuid",
            "botocore.handlers._handle_request_validation_mode_member",
        }
    ),
    "before-endpoint-resolution": frozenset(),
    "before-call": frozenset(
        {
            "botocore.handlers.add_recursion_detection_header",
            "botocore.handlers.inject_api_version_header_if_needed",
        }
    ),
    "request-created": frozenset(
        {
            "aiobotocore.signers.AioRequestSigner.handler",
            "botocore.useragent.UserAgentString.rebuild_and_replace_user_agent_handler",
            "botocore.handlers.add_retry_headers",
        }
    ),
    "choose-signer": frozenset(
        {
            "botocore.handlers.set_operation_specific_signer",
            "botocore.handlers._set_auth_scheme_preference_signer",
        }
    ),
    "before-sign": frozenset(),
    "before-send": frozenset(),
    "response-received": frozenset(),
    "before-parse": frozenset(),
    "needs-retry": frozenset({"aiobotocore.retries.standard.AioRetryHandler.needs_retry"}),
    "after-call": frozenset({"botocore.retries.standard.RetryQuotaChecker.release_retry_quota"}),
    "after-call-error": frozenset(),
}

# Headers the transport or botocore set: a modeled header member of the same name would collide.
_RESERVED_HEADERS: Final = frozenset(
    {
        "accept-encoding",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
        "authorization",
        "content-length",
        "content-type",
        "date",
        "expect",
        "host",
        "transfer-encoding",
        "user-agent",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-target",
        "x-amzn-trace-id",
    }
)


@dataclass(frozen=True, slots=True)
class OperationPlan:
    """Everything a call of one operation needs that does not depend on its parameters.

    :param model: botocore's ``OperationModel``
    :param serializer: botocore's serializer for the protocol (validation off)
    :param parser: botocore's response parser for the protocol
    :param endpoint_url: the resolved endpoint (botocore's ruleset, or the configured URL)
    :param headers: extra headers the endpoint ruleset asks for (usually none)
    :param user_agent: the User-Agent botocore's client sends
    :param signing_name: the SigV4 service name (``greengrass`` for ``greengrassv2``)
    :param signing_region: the SigV4 region
    :param has_tokens: whether the input has idempotency-token members to fill
    :param host_prefix: whether botocore would prepend the modeled host prefix
    """

    model: Any
    serializer: Any
    parser: Any
    endpoint_url: str
    headers: dict[str, str]
    user_agent: str
    signing_name: str
    signing_region: str
    has_tokens: bool
    host_prefix: bool


def _hook_names(client: Any, event: str) -> list[str]:
    # botocore offers no public way to list handlers; the emitter's prefix trie is what emit()
    # itself consults, so it answers exactly which handlers a call would run.
    handlers = client.meta.events._emitter._handlers.prefix_search(event)
    names = []
    for handler in handlers:
        target = getattr(handler, "__func__", handler)
        names.append(
            f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
        )
    return names


def _unknown_hooks(client: Any, operation: str) -> list[str]:
    service_id = client.meta.service_model.service_id.hyphenize()
    service_name = client.meta.service_model.service_name
    unknown = [
        f"creating-serializer: {name}"
        for name in _hook_names(client, f"creating-serializer.{service_name}")
    ]
    for event, known in _KNOWN_HOOKS.items():
        unknown += [
            f"{event}: {name}"
            for name in _hook_names(client, f"{event}.{service_id}.{operation}")
            if name not in known
        ]
    return unknown


def _refusal(client: Any, model: Any) -> str | None:
    """Why FastTransport cannot send ``model`` the way botocore would, or ``None``."""
    service = model.service_model
    if service.resolved_protocol not in PROTOCOLS:
        return f"protocol {service.resolved_protocol!r} (supported: rest-json, json)"
    if model.has_event_stream_input or model.has_event_stream_output:
        return "event streams"
    if model.has_streaming_input or model.has_streaming_output:
        return "streaming input or output"
    if model.http_checksum_required or model.http_checksum or model.request_compression:
        return "request checksums or compression"
    if model.endpoint_discovery or model.is_endpoint_discovery_operation:
        return "endpoint discovery"
    if model.context_parameters or model.operation_context_parameters:
        return "an endpoint that depends on the call's parameters"
    if model.unsigned_payload:
        return "unsigned payloads"
    shape = model.input_shape
    for member in shape.members.values() if shape is not None else ():
        location = member.serialization.get("location")
        if location == "headers":
            return "header maps (prefixed header members)"
        name = str(member.serialization.get("name", "")).lower()
        if location == "header" and name in _RESERVED_HEADERS:
            return f"a modeled {name!r} header"
    try:
        unknown = _unknown_hooks(client, model.name)
    except AttributeError:  # botocore moved its emitter internals: fail closed
        return "botocore hooks that cannot be inspected"
    if unknown:
        return "botocore customizations (" + "; ".join(unknown) + ")"
    return None


async def plan_operation(client: Any, model: Any) -> OperationPlan:
    """Work out, once, how to send ``model`` (an ``OperationModel``) through ``client``'s endpoint.

    :param client: an aiobotocore client configured like AioBotocoreTransport's
    :raises InvalidArgument: when the operation needs something FastTransport does not reproduce
    """
    service = model.service_model
    where = f"{service.service_name} {model.name}"
    reason = _refusal(client, model)
    if reason is not None:
        raise InvalidArgument(
            f"FastTransport does not support {where}: {reason}; use the aiobotocore transport"
        )
    config = client.meta.config
    auth_type = model.resolved_auth_type
    if model.auth and config.auth_scheme_preference:
        preferred = config.auth_scheme_preference.split(",")
        auth_type = resolve_auth_scheme_preference(preferred, model.auth)
    # The same request context botocore's _make_api_call builds, so that the ruleset resolver
    # (run once here instead of on every call) sees what it would see on a call.
    context: dict[str, Any] = {
        "client_region": client.meta.region_name,
        "client_config": config,
        "has_streaming_input": model.has_streaming_input,
        "auth_type": auth_type,
        "unsigned_payload": model.unsigned_payload,
        "auth_options": service.metadata.get("auth"),
    }
    url, headers, _ = await client._resolve_endpoint_ruleset(model, {}, context)
    signer = client._request_signer
    signing = context.get("signing", {})
    if context.get("auth_type") not in (None, "v4") or signer.signature_version != "v4":
        raise InvalidArgument(
            f"FastTransport does not support {where}: signing other than SigV4; "
            "use the aiobotocore transport"
        )
    if signing.get("request_credentials") or signing.get("identity_cache") is not None:
        raise InvalidArgument(f"FastTransport does not support {where}: per-request identities")
    collisions = sorted(n for n in headers if n.lower() in _RESERVED_HEADERS)
    if collisions:
        raise InvalidArgument(
            f"FastTransport does not support {where}: endpoint headers {collisions}"
        )
    return OperationPlan(
        model=model,
        serializer=botocore.serialize.create_serializer(
            service.resolved_protocol, include_validation=False
        ),
        parser=botocore.parsers.create_parser(service.resolved_protocol),
        endpoint_url=url,
        headers=dict(headers),
        user_agent=client._user_agent_creator.to_string(),
        signing_name=signing.get("signing_name") or signer.signing_name,
        signing_region=signing.get("region") or signer.region_name,
        has_tokens=bool(model.idempotent_members),
        host_prefix=bool(config.inject_host_prefix),
    )
