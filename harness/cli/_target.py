"""Where a command sends its calls, and whether it can: the endpoint (embedded, AWS, a URL),
the region, the credentials, and a check of all three before the first call.

The rules (README, "Targets and the environment"):

* ``--endpoint URL`` sends every service there; ``--endpoint embedded`` starts the emulator;
  ``--endpoint aws`` resolves each service's endpoint as the SDKs do (``AWS_ENDPOINT_URL_<ID>``,
  ``AWS_ENDPOINT_URL``, the config file, else AWS's own endpoint). Without ``--endpoint``: the
  embedded emulator, unless the environment sets ``AWS_ENDPOINT_URL`` or
  ``AWS_ENDPOINT_URL_<ID>`` for a service the command uses (and
  ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is not ``true``): then ``aws``.
* Region: ``--region``, the file's ``region`` (a scenario's; a job's steps carry their own),
  ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's ``region``, ``us-east-1``.
* Credentials: the embedded emulator needs none (``AWS_PROFILE`` is ignored; ``--profile`` is a
  usage error). An emulator URL gets placeholder keys unless a profile or ``AWS_ACCESS_KEY_ID``
  is given; AWS gets the standard chain.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import click
from botocore.exceptions import (
    BotoCoreError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.session import Session

from harness.cli._embedded import embedded_emulator
from harness.errors import InvalidArgument, TargetError
from harness.model import load_service
from harness.transport import AioBotocoreTransport, FastTransport, probe_endpoint

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator
    from pathlib import Path

__all__ = [
    "EMULATOR_CREDENTIALS",
    "Target",
    "check_target",
    "configured_endpoints",
    "endpoint_options",
    "explain",
    "make_transport",
    "open_target",
]

#: Keys for an emulator: it checks that requests are signed, not by whom.
EMULATOR_CREDENTIALS = ("AKIDEXAMPLE", "harness-emulator")
DEFAULT_REGION = "us-east-1"
NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "or run aws configure"
)
_TRUE = ("true", "1", "yes")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command's calls go and how they are signed.

    :param kind: ``"embedded"``, ``"url"`` (one URL for every service) or ``"aws"`` (each
        service as the SDK resolves it)
    :param url: the URL of every service (``None`` for ``aws``)
    :param region: the default region
    :param profile: the named profile of the credential chain, if any
    :param credentials: placeholder keys for an emulator, or ``None`` for the chain
    :param configured: per service, the ``(URL, variable)`` the environment sets
    """

    kind: Literal["embedded", "url", "aws"]
    url: str | None
    region: str
    profile: str | None = None
    credentials: tuple[str, str] | None = None
    configured: dict[str, tuple[str, str]] | None = None

    def label(self, endpoints: dict[str, str] | None = None) -> str:
        """The endpoint(s) for banners and summaries: ``embedded emulator URL``, one URL, or
        ``iot URL, greengrassv2 URL`` when the services go to different places."""
        if self.kind == "embedded":
            return f"embedded emulator {self.url}"
        if not endpoints:
            return self.url or "aws"
        distinct = list(dict.fromkeys(endpoints.values()))
        if len(distinct) == 1:
            return distinct[0]
        return ", ".join(f"{service} {url}" for service, url in endpoints.items())


