"""Streamed ZIP of a study or a series [STU-5].

``zipfile`` writes into a small buffer that the generator drains after every chunk, so memory
stays at one chunk whatever the study's size. Entries are stored (no compression: DICOM pixel
data rarely shrinks and the CPU is better spent elsewhere) and named
``<patient>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``.

A file missing from its storage is logged and skipped: by the time it is found the response
headers are long gone, so failing would only hand the user a truncated archive.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.db.models import QuerySet
from django.utils import timezone

from studies.models import Instance, Series, Study

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


class _Pipe:
    """A write-only, non-seekable file that keeps what was written until drained."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def safe_component(text: str, fallback: str) -> str:
    """A file-name component: no separators, control characters or dot-only names."""
    cleaned = _UNSAFE.sub("_", text).strip().strip(".")
    return cleaned or fallback


def archive_name(instance: Instance) -> str:
    """Where an instance goes in the archive (patient ID, else name, else "unknown")."""
    series = instance.series
    study = series.study
    patient = study.patient
    return "/".join(
        (
            safe_component(patient.patient_id or patient.patient_name, "unknown"),
            safe_component(study.study_instance_uid, "study"),
            safe_component(series.series_instance_uid, "series"),
            safe_component(instance.sop_instance_uid, "instance") + ".dcm",
        )
    )


def stream_zip(instances: Iterable[Instance]) -> Iterator[bytes]:
    """Yield a ZIP archive of the instances' files, chunk by chunk."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for instance in instances:
            path = Path(instance.storage.path) / instance.relative_path
            try:
                handle = path.open("rb")
            except OSError as exc:
                logger.error("Skipping %s in a ZIP download: %s", path, exc)
                continue
            with handle:
                info = zipfile.ZipInfo(
                    archive_name(instance),
                    date_time=timezone.localtime(instance.received_at).timetuple()[:6],
                )
                info.compress_type = zipfile.ZIP_STORED
                # Known size up front lets zipfile choose ZIP64 for files over 2 GiB.
                info.file_size = path.stat().st_size
                with archive.open(info, mode="w") as entry:
                    while chunk := handle.read(CHUNK_SIZE):
                        entry.write(chunk)
                        yield pipe.drain()
            yield pipe.drain()
    yield pipe.drain()


def _instances(queryset: QuerySet[Instance]) -> Iterator[Instance]:
    return (
        queryset.select_related("series__study__patient", "storage")
        .order_by("series__series_number", "series_id", "instance_number", "id")
        .iterator(chunk_size=500)
    )


def study_archive(study: Study) -> Iterator[bytes]:
    return stream_zip(_instances(Instance.objects.filter(series__study=study)))


def series_archive(series: Series) -> Iterator[bytes]:
    return stream_zip(_instances(Instance.objects.filter(series=series)))
