"""SigV4 signing and the Schemathesis run: clean against the emulator, biting on broken targets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from botocore.auth import SigV4Auth as BotocoreSigV4
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from harness.emulator import EmulatorThread
from harness.errors import InvalidArgument
from harness.fuzz import EXCLUDED_CHECKS, SigV4Auth, Violation, run_schemathesis
from harness.fuzz._aws_wire import read_request
from harness.fuzz._sigv4 import rfc3986_query
from harness.model import load_service

CREDS = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def _signed(request: requests.Request, auth: SigV4Auth) -> requests.PreparedRequest:
    prepared = request.prepare()
    return auth(prepared)


def _authorization(prepared: requests.PreparedRequest) -> dict[str, str]:
    header = prepared.headers["Authorization"]
    algorithm, _, rest = header.partition(" ")
    assert algorithm == "AWS4-HMAC-SHA256"
    return dict(part.strip().split("=", 1) for part in rest.split(","))


class TestSigV4Auth:
    def test_signature_matches_an_independent_botocore_signature(self) -> None:
        auth = SigV4Auth.for_service("greengrassv2", "eu-west-1", CREDS)
        request = requests.Request(
            "GET",
            "http://127.0.0.1:9/greengrass/v2/deployments",
            params={"targetArn": "arn:aws:iot:eu-west-1:1:thing/a b+c~*", "maxResults": 5},
            headers={"User-Agent": "fuzz/1", "Accept-Encoding": "gzip", "Connection": "close"},
        )
        prepared = _signed(request, auth)
        # RFC 3986: %20 for a space, "+" escaped, "~" as it is.
        assert "a%20b%2Bc~%2A" in (prepared.url or "")
        fields = _authorization(prepared)
        signed = fields["SignedHeaders"].split(";")
        assert not {"user-agent", "accept-encoding", "connection"} & set(signed)
        assert fields["Credential"].endswith("/eu-west-1/greengrass/aws4_request")
        # What the service does: decode the query, re-encode it canonically, sign the headers
        # the client says it signed, with the date it sent.
        parts = urlsplit(prepared.url or "")
        params = parse_qsl(parts.query, keep_blank_values=True)
        headers = {
            name: prepared.headers[name] for name in prepared.headers if name.lower() in signed
        }
        server_side = AWSRequest(
            method="GET",
            url=f"{parts.scheme}://{parts.netloc}{parts.path}",
            params=params,
            headers=headers,
        )
        date = prepared.headers["X-Amz-Date"]
        server_side.context["timestamp"] = date
        signer = BotocoreSigV4(Credentials(*CREDS), "greengrass", "eu-west-1")
        canonical = signer.canonical_request(server_side)
        expected = signer.signature(signer.string_to_sign(server_side, canonical), server_side)
        assert fields["Signature"] == expected

    def test_body_is_signed(self) -> None:
        auth = SigV4Auth("iot", "us-east-1", CREDS)
        one = _signed(requests.Request("POST", "http://h/things/a", json={"x": 1}), auth)
        two = _signed(requests.Request("POST", "http://h/things/a", json={"x": 2}), auth)
        assert _authorization(one)["Signature"] != _authorization(two)["Signature"]
        assert one.headers["Content-Length"] == str(len(one.body or b""))

    def test_json_pseudo_path_becomes_a_target(self) -> None:
        auth = SigV4Auth.for_service("proton", "us-east-1", CREDS)
        request = requests.Request(
            "POST",
            "http://h:1/AwsProton20200720.CreateEnvironmentTemplate",
            data=b'{"name": "t"}',
            headers={"Content-Type": "application/json", "Authorization": "stale"},
        )
        prepared = _signed(request, auth)
        assert urlsplit(prepared.url or "").path == "/"
        assert prepared.headers["X-Amz-Target"] == "AwsProton20200720.CreateEnvironmentTemplate"
        assert prepared.headers["Content-Type"] == "application/x-amz-json-1.0"
        assert "x-amz-target" in _authorization(prepared)["SignedHeaders"]

    def test_rfc3986_query(self) -> None:
        assert rfc3986_query("a=x+y&b=%7E&flag") == "a=x%20y&b=~&flag="
        assert rfc3986_query("") == ""

    def test_bad_credentials(self) -> None:
        with pytest.raises(InvalidArgument, match="expected"):
            SigV4Auth("iot", credentials=("only-one",))  # type: ignore[arg-type]

    def test_emulator_routes_by_credential_scope(self, harness_emulator: EmulatorThread) -> None:
        url = f"{harness_emulator.url}/tags/arn:aws:greengrass:us-east-1:123456789012:components:x"
        # The same path is ListTagsForResource of Greengrass V2 and of managed integrations:
        # the service in the credential scope decides.
        for service in ("greengrassv2", "iot-managed-integrations"):
            auth = SigV4Auth.for_service(service, "us-east-1", CREDS)
            requests.get(url, auth=auth, timeout=10)
        operations = harness_emulator.core.stats()["operations"]
        assert "greengrassv2.ListTagsForResource" in operations
        assert "iot-managed-integrations.ListTagsForResource" in operations

    def test_emulator_keeps_state_per_signed_region(self, harness_emulator: EmulatorThread) -> None:
        def call(region: str, method: str, path: str, **kwargs: Any) -> requests.Response:
            auth = SigV4Auth.for_service("iot", region, CREDS)
            return requests.request(
                method, harness_emulator.url + path, auth=auth, timeout=10, **kwargs
            )

        assert call("eu-west-1", "POST", "/things/sensor-1", json={}).status_code == 200
        assert call("eu-west-1", "GET", "/things/sensor-1").json()["thingName"] == "sensor-1"
        assert call("us-east-1", "GET", "/things/sensor-1").status_code == 404

    def test_emulator_answers_signed_json_protocol(self, harness_emulator: EmulatorThread) -> None:
        auth = SigV4Auth.for_service("proton", "us-east-1", CREDS)
        url = f"{harness_emulator.url}/AwsProton20200720.CreateEnvironmentTemplate"
        answer = requests.post(url, json={"name": "fuzzed"}, auth=auth, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["environmentTemplate"]["name"] == "fuzzed"


class TestWireReader:
    """The oracle: requests judged from the bytes sent, as an AWS service reads them."""

    @staticmethod
    def read(
        service: str, name: str, method: str, url: str, body: bytes = b"", **headers: str
    ) -> Any:
        return read_request(load_service(service).operation(name), method, url, headers, body)

    def test_query_integers_read_like_java(self) -> None:
        url = "http://h/greengrass/v2/deployments?maxResults="
        assert self.read("greengrassv2", "ListDeployments", "GET", url + "%2B5").issues == ()
        (issue,) = self.read("greengrassv2", "ListDeployments", "GET", url + "%205").issues
        assert issue.constraint == "type"
        (issue,) = self.read("greengrassv2", "ListDeployments", "GET", url + "500").issues
        assert issue.constraint == "max"

    def test_unknown_members_and_nulls_are_ignored(self) -> None:
        body = b'{"targetArn": "arn:aws:iot:us-east-1:1:thing/t", "extra": 1, "tags": null}'
        wire = self.read(
            "greengrassv2", "CreateDeployment", "POST", "http://h/greengrass/v2/deployments", body
        )
        assert wire.issues == ()
        assert wire.params["targetArn"].endswith("thing/t")

    def test_unreadable_bodies_are_invalid(self) -> None:
        url = "http://h/greengrass/v2/deployments"
        assert self.read("greengrassv2", "CreateDeployment", "POST", url, b"[]").issues
        assert self.read("greengrassv2", "CreateDeployment", "POST", url, b"{").issues

    def test_labels_are_percent_decoded(self) -> None:
        wire = self.read("iot", "DescribeThing", "GET", "http://h/things/a%3Ab")
        assert wire.params == {"thingName": "a:b"} and wire.issues == ()

    def test_requests_for_another_operation_are_not_judged(self) -> None:
        assert self.read("iot", "DescribeThing", "DELETE", "http://h/things/a") is None
        assert self.read("iot", "DescribeThing", "GET", "http://h/things/a/b") is None
        target = "AwsProton20200720.ListEnvironmentTemplateVersions"
        wire = self.read(
            "proton",
            "ListEnvironmentTemplateVersions",
            "POST",
            "http://h/",
            b"{}",
            **{"X-Amz-Target": target},
        )
        assert [i.path for i in wire.issues] == ["templateName"]
        assert (
            self.read(
                "proton",
                "CreateEnvironmentTemplate",
                "POST",
                "http://h/",
                b"{}",
                **{"X-Amz-Target": target},
            )
            is None
        )


def _seeds(service: str) -> list[str]:
    return {
        "greengrassv2": ["CreateDeployment", "GetDeployment", "ListDeployments"],
        "proton": ["CreateEnvironmentTemplate", "ListEnvironmentTemplateVersions"],
    }[service]


class TestRunSchemathesis:
    @pytest.mark.parametrize("service", ["greengrassv2", "proton"])
    def test_emulator_has_no_violations(self, harness_endpoint: str, service: str) -> None:
        found = run_schemathesis(
            service, harness_endpoint, examples=5, seed=1, operations=_seeds(service)
        )
        assert found == [], "\n".join(f"{v.check} {v.operation}: {v.message}" for v in found)

    def test_misfiring_checks_are_excluded_with_a_reason(self) -> None:
        assert {"positive_data_acceptance", "negative_data_rejection", "unsupported_method"} <= set(
            EXCLUDED_CHECKS
        )
        assert all(EXCLUDED_CHECKS.values())


Respond = Callable[..., Any]


@pytest.fixture
def broken_emulator() -> Iterator[Callable[[Callable[[Respond], Respond]], str]]:
    """A fresh emulator whose request pipeline a test breaks on purpose; yields ``break_with``."""
    emu = EmulatorThread()
    emu.start()

    def break_with(wrap: Callable[[Respond], Respond]) -> str:
        # The HTTP server looks ``core.respond`` up per request: an instance attribute wins.
        emu.core.respond = wrap(emu.core.respond)  # type: ignore[method-assign]
        return emu.url

    try:
        yield break_with
    finally:
        emu.stop()


class TestChecksBite:
    def test_unvalidated_query_is_caught(
        self, broken_emulator: Callable[[Callable[[Respond], Respond]], str]
    ) -> None:
        def skip_list_validation(respond: Respond) -> Respond:
            # The bug: ListDeployments never sees its query string, so maxResults=500 passes.
            def broken(method: str, path: str, query: Any, getall: Any, *rest: Any) -> Any:
                if method == "GET" and path == "/greengrass/v2/deployments":
                    query, getall = {}, lambda _: []
                return respond(method, path, query, getall, *rest)

            return broken

        url = broken_emulator(skip_list_validation)
        found = run_schemathesis(
            "greengrassv2", url, examples=10, seed=3, operations=["ListDeployments"]
        )
        invalid = [v for v in found if v.check == "invalid-rejected"]
        assert invalid, found
        violation = invalid[0]
        assert violation.operation == "greengrassv2.ListDeployments"
        assert violation.status == 200
        assert "was accepted" in violation.message
        assert "client.list_deployments(**params)" in violation.snippet
        assert url in violation.snippet

    def test_server_errors_and_undeclared_errors_are_caught(
        self, broken_emulator: Callable[[Callable[[Respond], Respond]], str]
    ) -> None:
        def crash_on_create(respond: Respond) -> Respond:
            def broken(method: str, path: str, *rest: Any) -> Any:
                if method == "POST" and path == "/greengrass/v2/deployments":
                    return 500, {"Content-Type": "text/plain"}, b"Traceback (most recent call last)"
                if method == "GET" and path.startswith("/greengrass/v2/deployments/"):
                    headers = {
                        "x-amzn-ErrorType": "NoSuchThingException",
                        "Content-Type": "application/json",
                    }
                    return 404, headers, b'{"message": "gone"}'
                return respond(method, path, *rest)

            return broken

        url = broken_emulator(crash_on_create)
        found = run_schemathesis(
            "greengrassv2",
            url,
            examples=3,
            seed=1,
            negative=False,
            operations=["CreateDeployment", "GetDeployment"],
        )
        checks = {(v.check, v.operation) for v in found}
        assert ("no-5xx", "greengrassv2.CreateDeployment") in checks
        assert ("error-declared", "greengrassv2.GetDeployment") in checks
        undeclared = next(
            v
            for v in found
            if v.check == "error-declared" and v.operation.endswith("GetDeployment")
        )
        assert undeclared.error_code == "NoSuchThingException"
        assert isinstance(undeclared, Violation) and len(undeclared.fingerprint) == 16
