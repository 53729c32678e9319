"""Routing a request to (service, operation) from the model.

The service comes from the SigV4 credential scope (``.../<region>/<signingName>/aws4_request``);
unsigned requests fall back to ``X-Amz-Target`` and then to trying each service's URI templates.
The operation comes from ``X-Amz-Target`` (json protocol) or from the method and URI template
(rest-json), literal segments winning over labels. Greengrass V1 and V2 share the signing name
``greengrass``: a request V2's templates do not route is a V1 request, answered as not emulated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from harness.emulator._wire import OperationCodec

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from harness.model import Operation, ServiceModel

__all__ = ["Credentials", "Route", "RouteError", "Router", "parse_credentials"]

_LABEL = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the SigV4 credential scope says about the caller."""

    access_key: str
    region: str
    signing_name: str


# Credential scopes seen recently: one client sends the same scope with every request (only the
# signature after it changes), so parsing it once saves the split and the object per request.
_SCOPES: dict[str, Credentials | None] = {}
_SCOPES_MAX = 1024


def parse_credentials(authorization: str | None) -> Credentials | None:
    """Read ``Credential=AKID/date/region/service/aws4_request`` from an Authorization header."""
    if not authorization:
        return None
    start = authorization.find("Credential=")
    if start < 0:
        return None
    start += len("Credential=")
    end = authorization.find(",", start)
    text = authorization[start : end if end >= 0 else None]
    try:
        return _SCOPES[text]
    except KeyError:
        pass
    scope = text.strip().split("/")
    found = Credentials(scope[0], scope[2], scope[3]) if len(scope) >= 5 else None
    if len(_SCOPES) >= _SCOPES_MAX:
        _SCOPES.clear()  # bounded: a client that varies its scope must not grow it forever
    _SCOPES[text] = found
    return found


@dataclass(frozen=True, slots=True)
class Route:
    """A resolved request: the service, the operation, its codec and the URI labels."""

    service: ServiceModel
    operation: Operation
    codec: OperationCodec
    labels: Mapping[str, str]


class RouteError(Exception):
    """No operation matches; answered as UnknownOperationException."""

    def __init__(self, service: ServiceModel | None, message: str) -> None:
        super().__init__(message)
        self.service = service
        self.message = message


@dataclass(frozen=True, slots=True)
class _Template:
    regex: re.Pattern[str]
    labels: tuple[tuple[str, str], ...]  # (regex group, label name)
    operation: Operation
    codec: OperationCodec


def _compile(operation: Operation, codec: OperationCodec) -> tuple[tuple[int, int], _Template]:
    template = operation.path_template
    parts: list[str] = []
    labels: list[tuple[str, str]] = []
    pos = 0
    for i, match in enumerate(_LABEL.finditer(template)):
        parts.append(re.escape(template[pos : match.start()]))
        name = match.group(1)
        group = f"g{i}"
        greedy = name.endswith("+")
        labels.append((group, name.rstrip("+")))
        parts.append(f"(?P<{group}>.+)" if greedy else f"(?P<{group}>[^/]+)")
        pos = match.end()
    parts.append(re.escape(template[pos:]))
    literal_segments = sum(1 for seg in template.split("/") if seg and "{" not in seg)
    # Literal segments win over labels; among equals, fewer labels win.
    rank = (-literal_segments, len(labels))
    return rank, _Template(
        re.compile("^" + "".join(parts) + "/?$"), tuple(labels), operation, codec
    )


def _first_segment(path: str) -> str:
    return path.split("/", 2)[1] if path.count("/") >= 1 else ""


class Router:
    """Routes requests for a set of service models."""

    def __init__(self, models: Iterable[ServiceModel]) -> None:
        self._by_signing: dict[str, list[ServiceModel]] = {}
        self._targets: dict[str, tuple[ServiceModel, dict[str, OperationCodec]]] = {}
        self._rest: dict[str, dict[tuple[str, str], list[_Template]]] = {}
        self.models = list(models)
        for model in self.models:
            self._by_signing.setdefault(model.signing_name, []).append(model)
            codecs = {name: OperationCodec(model, op) for name, op in model.operations.items()}
            if model.protocol == "json" and model.target_prefix:
                self._targets[model.target_prefix] = (model, codecs)
                continue
            ranked: dict[tuple[str, str], list[tuple[tuple[int, int], _Template]]] = {}
            for name, op in model.operations.items():
                rank, tpl = _compile(op, codecs[name])
                first = op.path_template.split("/", 2)[1] if "/" in op.path_template else ""
                key = (op.http_method, "*" if "{" in first else first)
                ranked.setdefault(key, []).append((rank, tpl))
            self._rest[model.name] = {
                key: [t for _, t in sorted(items, key=lambda it: it[0])]
                for key, items in ranked.items()
            }

    def resolve(
        self, method: str, path: str, headers: Mapping[str, str], credentials: Credentials | None
    ) -> Route:
        """The route for a request.

        :raises RouteError: when no emulated operation matches
        """
        target = headers.get("X-Amz-Target")
        if target is None and path.count(".") and path[1:].split(".", 1)[0] in self._targets:
            target = path[1:]  # the pseudo-path encoding used by OpenAPI-driven fuzzers
            path = "/"
        if credentials is not None:
            models = self._by_signing.get(credentials.signing_name)
            if not models:
                raise RouteError(None, f"service {credentials.signing_name!r} is not emulated here")
        else:
            models = self.models
        if target is not None:
            prefix, _, op_name = target.partition(".")
            found = self._targets.get(prefix)
            if found is None or found[0] not in models:
                raise RouteError(
                    models[0] if len(models) == 1 else None, f"unknown X-Amz-Target {target!r}"
                )
            model, codecs = found
            codec = codecs.get(op_name)
            if codec is None:
                raise RouteError(model, f"{model.target_prefix} has no operation {op_name!r}")
            return Route(model, codec.operation, codec, {})
        first = _first_segment(path)
        for model in models:
            table = self._rest.get(model.name)
            if table is None:
                continue
            for key in ((method, first), (method, "*")):
                for tpl in table.get(key, ()):
                    match = tpl.regex.match(path)
                    if match is not None:
                        labels = {}
                        for group, name in tpl.labels:
                            text = match.group(group)
                            # unquote() costs ~1 µs even when there is nothing to decode
                            labels[name] = unquote(text) if "%" in text else text
                        return Route(model, tpl.operation, tpl.codec, labels)
        owner = models[0] if len(models) == 1 else None
        if credentials is not None and credentials.signing_name == "greengrass":
            # Greengrass V1 shares the signing name; whatever V2 does not route is V1.
            raise RouteError(owner, f"the Greengrass V1 API is not emulated: {method} {path}")
        raise RouteError(owner, f"no operation matches {method} {path}")
