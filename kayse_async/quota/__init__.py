"""Rate-limit schedulers: how kayse_async spends a key's budget without earning a 429.

``MemoryQuota`` (the default, one budget per key per process, shared by every
client on any loop or thread; ``default_quota()`` returns the process-wide
instance) and ``RedisQuota`` (one budget per key across processes and
machines, behind the ``redis`` extra). Both implement the ``Quota`` protocol;
``docs/quota.md`` explains the algorithm.
"""

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
