"""Strict environment parsing: a value we cannot understand stops start-up and names the variable."""

import json
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the environment variable {name}.")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_json(name: str, default):
    """A JSON value (object, list, number ...); text that is not JSON is an error naming the variable."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be JSON: {exc}") from None


def env_database(name: str, default: str) -> dict:
    raw = os.environ.get(name, default)
    try:
        config = environ.Env.db_url_config(raw)
    except Exception as exc:  # django-environ raises several types for a bad URL
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from None
    if not config.get("ENGINE"):
        raise ImproperlyConfigured(f"{name}={raw!r}: unknown database scheme.")
    return config


def env_cache(name: str, default: str) -> dict:
    """A Django cache from a URL: redis://host:6379/1, filecache:///path, dbcache://table, locmemcache://."""
    raw = os.environ.get(name, default)
    try:
        config = environ.Env.cache_url_config(raw)
    except Exception as exc:  # django-environ raises several types for a bad URL
        raise ImproperlyConfigured(f"{name} is not a valid cache URL: {exc}") from None
    if not config.get("BACKEND"):
        raise ImproperlyConfigured(f"{name}={raw!r}: unknown cache scheme.")
    return config


def env_secret(name: str, *, fallback_file: Path | None = None) -> str:
    """Read a secret; outside production, a random one is kept in `fallback_file`.

    Production settings pass no fallback, so a missing secret stops start-up.
    """
    value = os.environ.get(name)
    if value:
        return value
    if fallback_file is None:
        raise ImproperlyConfigured(f"Set the environment variable {name}; it has no default.")
    if not fallback_file.exists():
        from django.core.management.utils import get_random_secret_key

        fallback_file.parent.mkdir(parents=True, exist_ok=True)
        fallback_file.write_text(get_random_secret_key())
        fallback_file.chmod(0o600)
    return fallback_file.read_text().strip()
