"""The transport seam: classify(), MockTransport, and AioBotocoreTransport against the emulator."""

from __future__ import annotations

import re
import socket
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from harness.emulator import EmulatorThread
from harness.model import load_service
from harness.transport import AioBotocoreTransport, Call, MockTransport, Reply, classify

PROTON = load_service("proton").operation("CreateEnvironmentTemplateVersion")
IOT = load_service("iot").operation("CreateThing")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def reply(status: int, code: str | None = None) -> Reply:
    return Reply(status, error_code=code)


class TestClassify:
    @pytest.mark.parametrize(
        ("status", "code", "expected"),
        [
            (200, None, "ok"),
            (201, None, "ok"),
            (204, None, "ok"),
            # throttling codes, whatever the status
            (400, "ThrottlingException", "throttled"),
            (429, "ThrottlingException", "throttled"),
            (400, "Throttling", "throttled"),
            (429, "TooManyRequestsException", "throttled"),
            (503, "RequestLimitExceeded", "throttled"),
            (500, "ThrottledException", "throttled"),
            (410, "LimitExceededException", "throttled"),
            (400, "ProvisionedThroughputExceededException", "throttled"),
            (429, None, "throttled"),
            (429, "429", "throttled"),
            # transient
            (500, "InternalFailureException", "transient"),
            (500, None, "transient"),
            (502, None, "transient"),
            (503, "ServiceUnavailableException", "transient"),
            (504, "GatewayTimeout", "transient"),
            (0, "EndpointConnectionError", "transient"),
            (0, "ReadTimeoutError", "transient"),
            (400, "RequestTimeout", "transient"),
            (408, "RequestTimeoutException", "transient"),
            (400, "PriorRequestNotComplete", "throttled"),
            (503, "SlowDown", "throttled"),
            # errors: give up
            (400, "InvalidRequestException", "error"),
            (400, "ValidationException", "error"),
            (404, "ResourceNotFoundException", "error"),
            # denied: give up and stop the run
            (403, "AccessDeniedException", "denied"),
            (400, "UnrecognizedClientException", "denied"),
            (403, "InvalidSignatureException", "denied"),
            (400, "ExpiredTokenException", "denied"),
            (403, "ExpiredToken", "denied"),
            (403, "InvalidClientTokenId", "denied"),
            (403, "MissingAuthenticationToken", "denied"),
            (403, "SignatureDoesNotMatch", "denied"),
            (401, "UnauthorizedException", "denied"),
            (403, None, "denied"),
            (0, "NoCredentialsError", "denied"),
            (409, "ResourceAlreadyExistsException", "error"),
            (429, "SomethingElse", "error"),
            (300, None, "error"),
        ],
    )
    def test_table(self, status: int, code: str | None, expected: str) -> None:
        assert classify(reply(status, code)) == expected
        assert classify(reply(status, code), IOT) == expected

    def test_modeled_throttling_for_proton(self) -> None:
        ref = PROTON.error("ThrottlingException") or PROTON.service.errors["ThrottlingException"]
        assert ref.throttling
        assert classify(reply(400, "ThrottlingException"), PROTON) == "throttled"

    def test_modeled_retryable_is_transient(self) -> None:
        # Proton's InternalServerException is modeled retryable: transient even on a 4xx.
        assert PROTON.service.errors["InternalServerException"].retryable
        assert classify(reply(400, "InternalServerException"), PROTON) == "transient"
        assert classify(reply(400, "InternalServerException")) == "error"

    def test_a_throttling_trait_alone_makes_a_code_throttling(self) -> None:
        base = PROTON.service.errors["ThrottlingException"]
        overloaded = replace(base, name="Overloaded", code="Overloaded", throttling=True)
        operation = SimpleNamespace(
            error=lambda code: overloaded if code == "Overloaded" else None,
            service=SimpleNamespace(errors={}),
        )
        assert classify(reply(400, "Overloaded")) == "error"
        assert classify(reply(400, "Overloaded"), operation) == "throttled"  # type: ignore[arg-type]

    def test_reply_ok(self) -> None:
        assert Reply(200).ok
        assert Reply(299).ok
        assert not Reply(300).ok
        assert not Reply(0).ok


