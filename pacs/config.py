"""Access to the runtime settings row, cached briefly per process so that the SCP does not
read it for every instance, yet picks up changes made in the console within seconds."""

from __future__ import annotations

import os
import threading
import time

from django.conf import settings

from pacs.models import RuntimeSettings

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
    global _cached
    with _lock:
        _cached = None


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
    return row
