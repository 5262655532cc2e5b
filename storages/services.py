"""Storage folders: path checks [STO-2], free space [STO-1] and placement [STO-3], [STO-7]."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from storages.exceptions import NoStorageAvailable, StoragePathInvalid
from storages.models import Storage

logger = logging.getLogger(__name__)

MB = 1024 * 1024
_FREE_SPACE_CACHE_SECONDS = 1.0
_free_space_cache: dict[str, tuple[float, int]] = {}
# The enabled storages, read at most every two seconds per process: placement runs for every
# instance received (reading them cost ~1.5 ms of its ~7). A storage added, disabled or
# edited in the console applies within that time; disable a storage before moving it.
_ENABLED_CACHE_SECONDS = 2.0
_enabled_cache: tuple[float, list[Storage]] | None = None


def check_storage_path(raw_path: str) -> str:
    """Validate a storage path: absolute, no ``..`` component, an existing folder the server
    can write to. Returns the normalised path. Raises StoragePathInvalid."""
    if not raw_path or not raw_path.strip():
        raise StoragePathInvalid("A storage path is required.")
    if "\x00" in raw_path:
        raise StoragePathInvalid("A storage path cannot contain NUL characters.")
    path = Path(raw_path.strip())
    if not path.is_absolute():
        raise StoragePathInvalid(f"{raw_path!r} is not an absolute path.")
    if ".." in path.parts:
        raise StoragePathInvalid(f"{raw_path!r} contains '..'; give the folder's real path.")
    if not path.exists():
        raise StoragePathInvalid(f"{raw_path} does not exist.")
    if not path.is_dir():
        raise StoragePathInvalid(f"{raw_path} is not a folder.")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise StoragePathInvalid(f"{raw_path} is not writable by the server: {exc}") from None
    return str(path)


def free_space_bytes(path: str) -> int | None:
    """Free space on the disk holding ``path`` (cached for a second); None if unreachable."""
    now = time.monotonic()
    cached = _free_space_cache.get(path)
    if cached and now - cached[0] < _FREE_SPACE_CACHE_SECONDS:
        return cached[1]
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return None
    _free_space_cache[path] = (now, free)
    return free


def forget_free_space_cache() -> None:
    """Forget the cached free space and the cached list of enabled storages."""
    global _enabled_cache
    _free_space_cache.clear()
    _enabled_cache = None


def _enabled_storages() -> list[Storage]:
    global _enabled_cache
    now = time.monotonic()
    cached = _enabled_cache
    if cached and now - cached[0] < _ENABLED_CACHE_SECONDS:
        return cached[1]
    storages = list(Storage.objects.filter(enabled=True).order_by("id"))
    _enabled_cache = (now, storages)
    return storages


@dataclass(frozen=True)
class StorageUsage:
    """What the storages table shows [STO-1]."""

    free_bytes: int | None
    total_bytes: int | None
    available: bool


def storage_usage(storage: Storage) -> StorageUsage:
    try:
        usage = shutil.disk_usage(storage.path)
    except OSError:
        return StorageUsage(free_bytes=None, total_bytes=None, available=False)
    return StorageUsage(free_bytes=usage.free, total_bytes=usage.total, available=True)


def choose_storage(*, free_space_limit_mb: int, critical_free_space_mb: int) -> Storage:
    """The first enabled storage whose disk has more free space than the limit [STO-3].

    Raises NoStorageAvailable, with the reason, when there is none; a missing folder is
    logged as unavailable and skipped."""
    storages = _enabled_storages()
    if not storages:
        raise NoStorageAvailable("no enabled storage is configured")
    above_critical = False
    for storage in storages:
        free = free_space_bytes(storage.path)
        if free is None or not os.path.isdir(storage.path):
            logger.error("Storage %s (%s) is unavailable: folder missing", storage.pk, storage.path)
            continue
        if free > critical_free_space_mb * MB:
            above_critical = True
        if free > free_space_limit_mb * MB:
            return storage
    if not above_critical:
        raise NoStorageAvailable(
            f"every storage is under the critical free space of {critical_free_space_mb} MB"
        )
    raise NoStorageAvailable(
        f"no storage has more free space than the limit of {free_space_limit_mb} MB"
    )


def ensure_default_storage(path: Path) -> Storage | None:
    """Create the first storage on the embedded default when none exists [DEF-2]."""
    if Storage.objects.exists():
        return None
    path.mkdir(parents=True, exist_ok=True)
    storage, _ = Storage.objects.get_or_create(path=str(path))
    logger.info("Created the default storage at %s", path)
    return storage


def delete_storage(storage: Storage, *, remove_files: bool) -> None:
    """Remove a storage's index rows and, if asked, its files [STO-5]."""
    from studies.services import refresh_counts_after_storage_removal

    path = storage.path
    with transaction.atomic():
        refresh_counts_after_storage_removal(storage)
        storage.delete()
    if remove_files and os.path.isdir(path):
        for child in Path(path).iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