class TestMockTransport:
    @pytest.mark.anyio
    async def test_sync_handler(self) -> None:
        transport = MockTransport(lambda call: Reply(200, output={"op": call.operation}))
        assert (transport.identity, transport.region) == ("mock", "us-east-1")
        call = Call("iot", "ListThings", {"maxResults": 1})
        answer = await transport.send(call)
        assert answer.output == {"op": "ListThings"}
        assert transport.calls == [call]

    @pytest.mark.anyio
    async def test_async_handler(self) -> None:
        async def handler(call: Call) -> Reply:
            await anyio.lowlevel.checkpoint()
            return Reply(404, error_code="ResourceNotFoundException")

        transport = MockTransport(handler, identity="acct", region="eu-west-1")
        answer = await transport.send(Call("iot", "DescribeThing", {"thingName": "x"}))
        assert answer.error_code == "ResourceNotFoundException"
        assert (transport.identity, transport.region) == ("acct", "eu-west-1")
        assert not transport.closed
        await transport.aclose()
        assert transport.closed


def client(url: str, **kwargs: Any) -> AioBotocoreTransport:
    return AioBotocoreTransport(
        endpoint_url=url, region="us-east-1", credentials=("AKIDEXAMPLE", "x"), **kwargs
    )


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class TestAioBotocore:
    @pytest.mark.anyio
    async def test_success(self, harness_emulator: EmulatorThread) -> None:
        async with client(harness_emulator.url) as transport:
            assert transport.identity == "AKIDEXAMPLE"
            answer = await transport.send(Call("iot", "CreateThing", {"thingName": "t1"}))
        assert answer.ok
        assert answer.status == 200
        assert answer.output is not None
        assert answer.output["thingName"] == "t1"
        assert "ResponseMetadata" not in answer.output
        assert answer.request_id is not None
        assert UUID.match(answer.request_id)
        assert answer.error_code is None

    @pytest.mark.anyio
    async def test_a_client_error_becomes_a_reply(self, harness_emulator: EmulatorThread) -> None:
        async with client(harness_emulator.url) as transport:
            answer = await transport.send(Call("iot", "DescribeThing", {"thingName": "nope"}))
        assert not answer.ok
        assert answer.status == 404
        assert answer.error_code == "ResourceNotFoundException"
        assert "nope" in answer.error_message
        assert answer.request_id is not None
        assert UUID.match(answer.request_id)
        assert answer.headers["x-amzn-requestid"] == answer.request_id
        assert classify(answer) == "error"

    @pytest.mark.anyio
    async def test_invalid_parameters_are_sent_not_refused(
        self, harness_emulator: EmulatorThread
    ) -> None:
        # botocore's validation is off: the service answers, with its own error.
        async with client(harness_emulator.url) as transport:
            answer = await transport.send(Call("iot", "CreateThing", {"thingName": "bad name!"}))
        assert answer.status == 400
        assert answer.error_code == "InvalidRequestException"

    @pytest.mark.anyio
    async def test_greengrass_throttling_has_a_retry_after(
        self, harness_emulator: EmulatorThread
    ) -> None:
        harness_emulator.call(lambda: harness_emulator.core.configure({"throttle": "aws"}))
        replies: list[Reply] = []
        async with client(harness_emulator.url) as transport:

            async def one() -> None:
                replies.append(await transport.send(Call("greengrassv2", "ListDeployments", {})))

            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(one)
        throttled = [r for r in replies if not r.ok]
        assert throttled
        for answer in throttled:
            assert answer.status == 429
            assert answer.error_code == "ThrottlingException"
            assert answer.retry_after is not None
            assert answer.retry_after >= 1
            assert classify(answer) == "throttled"

    @pytest.mark.anyio
    async def test_connection_refused_is_a_status_0_reply(self) -> None:
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        async with client(f"http://127.0.0.1:{port}") as transport:
            answer = await transport.send(Call("iot", "ListThings", {}))
        assert answer.status == 0
        assert answer.error_code == "EndpointConnectionError"
        assert str(port) in answer.error_message
        assert classify(answer) == "transient"

    @pytest.mark.anyio
    async def test_clients_are_per_service_and_region_and_closed(
        self, harness_emulator: EmulatorThread
    ) -> None:
        transport = client(harness_emulator.url)
        try:
            await transport.send(Call("iot", "ListThings", {}))
            await transport.send(Call("iot", "ListThings", {}, region="eu-west-1"))
            await transport.send(Call("iot", "ListThings", {"maxResults": 1}))
            assert len(transport._clients) == 2
        finally:
            await transport.aclose()
        assert transport._clients == {}

    @pytest.mark.anyio
    async def test_the_call_region_is_used(self, harness_emulator: EmulatorThread) -> None:
        async with client(harness_emulator.url) as transport:
            await transport.send(
                Call("iot", "CreateThing", {"thingName": "eu"}, region="eu-west-1")
            )
        names = harness_emulator.call(
            lambda: [
                t.name
                for t in harness_emulator.core.state(
                    "123456789012", "eu-west-1", "iot"
                ).things.values()
            ]
        )
        assert names == ["eu"]
