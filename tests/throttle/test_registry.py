"""BucketRegistry: one bucket per (identity, region, service, operation), quotas, overrides."""

from __future__ import annotations

import re

import anyio
import pytest
from trio.testing import MockClock

from harness.errors import InvalidArgument, UnknownOperation
from harness.throttle import DEFAULT_HEADROOM, AdaptiveRate, BucketRegistry, TokenBucket

KEY = ("acct-1", "us-east-1", "iot", "CreateThing")


@pytest.fixture
def anyio_backend() -> object:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


class TestKeys:
    def test_same_key_same_bucket(self) -> None:
        registry = BucketRegistry()
        assert registry.bucket(*KEY) is registry.bucket(*KEY)
        assert registry.controller(*KEY) is registry.controller(*KEY)
        assert len(registry) == 1

    @pytest.mark.parametrize(
        "other",
        [
            ("acct-2", "us-east-1", "iot", "CreateThing"),
            ("acct-1", "eu-west-1", "iot", "CreateThing"),
            ("acct-1", "us-east-1", "iot", "ListThings"),
            ("acct-1", "us-east-1", "greengrassv2", "CreateDeployment"),
        ],
    )
    def test_any_different_part_is_a_different_bucket(
        self, other: tuple[str, str, str, str]
    ) -> None:
        registry = BucketRegistry()
        assert registry.bucket(*KEY) is not registry.bucket(*other)
        assert registry.controller(*KEY) is not registry.controller(*other)

    def test_controller_drives_its_own_bucket(self) -> None:
        registry = BucketRegistry()
        controller = registry.controller(*KEY)
        assert isinstance(controller, AdaptiveRate)
        assert len(registry) == 1  # created the bucket too
        controller.ceiling = 40.0
        assert registry.bucket(*KEY).rate == 40.0

    def test_not_adaptive_has_no_controllers(self) -> None:
        registry = BucketRegistry(adaptive=False)
        assert registry.controller(*KEY) is None
        assert isinstance(registry.bucket(*KEY), TokenBucket)


class TestRates:
    @pytest.mark.parametrize(
        ("service", "operation", "tps"),
        [
            ("iot", "CreateThing", 100.0),
            ("iot", "ListThings", 10.0),
            ("greengrassv2", "CreateDeployment", 10.0),  # a guess: nothing is published
        ],
    )
    def test_defaults_come_from_the_model_quotas(
        self, service: str, operation: str, tps: float
    ) -> None:
        # A little under the quota: at exactly the quota, jitter gets calls throttled.
        registry = BucketRegistry()
        bucket = registry.bucket("a", "us-east-1", service, operation)
        default = pytest.approx(tps * DEFAULT_HEADROOM)
        # Half a second's burst: the other half of the service's is left for jitter.
        assert (bucket.rate, bucket.capacity) == (default, pytest.approx(tps * 0.97 / 2))
        controller = registry.controller("a", "us-east-1", service, operation)
        assert controller is not None and controller.ceiling == default
        exact = BucketRegistry(headroom=1.0).bucket("a", "us-east-1", service, operation)
        assert exact.rate == tps

    @pytest.mark.parametrize("headroom", [0, -0.5, 1.5, float("nan"), True, "0.9"])
    def test_bad_headroom(self, headroom: object) -> None:
        with pytest.raises(InvalidArgument, match="headroom"):
            BucketRegistry(headroom=headroom)  # type: ignore[arg-type]

    def test_unknown_operation_is_a_model_error(self) -> None:
        with pytest.raises(UnknownOperation):
            BucketRegistry().bucket("a", "us-east-1", "iot", "NoSuchThing")

    def test_custom_rates(self) -> None:
        seen: list[tuple[str, str]] = []

        def rates(service: str, operation: str) -> float:
            seen.append((service, operation))
            return 2.5

        registry = BucketRegistry(rates)
        assert registry.bucket(*KEY).rate == 2.5
        registry.bucket(*KEY)
        assert seen == [("iot", "CreateThing")]  # asked once, on creation

    def test_custom_rates_are_validated(self) -> None:
        with pytest.raises(InvalidArgument, match=re.escape("tps=0.0")):
            BucketRegistry(lambda s, o: 0.0).bucket(*KEY)


class TestOverride:
    def test_applies_to_existing_and_future_buckets(self) -> None:
        registry = BucketRegistry()
        before = registry.bucket(*KEY)
        registry.override("iot", "CreateThing", 40.0)
        after = registry.bucket("acct-2", "eu-west-1", "iot", "CreateThing")
        for key in (KEY, ("acct-2", "eu-west-1", "iot", "CreateThing")):
            controller = registry.controller(*key)
            assert controller is not None
            assert (controller.rate, controller.ceiling) == (40.0, 40.0)
        assert before.rate == after.rate == 40.0
        untouched = registry.bucket("a", "r", "iot", "ListThings").rate
        assert untouched == pytest.approx(10.0 * DEFAULT_HEADROOM)

    def test_service_none_means_any_service_and_specific_wins(self) -> None:
        registry = BucketRegistry(lambda s, o: 10.0, adaptive=False)
        iot = registry.bucket("a", "r", "iot", "CreateJob")
        registry.override("iot", "CreateJob", 3.0)
        registry.override(None, "CreateJob", 7.0)
        other = registry.bucket("a", "r", "othersvc", "CreateJob")
        assert (iot.rate, other.rate) == (3.0, 7.0)
        assert registry.bucket("b", "r", "iot", "CreateJob").rate == 3.0

    @pytest.mark.anyio
    async def test_override_resets_the_adaptive_state(self) -> None:
        registry = BucketRegistry()
        controller = registry.controller(*KEY)
        assert controller is not None
        controller.on_throttle()
        registry.override(None, "CreateThing", 150.0)
        assert controller.rate == controller.ceiling == 150.0
        assert controller.on_throttle()  # no cooldown left over from before

    def test_invalid_tps(self) -> None:
        with pytest.raises(InvalidArgument, match=re.escape("tps=-1")):
            BucketRegistry().override(None, "CreateThing", -1)


class TestSnapshot:
    @pytest.mark.anyio
    async def test_snapshot_for_reports(self) -> None:
        registry = BucketRegistry(headroom=1.0)
        registry.bucket(*KEY)
        registry.bucket("acct-1", "eu-west-1", "iot", "CreateThing")
        controller = registry.controller("a", "r", "greengrassv2", "CreateDeployment")
        assert controller is not None
        controller.on_throttle()
        assert registry.snapshot() == {
            "greengrassv2.CreateDeployment": {
                "rate": pytest.approx(7.0),
                "ceiling": 10.0,
                "throttles": 1.0,
                "buckets": 1.0,
            },
            "iot.CreateThing": {"rate": 200.0, "ceiling": 200.0, "throttles": 0.0, "buckets": 2.0},
        }

    @pytest.mark.anyio
    async def test_shared_by_tasks(self) -> None:
        registry = BucketRegistry(lambda s, o: 10.0)

        async def call() -> None:
            await registry.bucket(*KEY).acquire()

        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(call)
        # A burst of 5 (half a second's worth), then 25 more at 10 per second.
        assert anyio.current_time() - start == pytest.approx(2.5)
        assert len(registry) == 1
