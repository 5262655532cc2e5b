"""Shared fixtures of the DICOMweb tests: users and clients, the dev corpus indexed, a live
server with a real DICOMweb client (dicomweb-client from PyPI), multipart bodies."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from tests.api.conftest import (  # noqa: F401  (shared API fixtures)
    PASSWORD,
    _fast_password_hashing,
    anonymous,
    api,
    user,
)
from tests.conftest import configure_pacs, reconfigure
from tests.query.conftest import ingest_corpus

BOUNDARY = "vesalius-test-boundary"
MULTIPART_DICOM = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


@pytest.fixture(autouse=True)
def _forget_remembered_basic_logins():
    from dicomweb.access import RememberedBasicAuthentication

    RememberedBasicAuthentication._checked.clear()
    yield
    RememberedBasicAuthentication._checked.clear()


@pytest.fixture
def indexed_corpus(pacs_runtime, corpus_dir):
    """The dev corpus stored through the ingest service (in the test transaction)."""
    assert ingest_corpus(corpus_dir) > 50


@pytest.fixture
def live_pacs(transactional_db, tmp_path, live_server):
    """A live server with storage and temp folders configured; its DICOMweb root URL."""
    configure_pacs(tmp_path)
    yield f"{live_server.url}/dicomweb"
    reconfigure()


@pytest.fixture
def live_user(live_pacs, django_user_model):
    return django_user_model.objects.create_user(username="webuser", password=PASSWORD)


@pytest.fixture
def dicomweb(live_pacs, live_user) -> Iterator[DICOMwebClient]:
    """dicomweb-client logged in with HTTP Basic as a console user. Bodies are sent with a
    Content-Length: the client chunks bodies over ``chunk_size``, which Django's test server
    cannot read (gunicorn can)."""
    session = requests.Session()
    session.auth = (live_user.username, PASSWORD)
    yield DICOMwebClient(url=live_pacs, session=session, chunk_size=2**31)
    # A keep-alive connection holds a server thread and its database connection open: the
    # test database could not be dropped.
    session.close()


def part10_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def multipart_body(parts: list[bytes | tuple[str, bytes]], boundary: str = BOUNDARY) -> bytes:
    """A multipart/related body; each part is bytes (sent as application/dicom) or a
    (content type, bytes) pair."""
    chunks = []
    for part in parts:
        content_type, data = part if isinstance(part, tuple) else ("application/dicom", part)
        chunks.append(
            f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode("ascii") + data + b"\r\n"
        )
    return b"".join(chunks) + f"--{boundary}--\r\n".encode("ascii")


def stored_files(tmp_path: Path) -> list[Path]:
    """The files in the storage folder configure_pacs made (staging excluded)."""
    storage = tmp_path / "storage"
    return sorted(
        path
        for path in storage.rglob("*.dcm")
        if path.is_file() and not any(part.startswith(".") for part in path.parts)
    )
