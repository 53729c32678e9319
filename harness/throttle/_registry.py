"""One token bucket per (identity, region, service, operation), shared by every task of a run.

AWS applies its TPS quotas per account, per Region and per operation, so that is how we key the
buckets (the identity stands for the account, or for whatever the caller's credentials share a
quota with). botocore's adaptive limiter lives inside one client instead, which is why N clients
together overshoot and a slow operation drags a fast one down (aws-facts section 3.5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import InvalidArgument
from harness.model import load_service
from harness.throttle._adaptive import AdaptiveRate
from harness.throttle._bucket import TokenBucket

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.model import Quota

__all__ = ["DEFAULT_HEADROOM", "BucketRegistry"]

_Key = tuple[str, str, str, str]

#: The share of a published quota the default rate uses. At exactly the quota, client and service
#: buckets run empty side by side after the first second's burst, and any jitter in when requests
#: reach the service (a late packet, a GC pause) lands some just before the service has a token:
#: about 2% of the calls are throttled. Three per cent below it the service's bucket keeps
#: enough spare tokens to absorb that jitter, at a cost of 3% of the quota.
DEFAULT_HEADROOM = 0.97

#: The buckets' burst, in seconds' worth of tokens, when the model publishes none. AWS's buckets
#: hold one second's worth; taking half of it at most leaves the other half to absorb jitter
#: (and other clients of the account), which one second's worth at the quota's pace cannot.
_BURST_SECONDS = 0.5


def _model_quota(service: str, operation: str) -> Quota:
    return load_service(service).operation(operation).quota


def _check_tps(tps: float) -> float:
    if isinstance(tps, bool) or not isinstance(tps, int | float) or not 0 < tps < float("inf"):
        raise InvalidArgument(f"tps must be a positive finite number; got tps={tps!r}")
    return float(tps)


class BucketRegistry:
    """Create and hand out the buckets (and their adaptive controllers) of a run.

    A bucket is created on first use at ``rates(service, operation)`` TPS, which is also its
    controller's ceiling. All methods are synchronous and never await, so tasks of one event
    loop can share a registry without a lock.

    :param rates: the starting rate of an operation; defaults to the model's quota
        (``load_service(service).operation(operation).quota``, whose ``burst``, when published,
        becomes the bucket's capacity)
    :param adaptive: give each bucket an :class:`~harness.throttle.AdaptiveRate` controller
    :param headroom: the share of the model's quota that the default rate uses (overrides and
        ``rates`` are taken as given)
    """

    __slots__ = ("_adaptive", "_buckets", "_controllers", "_headroom", "_overrides", "_rates")

    def __init__(
        self,
        rates: Callable[[str, str], float] | None = None,
        *,
        adaptive: bool = True,
        headroom: float = DEFAULT_HEADROOM,
    ) -> None:
        if isinstance(headroom, bool) or not isinstance(headroom, int | float):
            raise InvalidArgument(f"headroom must be a number in (0, 1]; got {headroom!r}")
        if not 0 < headroom <= 1:
            raise InvalidArgument(f"headroom must be in (0, 1]; got headroom={headroom!r}")
        self._rates = rates
        self._adaptive = adaptive
        self._headroom = float(headroom)
        self._buckets: dict[_Key, TokenBucket] = {}
        self._controllers: dict[_Key, AdaptiveRate] = {}
        # (service or None, operation) -> tps; a service-specific entry beats a None one.
        self._overrides: dict[tuple[str | None, str], float] = {}

    def _override_for(self, service: str, operation: str) -> float | None:
        found = self._overrides.get((service, operation))
        return found if found is not None else self._overrides.get((None, operation))

    def _create(self, key: _Key) -> TokenBucket:
        _, _, service, operation = key
        tps = self._override_for(service, operation)
        capacity: float | None = None
        if tps is None:
            if self._rates is not None:
                tps = _check_tps(self._rates(service, operation))
            else:
                quota = _model_quota(service, operation)
                tps, capacity = quota.tps * self._headroom, quota.burst
        bucket = TokenBucket(tps, capacity, burst=_BURST_SECONDS)
        self._buckets[key] = bucket
        if self._adaptive:
            self._controllers[key] = AdaptiveRate(bucket, ceiling=tps)
        return bucket

    def bucket(self, identity: str, region: str, service: str, operation: str) -> TokenBucket:
        """The bucket for this key, created on first use.

        :param operation: the operation's API name (``CreateThing``), as the model spells it
        :raises harness.errors.ModelError: when the default rates cannot find the operation
        """
        key = (identity, region, service, operation)
        found = self._buckets.get(key)
        return found if found is not None else self._create(key)

    def controller(
        self, identity: str, region: str, service: str, operation: str
    ) -> AdaptiveRate | None:
        """The adaptive controller of this key's bucket (created on first use), or ``None``
        when the registry is not adaptive."""
        if not self._adaptive:
            return None

        key = (identity, region, service, operation)
        if key not in self._controllers:
            self._create(key)
        return self._controllers[key]

    def override(self, service: str | None, operation: str, tps: float) -> None:
        """Pin an operation's rate and ceiling to ``tps``, for existing and future buckets.

        :param service: the service, or ``None`` for this operation name in any service
            (a service-specific override takes precedence over a ``None`` one)
        :raises InvalidArgument: when ``tps <= 0``
        """
        tps = _check_tps(tps)
        self._overrides[(service, operation)] = tps
        for key, bucket in self._buckets.items():
            _, _, key_service, key_operation = key
            if key_operation != operation or (service is not None and key_service != service):
                continue
            if service is None and (key_service, operation) in self._overrides:
                continue  # a more specific override holds for this service

            controller = self._controllers.get(key)
            if controller is not None:
                controller.ceiling = tps
                controller.reset(tps)
            else:
                bucket.set_rate(tps)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Rates per operation for reports, keyed ``"service.Operation"``.

        Buckets of the same operation in several regions or identities are summed: ``rate`` and
        ``ceiling`` are the total TPS allowed, ``throttles`` the total decreases, ``buckets``
        their number.
        """
        out: dict[str, dict[str, float]] = {}
        for key, bucket in self._buckets.items():
            _, _, service, operation = key
            controller = self._controllers.get(key)
            row = out.setdefault(
                f"{service}.{operation}",
                {"rate": 0.0, "ceiling": 0.0, "throttles": 0.0, "buckets": 0.0},
            )
            row["rate"] += bucket.rate
            row["ceiling"] += controller.ceiling if controller is not None else bucket.rate
            row["throttles"] += controller.throttles if controller is not None else 0
            row["buckets"] += 1
        return dict(sorted(out.items()))

    def __len__(self) -> int:
        return len(self._buckets)
