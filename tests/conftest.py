"""Shared fixtures: the DICOM corpus and helpers to find DCMTK tools."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
CORPUS_DIR = Path(os.environ.get("PACS_CORPUS_DIR", REPO_DIR.parent / "shared" / "corpus"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# DCMTK 3.6.7 leaves Nagle's algorithm on unless TCP_NODELAY is set: every small PDU then
# waits ~40 ms for a delayed ACK. Our SCP sets TCP_NODELAY on its side; this is for the
# DCMTK peers the tests start.
os.environ.setdefault("TCP_NODELAY", "1")


def dcmtk_tool(name: str) -> str:
    """Absolute path of a DCMTK tool. pynetdicom installs console scripts with the same
    names (storescu, findscu, ...) that shadow DCMTK on PATH, so look in /usr/bin first."""
    for candidate in (f"/usr/bin/{name}", f"/usr/local/bin/{name}"):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found and "site-packages" not in found and ".venv" not in found:
        return found
    if IN_CI:
        pytest.fail(f"DCMTK {name} is not installed (scripts/test installs dcmtk)")
    pytest.skip(f"DCMTK {name} is not installed")


@pytest.fixture(autouse=True)
def fresh_process_caches():
    """Per-process caches (storages, devices, runtime settings, recent series) must not carry
    rows of one test, whose primary keys the next test may reuse, into another."""
    from devices import acl
    from pacs.config import invalidate_runtime_settings
    from storages.services import forget_free_space_cache
    from studies.services.ingest import forget_series_cache

    for forget in (acl.forget_cache, invalidate_runtime_settings, forget_free_space_cache):
        forget()
    forget_series_cache()
    yield


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        if IN_CI:
            pytest.fail(f"corpus not found at {CORPUS_DIR}")
        pytest.skip(f"corpus not found at {CORPUS_DIR}")
    return CORPUS_DIR


def configure_pacs(tmp_path: Path, **runtime_fields):
    """A storage folder and temp folder under ``tmp_path`` and the runtime settings row,
    with the caches of every process-level reader cleared."""
    from devices import acl
    from pacs.config import invalidate_runtime_settings
    from pacs.models import RuntimeSettings
    from storages.models import Storage
    from storages.services import forget_free_space_cache

    storage_dir = tmp_path / "storage"
    temp_dir = tmp_path / "temp"
    storage_dir.mkdir(exist_ok=True)
    temp_dir.mkdir(exist_ok=True)
    Storage.objects.get_or_create(path=str(storage_dir))
    fields = {
        "ae_title": "VESALIUS",
        "free_space_limit_mb": 1,
        "critical_free_space_mb": 0,
        "temp_dir": str(temp_dir),
        "accept_any_ae": False,
        **runtime_fields,
    }
    row, _ = RuntimeSettings.objects.update_or_create(pk=1, defaults=fields)
    invalidate_runtime_settings()
    forget_free_space_cache()
    acl.forget_cache()
    return row


def reconfigure(**runtime_fields):
    """Change runtime settings in a running test and make every reader see it now."""
    from devices import acl
    from pacs.config import invalidate_runtime_settings
    from pacs.models import RuntimeSettings

    RuntimeSettings.objects.filter(pk=1).update(**runtime_fields)
    invalidate_runtime_settings()
    acl.forget_cache()


@pytest.fixture
def pacs_runtime(db, tmp_path):
    row = configure_pacs(tmp_path)
    yield row
    reconfigure()


@pytest.fixture
def pacs_runtime_tx(transactional_db, tmp_path):
    """As pacs_runtime, with committed rows other threads (the SCP's) can see."""
    row = configure_pacs(tmp_path)
    yield row
    reconfigure()


@contextlib.contextmanager
def running_scp(server_class=None):
    """An SCP in this process on a free port, for network tests: the store/query/retrieve
    one by default, or another ``StoreServer`` class (the worklist's)."""
    import tempfile

    from pacs.dimse.server import StoreServer

    previous_tempdir = tempfile.tempdir  # the SCP points temp files at the PACS temp folder
    server = (server_class or StoreServer)("127.0.0.1", 0)
    server.start()
    try:
        yield server
    finally:
        server.stop(drain_seconds=5)
        tempfile.tempdir = previous_tempdir
