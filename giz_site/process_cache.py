"""Values a process keeps for a few seconds: read on every request, changed rarely (the standard galaxies).

Each web process rebuilds such a value at most once per period, so an edit shows within that period everywhere
without a cross-process invalidation; a period of 0 (the test settings) reads afresh every time.
"""

import threading
import time
from collections.abc import Callable, Hashable

from django.conf import settings


class ProcessCache:
    """`build(key)` kept per key for the number of seconds in the setting `seconds_setting`."""

    def __init__(self, build: Callable[[Hashable], object], *, seconds_setting: str):
        self._build = build
        self._setting = seconds_setting
        self._values: dict[Hashable, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable = None):
        seconds = getattr(settings, self._setting)
        kept = self._values.get(key)
        now = time.monotonic()
        if kept is not None and now - kept[0] < seconds:
            return kept[1]
        # One thread of the process rebuilds; the others wait for it rather than all querying at once.
        with self._lock:
            kept = self._values.get(key)
            if kept is not None and time.monotonic() - kept[0] < seconds:
                return kept[1]
            value = self._build(key)
            self._values[key] = (time.monotonic(), value)
            return value

    def clear(self) -> None:
        self._values.clear()
