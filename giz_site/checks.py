"""System checks that catch misconfiguration before the first request or task."""

import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

KNOWN_BROKER_SCHEMES = {"filesystem", "redis", "rediss", "amqp", "amqps", "pyamqp", "memory"}


@register(Tags.compatibility)
def check_storage_writable(app_configs, **kwargs):
    if settings.GIZ_STORAGE_BACKEND != "local":
        return []
    media = Path(settings.MEDIA_ROOT)
    try:
        media.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=media):
            pass
    except OSError as exc:
        return [
            Error(
                f"The media storage {media} is not writable: {exc.strerror}.",
                hint="Set GIZ_DATA_DIR to a folder this process can write, or fix its permissions.",
                id="giz.E001",
            )
        ]
    return []


@register(Tags.compatibility)
def check_broker_url(app_configs, **kwargs):
    url = settings.CELERY_BROKER_URL
    parts = urlsplit(url)
    if parts.scheme not in KNOWN_BROKER_SCHEMES:
        return [
            Error(
                f"CELERY_BROKER_URL={url!r} has an unknown scheme {parts.scheme!r}.",
                hint="Use redis://host:6379/0, amqp://user:pass@host:5672// or filesystem://.",
                id="giz.E002",
            )
        ]
    if parts.scheme != "filesystem" and parts.scheme != "memory":
        try:
            port = parts.port
        except ValueError:
            port = None
            bad_port = True
        else:
            bad_port = False
        if not parts.hostname or bad_port:
            return [
                Error(
                    f"CELERY_BROKER_URL={url!r} lacks a valid host or port.",
                    hint="For example redis://127.0.0.1:6379/0.",
                    id="giz.E002",
                )
            ]
        del port
    return []


PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@register(Tags.security, deploy=True)
def check_shared_cache(app_configs, **kwargs):
    backend = settings.CACHES["default"]["BACKEND"]
    if backend in PER_PROCESS_CACHES:
        return [
            Warning(
                f"The default cache ({backend.rsplit('.', 1)[-1]}) is not shared between processes, so every web "
                "process keeps its own API throttle counters and the real limit is multiplied by their number.",
                hint="Set GIZ_CACHE_URL=redis://host:6379/1 (or filecache:///path on a single machine).",
                id="giz.W003",
            )
        ]
    return []
