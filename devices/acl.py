"""Device access control for DIMSE [DEV-ACL]: who may associate and what each may do.

The SCP asks for every association and every request, so the device table is read once and
kept for a couple of seconds per process; a change made in the console applies within that
time, in every SCP process."""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass

from pacs.config import get_runtime_settings

_CACHE_SECONDS = 2.0


class Permission(enum.Enum):
    UPLOAD = "upload"  # C-STORE
    FIND = "find"  # C-FIND
    MWL = "mwl"  # MWL C-FIND (needs FIND too)
    DOWNLOAD = "download"  # C-MOVE, C-GET


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class _DevicePermissions:
    upload: bool
    find: bool
    mwl: bool
    download: bool


_lock = threading.Lock()
_snapshot: tuple[float, dict[str, _DevicePermissions]] | None = None


def _devices() -> dict[str, _DevicePermissions]:
    global _snapshot
    now = time.monotonic()
    with _lock:
        if _snapshot and now - _snapshot[0] < _CACHE_SECONDS:
            return _snapshot[1]
    from devices.models import Device

    table = {
        ae_title: _DevicePermissions(upload, find, mwl, download)
        for ae_title, upload, find, mwl, download in Device.objects.values_list(
            "ae_title", "upload", "find", "mwl", "download"
        )
    }
    with _lock:
        _snapshot = (now, table)
    return table


def forget_cache() -> None:
    global _snapshot
    with _lock:
        _snapshot = None


def may_associate(calling_ae_title: str) -> Decision:
    """Association acceptance: a known device, or anyone when accept-any-AE is on."""
    if calling_ae_title.strip() in _devices():
        return Decision(True)
    if get_runtime_settings().accept_any_ae:
        return Decision(True)
    return Decision(False, f"calling AE title {calling_ae_title!r} is not a known device")


def may(calling_ae_title: str, permission: Permission) -> Decision:
    """Whether the device may use a service; unknown AEs (accept-any on) may do everything."""
    device = _devices().get(calling_ae_title.strip())
    if device is None:
        if get_runtime_settings().accept_any_ae:
            return Decision(True)
        return Decision(False, f"calling AE title {calling_ae_title!r} is not a known device")
    needed = [permission] + ([Permission.FIND] if permission is Permission.MWL else [])
    missing = [p.value.upper() for p in needed if not getattr(device, p.value)]
    if missing:
        return Decision(
            False, f"device {calling_ae_title!r} lacks the {' and '.join(missing)} permission"
        )
    return Decision(True)
