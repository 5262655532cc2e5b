"""Fixtures and helpers of the WADO-RS / WADO-URI tests: corpus files and generated series
stored through the ingest service, raw multipart parsing (to compare bytes), a requests
session logged in as a console user."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from studies.models import Instance
from studies.services import Origin, Outcome, store_stream
from tests.dicom_helpers import make_dataset
from tests.dicomweb.conftest import PASSWORD


@dataclass(frozen=True)
class Stored:
    """A file stored through the ingest service, with its UIDs."""

    path: Path
    data: bytes
    study: str
    series: str
    sop: str

    @property
    def instance(self) -> Instance:
        return Instance.objects.get(sop_instance_uid=self.sop)


def store_bytes(
    data: bytes, path: Path | None = None, *, outcome: Outcome = Outcome.STORED
) -> Stored:
    result = store_stream(io.BytesIO(data), origin=Origin(kind="import"))
    assert result.outcome is outcome, result
    instance = Instance.objects.select_related("series__study").get(
        sop_instance_uid=result.sop_instance_uid
    )
    return Stored(
        path or Path(instance.relative_path),
        data,
        instance.series.study.study_instance_uid,
        instance.series.series_instance_uid,
        instance.sop_instance_uid,
    )


def store_file(path: Path) -> Stored:
    return store_bytes(path.read_bytes(), path)


def store_corpus(corpus_dir: Path) -> list[Stored]:
    """Every top-level dev-corpus file that ingest stores (a refused file, or a second file
    with the same SOP Instance UID, is passed over)."""
    stored = []
    for path in sorted((corpus_dir / "dev").glob("*.dcm")):
        try:
            stored.append(store_file(path))
        except AssertionError:
            continue
    return stored


def part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def store_series(count: int, *, study_uid: str | None = None, pixels: int = 16) -> list[Stored]:
    """`count` generated CT instances of one new series (instance numbers 1..count)."""
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    stored = []
    for number in range(1, count + 1):
        ds = make_dataset(study_uid=study_uid, series_uid=series_uid, pixels=pixels)
        ds.InstanceNumber = number
        # Pixels that differ between instances: HU -74..181 for the first, brighter after.
        values = np.arange(pixels * pixels).reshape(pixels, pixels) % 256 + 800 + 150 * number
        ds.PixelData = values.astype("<u2").tobytes()
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.RescaleSlope = 1
        ds.RescaleIntercept = -1024
        ds.ImageComments = "x" * 10  # a text value kept inline
        ds.add_new(0x00291010, "OB", b"\x01" * 2000)  # private binary value, over the limit
        stored.append(store_bytes(part10(ds)))
    return stored


def corpus_rows(corpus_dir: Path) -> list[dict[str, str]]:
    with (corpus_dir / "MANIFEST.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def web(live_pacs, live_user) -> Iterator[requests.Session]:
    """A plain HTTP session logged in with Basic as a console user; `web.root` is the
    DICOMweb root URL."""
    session = requests.Session()
    session.auth = (live_user.username, PASSWORD)
    session.root = live_pacs  # type: ignore[attr-defined]
    yield session
    # Keep-alive connections hold a server thread, and its database connection, open: the
    # test database could not be dropped.
    session.close()


def multipart_parts(response: requests.Response) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related response: (headers, content) each, parsed here
    independently of the server's writer (RFC 2046 5.1.1)."""
    return multipart_parts_of(response, response.content)


def multipart_parts_of(
    response: requests.Response, body: bytes
) -> list[tuple[dict[str, str], bytes]]:
    """As multipart_parts, for a body already read (a streamed response)."""
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("multipart/related"), content_type
    boundary = next(
        item.split("=", 1)[1].strip('"')
        for item in (piece.strip() for piece in content_type.split(";"))
        if item.startswith("boundary=")
    ).encode()
    assert body.startswith(b"--" + boundary + b"\r\n")
    assert body.rstrip(b"\r\n").endswith(b"--" + boundary + b"--")
    pieces = body.split(b"\r\n--" + boundary)
    pieces[0] = pieces[0][len(b"--" + boundary) :]
    parts = []
    for piece in pieces[:-1]:
        head, _, content = piece[2:].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("ascii").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def windowed(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, written out as the standard does, to 8 bits."""
    out = np.empty(values.shape)
    for index, x in np.ndenumerate(values.astype(float)):
        if x <= center - 0.5 - (width - 1) / 2:
            out[index] = 0
        elif x > center - 0.5 + (width - 1) / 2:
            out[index] = 255
        else:
            out[index] = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
    return out
