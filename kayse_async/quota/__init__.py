"""Rate-limit schedulers: ``MemoryQuota`` (the default; ``default_quota()`` is the process-wide one) and
``RedisQuota`` (one budget across processes and machines, the ``redis`` extra), both ``Quota``s: docs/quota.md."""

from ._base import DEFAULT_LIMIT, DEFAULT_PERIOD, Lease, Quota, QuotaWait, WaitCallback
from ._memory import MemoryLease, MemoryQuota, default_quota
from ._redis import RedisLease, RedisQuota

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_PERIOD",
    "Lease",
    "MemoryLease",
    "MemoryQuota",
    "Quota",
    "QuotaWait",
    "RedisLease",
    "RedisQuota",
    "WaitCallback",
    "default_quota",
]