def configured_endpoints(services: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Per service, the endpoint URL the environment sets and the variable that sets it.

    ``AWS_ENDPOINT_URL_<ID>`` (the model's ``serviceId`` upper-cased, spaces to underscores:
    ``AWS_ENDPOINT_URL_IOT_WIRELESS``) wins over ``AWS_ENDPOINT_URL``; neither counts when
    ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true, as in botocore.
    """
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() in _TRUE:
        return {}
    found: dict[str, tuple[str, str]] = {}
    for service in services:
        specific = "AWS_ENDPOINT_URL_" + load_service(service).service_id.upper().replace(" ", "_")
        for variable in (specific, "AWS_ENDPOINT_URL"):
            if os.environ.get(variable):
                found[service] = (os.environ[variable], variable)
                break
    return found


def _profile_source(profile: str | None) -> tuple[str | None, str]:
    if profile:
        return profile, "--profile"
    # botocore's order: AWS_DEFAULT_PROFILE, then AWS_PROFILE.
    for variable in ("AWS_DEFAULT_PROFILE", "AWS_PROFILE"):
        if os.environ.get(variable):
            return os.environ[variable], variable
    return None, ""


def _config_files() -> str:
    config = os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
    shared = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
    return f"{config} or {shared}"


def explain(exc: BotoCoreError, profile: str | None = None) -> str:
    """One line for a botocore configuration error: what is wrong and how to fix it."""
    if isinstance(exc, ProfileNotFound):
        name, source = _profile_source(profile)
        name = name or str(exc.kwargs.get("profile", ""))
        origin = f" (from {source})" if source else ""
        return f"the profile {name!r}{origin} is not in {_config_files()}"
    if isinstance(exc, NoCredentialsError):
        return NO_CREDENTIALS
    if isinstance(exc, PartialCredentialsError):
        return (
            f"incomplete AWS credentials ({exc}): set both AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or use a profile"
        )
    if isinstance(exc, NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if isinstance(exc, EndpointConnectionError):
        url = exc.kwargs.get("endpoint_url", "the endpoint")
        return f"cannot reach {url}: is the endpoint running? check --endpoint / AWS_ENDPOINT_URL"
    return f"the AWS configuration cannot be used: {exc}"


def _region(flag: str | None, file_region: str | None, profile: str | None, chain: bool) -> str:
    """``--region``, the file's, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's."""
    for value in (flag, file_region, os.environ.get("AWS_REGION")):
        if value:
            return value
    if not chain:  # no profile is read for an emulator
        return os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    try:
        # botocore's own lookup: AWS_DEFAULT_REGION, then the profile's region.
        region = Session(profile=profile).get_config_variable("region")
    except BotoCoreError as exc:
        raise TargetError(explain(exc, profile)) from None
    return str(region) if region else DEFAULT_REGION


def _wants_chain(profile: str | None) -> bool:
    # Against an endpoint URL, the chain only when the user named credentials of some kind.
    return bool(_profile_source(profile)[0] or os.environ.get("AWS_ACCESS_KEY_ID"))


@contextlib.contextmanager
def open_target(
    endpoint: str | None,
    *,
    services: Collection[str],
    region: str | None = None,
    profile: str | None = None,
    emulator_throttle: str = "off",
    file_region: str | None = None,
    state_dir: Path | None = None,
) -> Iterator[Target]:
    """Resolve ``--endpoint`` (``None``: not given), region and credentials; start the
    embedded emulator for the ``with`` block when that is the target.

    :raises InvalidArgument: for an ``--endpoint`` that is none of embedded, aws or a URL, or
        ``--profile`` with the embedded emulator
    :param state_dir: where the embedded emulator keeps its state (for ``run --resume``)
    :raises TargetError: for a profile that does not exist
    """
    configured = configured_endpoints(services)
    chosen = endpoint or ("aws" if configured else "embedded")
    if chosen == "embedded":
        if profile:
            raise InvalidArgument(
                f"--profile {profile!r}: the embedded emulator needs no credentials; pass "
                "--endpoint aws (or a URL) to use the profile"
            )
        where = _region(region, file_region, None, chain=False)
        with embedded_emulator(emulator_throttle, state_dir=state_dir) as url:
            yield Target("embedded", url, where, None, EMULATOR_CREDENTIALS)
    elif chosen == "aws":
        # Every service to an endpoint from the environment: an emulator or a stand-in, which
        # takes placeholder keys when no credentials are named; otherwise the chain.
        local = set(services) <= set(configured) and not _wants_chain(profile)
        credentials = EMULATOR_CREDENTIALS if local else None
        where = _region(region, file_region, profile, chain=not local)
        yield Target("aws", None, where, profile, credentials, configured)
    elif chosen.startswith(("http://", "https://")):
        chain = _wants_chain(profile)
        where = _region(region, file_region, profile, chain=chain)
        yield Target("url", chosen, where, profile, None if chain else EMULATOR_CREDENTIALS)
    else:
        raise InvalidArgument(f"--endpoint {chosen!r}: expected embedded, aws or an http(s) URL")


def make_transport(
    target: Target, pool: int, kind: str = "fast"
) -> AioBotocoreTransport | FastTransport:
    """The transport for ``target`` with ``pool`` connections.

    ``fast`` sends what aiobotocore sends (tests/transport/test_fast_equivalence.py) at a third
    of the CPU per call; ``aiobotocore`` stays for what it refuses (streaming, proxies...).
    """
    cls = FastTransport if kind == "fast" else AioBotocoreTransport
    return cls(
        endpoint_url=target.url,
        region=target.region,
        profile=target.profile,
        credentials=target.credentials,
        max_connections=pool,
    )


def _hint(target: Target, service: str, url: str) -> str:
    if target.kind == "embedded":
        return "the embedded emulator stopped answering"
    if target.kind == "url":
        return "is the endpoint running? check --endpoint"
    variable = (target.configured or {}).get(service, ("", ""))
    if variable[0] == url:
        return f"is the endpoint running? check {variable[1]}"
    return "check the network, the proxy settings and the region (--region / AWS_REGION)"


async def check_target(
    transport: AioBotocoreTransport | FastTransport,
    target: Target,
    calls: Iterable[tuple[str, str | None]],
) -> str:
    """Check, before the first call, that ``target`` can work for ``calls`` (``(service,
    region or None)`` pairs): the configuration loads, credentials resolve, and each endpoint
    accepts a TCP connection within a few seconds.

    :returns: the label naming the endpoint each service really uses
    :raises TargetError: with one line saying what is wrong and how to fix it
    """
    endpoints: dict[str, str] = {}
    probes: dict[str, str] = {}  # url -> a service that uses it, for the hint
    try:
        for service, region in dict.fromkeys(calls):
            url = await transport.endpoint(service, region)
            endpoints.setdefault(service, url)
            probes.setdefault(url, service)
        if target.credentials is None and not await transport.check_credentials():
            raise TargetError(NO_CREDENTIALS)
    except BotoCoreError as exc:
        raise TargetError(explain(exc, target.profile)) from None
    failures: dict[str, str] = {}

    async def probe(url: str) -> None:
        reason = await probe_endpoint(url)
        if reason is not None:
            failures[url] = reason

    async with anyio.create_task_group() as group:
        for url in probes:
            group.start_soon(probe, url)
    for url, reason in failures.items():
        raise TargetError(f"cannot reach {url} ({reason}): {_hint(target, probes[url], url)}")
    return target.label(endpoints)


def endpoint_options(fn: Any) -> Any:
    """The options every command that talks to a target shares."""
    for option in reversed(
        [
            click.option(
                "--endpoint",
                default=None,
                help="embedded (start the emulator for this run), aws, or a URL. Default: "
                "embedded, or aws when AWS_ENDPOINT_URL[_<SERVICE>] is set.",
            ),
            click.option(
                "--region",
                default=None,
                help="Region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1).",
            ),
            click.option("--profile", default=None, help="A named profile (not for embedded)."),
            click.option(
                "--emulator-throttle",
                type=click.Choice(["off", "aws"]),
                default="off",
                show_default=True,
                help="Throttling of the embedded emulator.",
            ),
            click.option(
                "--transport",
                "transport_kind",
                type=click.Choice(["fast", "aiobotocore"]),
                default="fast",
                show_default=True,
                help="fast: botocore's requests minus its per-call overhead; aiobotocore: SDK.",
            ),
        ]
    ):
        fn = option(fn)
    return fn
