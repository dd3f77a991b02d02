"""The API's rate throttles: DRF's anonymous and per-user ones with their counters in one Redis call.

Kept apart from giz_site.throttling (the client address, the lockout answer): DRF imports throttle classes
while it sets up its views, and that module imports the error format, which imports DRF's views.
"""

from django.core.cache.backends.redis import RedisCache
from django.utils.connection import ConnectionProxy
from rest_framework import throttling

# DRF's sliding log (the times of the requests inside the period, newest first) kept as a Redis list and
# checked and appended in one script: one round trip per request instead of DRF's GET then SET, and atomic, so
# concurrent requests of one client cannot all read the same history and slip past the limit together.
# Returns {allowed, requests in the log, the oldest one's time}; the times are strings (Lua numbers would
# come back truncated to integers).
_SLIDING_LOG = """
local key, now, duration, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
while true do
  local oldest = redis.call('LINDEX', key, -1)
  if not oldest or tonumber(oldest) > now - duration then break end
  redis.call('RPOP', key)
end
local n = redis.call('LLEN', key)
if n >= limit then
  return {0, n, redis.call('LINDEX', key, -1)}
end
redis.call('LPUSH', key, ARGV[1])
redis.call('EXPIRE', key, duration)
return {1, n + 1, redis.call('LINDEX', key, -1)}
"""
_scripts: dict[int, tuple] = {}


def _sliding_log_script(cache):
    """The script bound to a client of the cache's Redis (one per process and connection pool), or None when
    the cache is not Redis (the embedded default's file cache: DRF's own GET and SET)."""
    if isinstance(cache, ConnectionProxy):  # django.core.cache.cache: the backend of this thread
        cache = cache._connections[cache._alias]
    if not isinstance(cache, RedisCache):
        return None
    # Django's Redis cache builds a client object on every call; the script keeps one on the same pool.
    pool = cache._cache._get_connection_pool(write=True)
    kept = _scripts.get(id(pool))
    if kept is None or kept[0] is not pool:  # (the pool is kept in the entry, so its id is not reused)
        client = cache._cache._client(connection_pool=pool)
        kept = _scripts[id(pool)] = (pool, client.register_script(_SLIDING_LOG))
    return kept[1]


class _OneCallMixin:
    """DRF's rate throttle (same rates, scopes, keys and Retry-After) with its log kept by _SLIDING_LOG."""

    def allow_request(self, request, view):
        script = _sliding_log_script(self.cache)
        if script is None or self.rate is None:
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        allowed, n, oldest = script(
            keys=[self.cache.make_key(f"{self.key}:log")], args=[repr(self.now), self.duration, self.num_requests]
        )
        # What DRF's wait() reads: the log's length and its oldest entry (the entries between do not matter).
        self.history = [self.now] * (int(n) - 1) + [float(oldest)]
        return bool(allowed)


class AnonRateThrottle(_OneCallMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_OneCallMixin, throttling.UserRateThrottle):
    pass
