"""Rate limiting for the engine: token buckets keyed by quota, and an adaptive controller.

Concurrency (how many calls are in flight) is :class:`anyio.CapacityLimiter`'s job; this package
limits the *rate* (calls per second), per (identity, region, service, operation):

* :class:`TokenBucket`: a GCRA token bucket; ``acquire()`` sleeps until its reserved slot, FIFO;
* :class:`AdaptiveRate`: moves a bucket's rate with throttling feedback (CUBIC, like botocore's
  adaptive mode, but per bucket and with a cooldown against throttle storms);
* :class:`BucketRegistry`: one bucket and controller per key, starting a little under the
  model's quota (:data:`DEFAULT_HEADROOM`).

>>> bucket = TokenBucket(rate=100.0)
>>> bucket.capacity
100.0
"""

from __future__ import annotations

from harness.throttle._adaptive import AdaptiveRate, AdaptiveStatistics
from harness.throttle._bucket import BucketStatistics, TokenBucket, WouldBlock
from harness.throttle._registry import DEFAULT_HEADROOM, BucketRegistry

__all__ = [
    "DEFAULT_HEADROOM",
    "AdaptiveRate",
    "AdaptiveStatistics",
    "BucketRegistry",
    "BucketStatistics",
    "TokenBucket",
    "WouldBlock",
]
