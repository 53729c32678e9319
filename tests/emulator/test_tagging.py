"""The tagging operations on the resources the emulator keeps itself (IoT thing groups, packages
and package versions; Proton environment templates and their versions), through boto3.

The responses are checked against their output shapes by the shared fixture, so a tag list in
the wrong form (a map where the model wants key/value structures) fails every test here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest

from harness.emulator._server import EmulatorThread

ACCOUNT = "123456789012"
REGION = "us-east-1"
SOURCE = {"s3": {"bucket": "templates", "key": "env/bundle.tar.gz"}}


@pytest.fixture
def iot(aws_client: Callable[..., Any]) -> Any:
    return aws_client("iot")


@pytest.fixture
def proton(aws_client: Callable[..., Any], harness_emulator: EmulatorThread) -> Any:
    harness_emulator.call(
        lambda: harness_emulator.core.configure({"proton_registration_delay": 0.0})
    )
    return aws_client("proton")


def code_of(info: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def iot_tags(iot: Any, arn: str) -> dict[str, str]:
    return {
        t["Key"]: t.get("Value", "") for t in iot.list_tags_for_resource(resourceArn=arn)["tags"]
    }


def proton_tags(proton: Any, arn: str) -> dict[str, str]:
    return {t["key"]: t["value"] for t in proton.list_tags_for_resource(resourceArn=arn)["tags"]}


class TestIot:
    def test_thing_group_tags_from_create_tag_and_untag(self, iot: Any) -> None:
        arn = iot.create_thing_group(
            thingGroupName="fleet",
            tags=[{"Key": "team", "Value": "a"}, {"Key": "env", "Value": "x"}],
        )["thingGroupArn"]
        assert iot_tags(iot, arn) == {"team": "a", "env": "x"}
        iot.tag_resource(
            resourceArn=arn, tags=[{"Key": "team", "Value": "b"}, {"Key": "k", "Value": "v"}]
        )
        iot.untag_resource(resourceArn=arn, tagKeys=["env", "never-set"])
        assert iot_tags(iot, arn) == {"team": "b", "k": "v"}

    def test_an_idempotent_create_keeps_the_first_tags(self, iot: Any) -> None:
        arn = iot.create_thing_group(thingGroupName="g", tags=[{"Key": "a", "Value": "1"}])[
            "thingGroupArn"
        ]
        iot.create_thing_group(thingGroupName="g", tags=[{"Key": "b", "Value": "2"}])
        assert iot_tags(iot, arn) == {"a": "1"}

    def test_untagged_group_lists_no_tags(self, iot: Any) -> None:
        arn = iot.create_thing_group(thingGroupName="bare")["thingGroupArn"]
        assert iot_tags(iot, arn) == {}

    def test_package_and_version_tags(self, iot: Any) -> None:
        # CreatePackage takes a map, CreatePackageVersion too; ListTagsForResource answers a list.
        package = iot.create_package(packageName="pkg", tags={"owner": "me"})["packageArn"]
        version = iot.create_package_version(
            packageName="pkg", versionName="1.0", tags={"build": "7"}
        )["packageVersionArn"]
        assert iot_tags(iot, package) == {"owner": "me"}
        assert iot_tags(iot, version) == {"build": "7"}
        iot.tag_resource(resourceArn=version, tags=[{"Key": "qa", "Value": "ok"}])
        assert iot_tags(iot, version) == {"build": "7", "qa": "ok"}
        assert iot_tags(iot, package) == {"owner": "me"}

    def test_deleted_or_missing_resources_are_not_found(self, iot: Any) -> None:
        arn = iot.create_thing_group(thingGroupName="gone", tags=[{"Key": "a", "Value": "1"}])[
            "thingGroupArn"
        ]
        iot.delete_thing_group(thingGroupName="gone")
        missing = [
            arn,
            f"arn:aws:iot:{REGION}:{ACCOUNT}:package/nope",
            f"arn:aws:iot:{REGION}:{ACCOUNT}:package/nope/version/1.0",
        ]
        for resource in missing:
            with pytest.raises(botocore.exceptions.ClientError) as info:
                iot.list_tags_for_resource(resourceArn=resource)
            assert code_of(info) == "ResourceNotFoundException", resource
            with pytest.raises(botocore.exceptions.ClientError) as info:
                iot.tag_resource(resourceArn=resource, tags=[{"Key": "a", "Value": "1"}])
            assert code_of(info) == "ResourceNotFoundException", resource

    def test_a_recreated_group_does_not_inherit_tags(self, iot: Any) -> None:
        iot.create_thing_group(thingGroupName="again", tags=[{"Key": "a", "Value": "1"}])
        iot.delete_thing_group(thingGroupName="again")
        arn = iot.create_thing_group(thingGroupName="again")["thingGroupArn"]
        assert iot_tags(iot, arn) == {}

    def test_other_resource_types_are_answered_generically(self, iot: Any) -> None:
        # A thing is not taggable in IoT; its ARN is left to the generic handler.
        arn = iot.create_thing(thingName="t")["thingArn"]
        assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == []


class TestProton:
    def test_template_and_version_tags(self, proton: Any) -> None:
        template = proton.create_environment_template(
            name="tpl", tags=[{"key": "team", "value": "a"}]
        )["environmentTemplate"]["arn"]
        version = proton.create_environment_template_version(
            templateName="tpl", source=SOURCE, tags=[{"key": "rev", "value": "1"}]
        )["environmentTemplateVersion"]["arn"]
        assert version == f"arn:aws:proton:{REGION}:{ACCOUNT}:environment-template/tpl:1.0"
        assert proton_tags(proton, template) == {"team": "a"}
        assert proton_tags(proton, version) == {"rev": "1"}
        proton.tag_resource(resourceArn=template, tags=[{"key": "x", "value": "y"}])
        proton.untag_resource(resourceArn=template, tagKeys=["team"])
        assert proton_tags(proton, template) == {"x": "y"}

    def test_more_tags_than_the_model_allows_are_refused(self, proton: Any) -> None:
        arn = proton.create_environment_template(
            name="full", tags=[{"key": f"k{i}", "value": "v"} for i in range(40)]
        )["environmentTemplate"]["arn"]
        extra = [{"key": f"e{i}", "value": "v"} for i in range(11)]
        with pytest.raises(botocore.exceptions.ClientError) as info:
            proton.tag_resource(resourceArn=arn, tags=extra)
        # Proton's TagResource declares no too-many-tags error: its validation error says it.
        assert code_of(info) == "ValidationException"
        assert "at most 50 tags" in info.value.response["Error"]["Message"]
        assert len(proton_tags(proton, arn)) == 40

    def test_missing_versions_are_not_found(self, proton: Any) -> None:
        proton.create_environment_template(name="tpl")
        prefix = f"arn:aws:proton:{REGION}:{ACCOUNT}:environment-template/"
        for arn in (prefix + "tpl:9.0", prefix + "tpl:x.y", prefix + "other"):
            with pytest.raises(botocore.exceptions.ClientError) as info:
                proton.list_tags_for_resource(resourceArn=arn)
            assert code_of(info) == "ResourceNotFoundException", arn
