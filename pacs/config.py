"""Access to the runtime settings row, cached briefly per process so that the SCP does not
read it for every instance, yet picks up changes made in the console within seconds."""

from __future__ import annotations

import os
import threading
import time

from django.conf import settings

from pacs.models import AmqpSettings, RuntimeSettings

_CACHE_SECONDS = 2.0
_lock = threading.Lock()
_cached: tuple[float, RuntimeSettings] | None = None


def _defaults() -> dict:
    return {field: read() for field, (_name, read) in settings.PACS_RUNTIME_ENV.items()}


def get_runtime_settings(*, fresh: bool = False) -> RuntimeSettings:
    """The settings row (created from the defaults on first use)."""
    global _cached
    now = time.monotonic()
    with _lock:
        if not fresh and _cached and now - _cached[0] < _CACHE_SECONDS:
            return _cached[1]
    row, _created = RuntimeSettings.objects.get_or_create(pk=1, defaults=_defaults())
    if not row.temp_dir:
        row.temp_dir = _defaults()["temp_dir"]
    with _lock:
        _cached = (now, row)
    return row


def invalidate_runtime_settings() -> None:
    """Forget the cached rows (the runtime settings and the RabbitMQ settings)."""
    global _cached, _amqp_cached
    with _lock:
        _cached = None
        _amqp_cached = None


def apply_environment() -> RuntimeSettings:
    """Write every explicitly set ``PACS_*`` runtime option into the row (env wins at start)."""
    row = get_runtime_settings(fresh=True)
    changed = []
    for field, (env_name, read) in settings.PACS_RUNTIME_ENV.items():
        if env_name in os.environ:
            value = read()
            if getattr(row, field) != value:
                setattr(row, field, value)
                changed.append(field)
    if changed:
        row.save(update_fields=[*changed, "updated_at"])
    invalidate_runtime_settings()
    apply_amqp_environment()
    return row


_amqp_cached: tuple[float, AmqpSettings] | None = None


def get_amqp_settings(*, fresh: bool = False) -> AmqpSettings:
    """The RabbitMQ settings row [AMQP-1] (created with the defaults on first use), cached
    like the runtime settings: the ingest path asks at every new study and series."""
    global _amqp_cached
    now = time.monotonic()
    with _lock:
        if not fresh and _amqp_cached and now - _amqp_cached[0] < _CACHE_SECONDS:
            return _amqp_cached[1]
    row, _created = AmqpSettings.objects.get_or_create(pk=1)
    with _lock:
        _amqp_cached = (now, row)
    return row


def invalidate_amqp_settings() -> None:
    global _amqp_cached
    with _lock:
        _amqp_cached = None


def apply_amqp_environment() -> AmqpSettings:
    """``PACS_AMQP_ENABLED`` and ``PACS_AMQP_URL``, when set, into the RabbitMQ settings row
    (env wins at start, like the runtime options)."""
    row = get_amqp_settings(fresh=True)
    values: dict[str, object] = {}
    if os.environ.get("PACS_AMQP_URL", "").strip():
        values.update(settings.PACS_AMQP_URL)
    if "PACS_AMQP_ENABLED" in os.environ:
        values["enabled"] = settings.PACS_AMQP_ENABLED
    changed = [field for field, value in values.items() if getattr(row, field) != value]
    for field in changed:
        setattr(row, field, values[field])
    if changed:
        row.save(update_fields=[*changed, "updated_at"])
    invalidate_amqp_settings()
    return row
