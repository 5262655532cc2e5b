"""Shared fixtures: the DICOM corpus and helpers to find DCMTK tools."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
CORPUS_DIR = Path(os.environ.get("PACS_CORPUS_DIR", REPO_DIR.parent / "shared" / "corpus"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


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


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        if IN_CI:
            pytest.fail(f"corpus not found at {CORPUS_DIR}")
        pytest.skip(f"corpus not found at {CORPUS_DIR}")
    return CORPUS_DIR
