"""Proton environment templates and versions in the emulator: numbering, registration delay,
publishing and recommendations, deletion rules, idempotency and pagination, through boto3."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiobotocore.session
import pytest

from harness.emulator._server import EmulatorThread

ACCOUNT = "123456789012"
REGION = "us-east-1"
SOURCE = {"s3": {"bucket": "templates", "key": "env/bundle.tar.gz"}}


@pytest.fixture
def proton(aws_client: Callable[..., Any]) -> Any:
    return aws_client("proton")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def no_delay(harness_emulator: EmulatorThread) -> None:
    harness_emulator.call(
        lambda: harness_emulator.core.configure({"proton_registration_delay": 0.0})
    )


def status_of(exc: Any) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def new_version(
    proton: Any, major: str | None = None, name: str = "env", **extra: Any
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"templateName": name, "source": SOURCE, **extra}
    if major is not None:
        kwargs["majorVersion"] = major
    out: dict[str, Any] = proton.create_environment_template_version(**kwargs)
    return out["environmentTemplateVersion"]


def get_version(proton: Any, major: str, minor: str, name: str = "env") -> dict[str, Any]:
    out: dict[str, Any] = proton.get_environment_template_version(
        templateName=name, majorVersion=major, minorVersion=minor
    )
    return out["environmentTemplateVersion"]


def publish(proton: Any, major: str, minor: str, name: str = "env") -> dict[str, Any]:
    out: dict[str, Any] = proton.update_environment_template_version(
        templateName=name, majorVersion=major, minorVersion=minor, status="PUBLISHED"
    )
    return out["environmentTemplateVersion"]


# ------------------------------------------------------------------------------ templates
def test_create_get_and_duplicate_template(proton: Any) -> None:
    created = proton.create_environment_template(
        name="env",
        displayName="Env",
        description="an environment",
        tags=[{"key": "k", "value": "v"}],
    )["environmentTemplate"]
    assert created["arn"] == f"arn:aws:proton:{REGION}:{ACCOUNT}:environment-template/env"
    assert created["name"] == "env"
    assert created["displayName"] == "Env"
    assert "recommendedVersion" not in created
    got = proton.get_environment_template(name="env")["environmentTemplate"]
    assert got["arn"] == created["arn"]
    assert got["description"] == "an environment"
    with pytest.raises(proton.exceptions.ConflictException):
        proton.create_environment_template(name="env")


def test_unknown_template_is_not_found(proton: Any) -> None:
    with pytest.raises(proton.exceptions.ResourceNotFoundException) as exc:
        proton.get_environment_template(name="missing")
    assert status_of(exc) == 400  # the model gives Proton's errors no HTTP status of their own
    with pytest.raises(proton.exceptions.ResourceNotFoundException):
        proton.delete_environment_template(name="missing")
    with pytest.raises(proton.exceptions.ResourceNotFoundException):
        new_version(proton, name="missing")
    with pytest.raises(proton.exceptions.ResourceNotFoundException):
        proton.list_environment_template_versions(templateName="missing")


def test_update_template(proton: Any) -> None:
    proton.create_environment_template(name="env")
    updated = proton.update_environment_template(name="env", description="new")
    assert updated["environmentTemplate"]["description"] == "new"
    assert proton.get_environment_template(name="env")["environmentTemplate"]["description"] == (
        "new"
    )


def test_list_templates_paginates(proton: Any) -> None:
    names = [f"tmpl{i:03d}" for i in range(120)]
    for name in names:
        proton.create_environment_template(name=name)
    paginator = proton.get_paginator("list_environment_templates")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 25}))
    assert len(pages) == 5
    assert [t["name"] for page in pages for t in page["templates"]] == names
    with pytest.raises(proton.exceptions.ValidationException):
        proton.list_environment_templates(maxResults=101)
    with pytest.raises(proton.exceptions.ValidationException):
        proton.list_environment_templates(nextToken="AAAA")


def test_delete_template_only_without_versions(proton: Any, no_delay: None) -> None:
    proton.create_environment_template(name="env")
    new_version(proton)
    with pytest.raises(proton.exceptions.ConflictException):
        proton.delete_environment_template(name="env")
    proton.delete_environment_template_version(
        templateName="env", majorVersion="1", minorVersion="0"
    )
    deleted = proton.delete_environment_template(name="env")["environmentTemplate"]
    assert deleted["name"] == "env"
    with pytest.raises(proton.exceptions.ResourceNotFoundException):
        proton.get_environment_template(name="env")


# ------------------------------------------------------------------------------- versions
def test_major_and_minor_numbering(proton: Any) -> None:
    proton.create_environment_template(name="env")
    v10 = new_version(proton)
    v11 = new_version(proton, "1")
    v20 = new_version(proton)
    v12 = new_version(proton, "1")
    v21 = new_version(proton, "2")
    numbers = [(v["majorVersion"], v["minorVersion"]) for v in (v10, v11, v20, v12, v21)]
    assert numbers == [("1", "0"), ("1", "1"), ("2", "0"), ("1", "2"), ("2", "1")]
    assert v12["arn"] == f"arn:aws:proton:{REGION}:{ACCOUNT}:environment-template/env:1.2"
    assert v10["templateName"] == "env"
    assert v10["status"] == "REGISTRATION_IN_PROGRESS"


def test_unknown_major_is_not_found(proton: Any) -> None:
    proton.create_environment_template(name="env")
    new_version(proton)
    with pytest.raises(proton.exceptions.ResourceNotFoundException):
        new_version(proton, "2")
    with pytest.raises(proton.exceptions.ResourceNotFoundException):
        get_version(proton, "1", "1")


def test_registration_finishes_after_the_delay(
    proton: Any, harness_emulator: EmulatorThread
) -> None:
    harness_emulator.call(
        lambda: harness_emulator.core.configure({"proton_registration_delay": 0.2})
    )
    proton.create_environment_template(name="env")
    created = new_version(proton, description="first")
    assert created["status"] == "REGISTRATION_IN_PROGRESS"
    assert get_version(proton, "1", "0")["status"] == "REGISTRATION_IN_PROGRESS"
    time.sleep(0.3)
    got = get_version(proton, "1", "0")
    assert got["status"] == "DRAFT"
    assert got["description"] == "first"
    assert got["lastModifiedAt"] >= got["createdAt"]
    listed = proton.list_environment_template_versions(templateName="env")["templateVersions"]
    assert [v["status"] for v in listed] == ["DRAFT"]


def test_settled_status_survives_a_longer_delay(
    proton: Any, harness_emulator: EmulatorThread, no_delay: None
) -> None:
    proton.create_environment_template(name="env")
    assert new_version(proton)["status"] == "DRAFT"
    harness_emulator.call(
        lambda: harness_emulator.core.configure({"proton_registration_delay": 60.0})
    )
    assert get_version(proton, "1", "0")["status"] == "DRAFT"
    assert new_version(proton)["status"] == "REGISTRATION_IN_PROGRESS"


def test_publish_sets_recommendations(proton: Any, no_delay: None) -> None:
    proton.create_environment_template(name="env")
    new_version(proton)
    new_version(proton, "1")
    new_version(proton)
    published = publish(proton, "1", "1")
    assert published["status"] == "PUBLISHED"
    assert published["recommendedMinorVersion"] == "1"
    template = proton.get_environment_template(name="env")["environmentTemplate"]
    assert template["recommendedVersion"] == "1.1"
    publish(proton, "2", "0")
    assert (
        proton.get_environment_template(name="env")["environmentTemplate"]["recommendedVersion"]
        == "2.0"
    )
    # Publishing an older minor does not take the recommendation back.
    publish(proton, "1", "0")
    assert get_version(proton, "1", "0")["recommendedMinorVersion"] == "1"
    summary = proton.list_environment_templates()["templates"][0]
    assert summary["recommendedVersion"] == "2.0"


def test_update_status_rules(proton: Any, harness_emulator: EmulatorThread) -> None:
    harness_emulator.call(
        lambda: harness_emulator.core.configure({"proton_registration_delay": 60.0})
    )
    proton.create_environment_template(name="env")
    new_version(proton)
    with pytest.raises(proton.exceptions.ConflictException):
        publish(proton, "1", "0")
    harness_emulator.call(
        lambda: harness_emulator.core.configure({"proton_registration_delay": 0.0})
    )
    with pytest.raises(proton.exceptions.ValidationException):
        proton.update_environment_template_version(
            templateName="env", majorVersion="1", minorVersion="0", status="REGISTRATION_FAILED"
        )
    publish(proton, "1", "0")
    with pytest.raises(proton.exceptions.ConflictException):
        proton.update_environment_template_version(
            templateName="env", majorVersion="1", minorVersion="0", status="DRAFT"
        )
    described = proton.update_environment_template_version(
        templateName="env", majorVersion="1", minorVersion="0", description="stable"
    )["environmentTemplateVersion"]
    assert (described["status"], described["description"]) == ("PUBLISHED", "stable")
    with pytest.raises(proton.exceptions.ResourceNotFoundException):
        publish(proton, "1", "9")


def test_delete_version_rules(proton: Any, no_delay: None) -> None:
    proton.create_environment_template(name="env")
    new_version(proton)
    new_version(proton, "1")
    new_version(proton)
    publish(proton, "1", "1")
    publish(proton, "2", "0")
    delete = proton.delete_environment_template_version
    # 2.0 is the template's recommended version and 1.1 its major's recommended minor.
    with pytest.raises(proton.exceptions.ConflictException):
        delete(templateName="env", majorVersion="2", minorVersion="0")
    with pytest.raises(proton.exceptions.ConflictException):
        delete(templateName="env", majorVersion="1", minorVersion="1")
    deleted = delete(templateName="env", majorVersion="1", minorVersion="0")
    assert deleted["environmentTemplateVersion"]["minorVersion"] == "0"
    delete(templateName="env", majorVersion="1", minorVersion="1")  # now the last of major 1
    with pytest.raises(proton.exceptions.ResourceNotFoundException):
        get_version(proton, "1", "1")
    with pytest.raises(proton.exceptions.ResourceNotFoundException):
        new_version(proton, "1")  # the major went with its last minor
    delete(templateName="env", majorVersion="2", minorVersion="0")  # the last version
    template = proton.get_environment_template(name="env")["environmentTemplate"]
    assert "recommendedVersion" not in template
    # Numbers are not reused: the next major is 3.
    assert new_version(proton)["majorVersion"] == "3"


def test_list_versions_filter_and_pagination(proton: Any, no_delay: None) -> None:
    proton.create_environment_template(name="env")
    expected = []
    for _ in range(3):
        first = new_version(proton)
        expected.append((first["majorVersion"], "0"))
        for _ in range(39):
            v = new_version(proton, first["majorVersion"])
            expected.append((v["majorVersion"], v["minorVersion"]))
    paginator = proton.get_paginator("list_environment_template_versions")
    pages = list(paginator.paginate(templateName="env", PaginationConfig={"PageSize": 50}))
    listed = [(v["majorVersion"], v["minorVersion"]) for p in pages for v in p["templateVersions"]]
    assert listed == expected
    assert len(pages) == 3
    major2 = [
        v["minorVersion"]
        for p in paginator.paginate(
            templateName="env", majorVersion="2", PaginationConfig={"PageSize": 7}
        )
        for v in p["templateVersions"]
    ]
    assert major2 == [str(i) for i in range(40)]
    none = proton.list_environment_template_versions(templateName="env", majorVersion="9")
    assert none["templateVersions"] == []
    token = proton.list_environment_template_versions(templateName="env", maxResults=1)["nextToken"]
    with pytest.raises(proton.exceptions.ValidationException):
        proton.list_environment_template_versions(
            templateName="env", majorVersion="1", nextToken=token
        )


# ---------------------------------------------------------------------------- idempotency
def test_client_token_returns_the_same_version(proton: Any) -> None:
    proton.create_environment_template(name="env")
    kwargs = {"templateName": "env", "source": SOURCE, "clientToken": "tok-1"}
    first = proton.create_environment_template_version(**kwargs)["environmentTemplateVersion"]
    again = proton.create_environment_template_version(**kwargs)["environmentTemplateVersion"]
    assert (again["majorVersion"], again["minorVersion"]) == ("1", "0")
    assert again["arn"] == first["arn"]
    listed = proton.list_environment_template_versions(templateName="env")["templateVersions"]
    assert len(listed) == 1
    with pytest.raises(proton.exceptions.ConflictException):
        proton.create_environment_template_version(**kwargs, description="other")


@pytest.mark.anyio
async def test_concurrent_versions_get_distinct_numbers(harness_emulator: EmulatorThread) -> None:
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "proton",
        endpoint_url=harness_emulator.url,
        region_name=REGION,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
    ) as client:
        await client.create_environment_template(name="env")
        await client.create_environment_template_version(templateName="env", source=SOURCE)
        created = await asyncio.gather(
            *(
                client.create_environment_template_version(
                    templateName="env", majorVersion="1", source=SOURCE
                )
                for _ in range(10)
            )
        )
        minors = sorted(int(c["environmentTemplateVersion"]["minorVersion"]) for c in created)
        assert minors == list(range(1, 11))


def test_stats_count_templates_and_versions(
    proton: Any, harness_emulator: EmulatorThread, no_delay: None
) -> None:
    proton.create_environment_template(name="env")
    new_version(proton)
    new_version(proton, "1")
    proton.delete_environment_template_version(
        templateName="env", majorVersion="1", minorVersion="0"
    )
    stats = harness_emulator.call(harness_emulator.core.stats)
    assert stats["resources"]["proton"] == {
        "EnvironmentTemplate": 1,
        "EnvironmentTemplateVersion": 1,
    }
