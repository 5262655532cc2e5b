"""Deleting studies and series [STU-6] and cleaning the index after a storage is removed [STO-5].

Index rows go in one transaction; the files go only after it commits, so a failed transaction
never leaves rows that point at deleted files (at worst an orphan file remains, logged).
Counts on the parents are recomputed from their children rather than decremented, so they are
right even if they had drifted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from storages.models import Storage
from studies.models import Instance, Patient, Series, Study

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeletionResult:
    """What a deletion removed."""

    studies: int = 0
    series: int = 0
    instances: int = 0
    patients: int = 0


def _file_paths(instances) -> list[Path]:
    return [
        Path(storage_path) / relative_path
        for storage_path, relative_path in instances.values_list("storage__path", "relative_path")
    ]


def _remove_files(paths: list[Path]) -> None:
    """Unlink files after the commit; a failure leaves an orphan file, never a dangling row."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            logger.error("Could not delete %s: %s", path, exc)


def _refresh_series(series_ids: Iterable[int]) -> set[int]:
    """Recompute series counts from their instances; delete emptied series.

    Returns the ids of the studies the series belong to."""
    rows = (
        Series.objects.filter(pk__in=list(series_ids))
        .annotate(
            n_instances=Count("instances"),
            n_frames=Coalesce(Sum("instances__number_of_frames"), 0),
            n_bytes=Coalesce(Sum("instances__size_bytes"), 0),
        )
        .values_list("pk", "study_id", "n_instances", "n_frames", "n_bytes")
    )
    study_ids: set[int] = set()
    emptied: list[int] = []
    now = timezone.now()
    for pk, study_id, n_instances, n_frames, n_bytes in rows:
        study_ids.add(study_id)
        if n_instances == 0:
            emptied.append(pk)
            continue
        Series.objects.filter(pk=pk).update(
            number_of_instances=n_instances,
            number_of_frames=n_frames,
            size_bytes=n_bytes,
            updated_at=now,
        )
    Series.objects.filter(pk__in=emptied).delete()
    return study_ids


def _refresh_studies(study_ids: Iterable[int]) -> tuple[set[int], int]:
    """Recompute study counts and ModalitiesInStudy from their series; delete emptied studies.

    Returns the ids of their patients and how many studies were deleted."""
    study_ids = list(study_ids)
    rows = (
        Study.objects.filter(pk__in=study_ids)
        .annotate(
            n_series=Count("series"),
            n_instances=Coalesce(Sum("series__number_of_instances"), 0),
            n_bytes=Coalesce(Sum("series__size_bytes"), 0),
        )
        .values_list("pk", "patient_id", "n_series", "n_instances", "n_bytes")
    )
    modalities: dict[int, set[str]] = {}
    for study_id, modality in Series.objects.filter(study_id__in=study_ids).values_list(
        "study_id", "modality"
    ):
        if modality:
            modalities.setdefault(study_id, set()).add(modality)
    patient_ids: set[int] = set()
    emptied: list[int] = []
    now = timezone.now()
    for pk, patient_id, n_series, n_instances, n_bytes in rows:
        patient_ids.add(patient_id)
        if n_series == 0:
            emptied.append(pk)
            continue
        Study.objects.filter(pk=pk).update(
            number_of_series=n_series,
            number_of_instances=n_instances,
            size_bytes=n_bytes,
            modalities_in_study="\\".join(sorted(modalities.get(pk, ()))),
            updated_at=now,
        )
    Study.objects.filter(pk__in=emptied).delete()
    return patient_ids, len(emptied)


def _refresh_patients(patient_ids: Iterable[int]) -> int:
    """Recompute Patient.number_of_studies; delete patients left without studies."""
    rows = (
        Patient.objects.filter(pk__in=list(patient_ids))
        .annotate(n_studies=Count("studies"))
        .values_list("pk", "n_studies")
    )
    emptied = []
    for pk, n_studies in rows:
        if n_studies == 0:
            emptied.append(pk)
        else:
            Patient.objects.filter(pk=pk).update(number_of_studies=n_studies)
    Patient.objects.filter(pk__in=emptied).delete()
    return len(emptied)


def _lock_studies(study_ids: Iterable[int]) -> None:
    """Serialise with ingest updating the same studies (a no-op on SQLite, whose write
    transactions are already exclusive)."""
    list(Study.objects.select_for_update().filter(pk__in=list(study_ids)).values_list("pk"))


def delete_studies(ids: Iterable[int]) -> DeletionResult:
    """Delete studies with their series, instances and files; remove patients left empty."""
    ids = list(ids)
    with transaction.atomic():
        _lock_studies(ids)
        found = dict(Study.objects.filter(pk__in=ids).values_list("pk", "patient_id"))
        instances = Instance.objects.filter(series__study_id__in=found)
        paths = _file_paths(instances)
        n_series = Series.objects.filter(study_id__in=found).count()
        instances.delete()
        Series.objects.filter(study_id__in=found).delete()
        Study.objects.filter(pk__in=found).delete()
        n_studies = len(found)
        patient_ids = set(found.values())
        n_patients = _refresh_patients(patient_ids)
        transaction.on_commit(lambda: _remove_files(paths))
    logger.info("Deleted %d studies (%d instances)", n_studies, len(paths))
    return DeletionResult(
        studies=n_studies, series=n_series, instances=len(paths), patients=n_patients
    )


def delete_series(ids: Iterable[int]) -> DeletionResult:
    """Delete series with their instances and files; fix the study and patient counts and
    ModalitiesInStudy; remove a study or patient left empty."""
    ids = list(ids)
    with transaction.atomic():
        study_ids = set(Series.objects.filter(pk__in=ids).values_list("study_id", flat=True))
        _lock_studies(study_ids)
        series = Series.objects.filter(pk__in=ids)
        instances = Instance.objects.filter(series__in=series)
        paths = _file_paths(instances)
        n_series = series.count()
        instances.delete()
        Series.objects.filter(pk__in=ids).delete()
        patient_ids, n_studies = _refresh_studies(study_ids)
        n_patients = _refresh_patients(patient_ids)
        transaction.on_commit(lambda: _remove_files(paths))
    logger.info("Deleted %d series (%d instances)", n_series, len(paths))
    return DeletionResult(
        studies=n_studies, series=n_series, instances=len(paths), patients=n_patients
    )


def refresh_counts_after_storage_removal(storage: Storage) -> DeletionResult:
    """Drop the index rows of a storage's instances and fix every count above them.

    Called by ``storages.services.delete_storage`` inside its transaction, before the storage
    row goes; the files are that function's business."""
    instances = Instance.objects.filter(storage=storage)
    series_ids = set(instances.values_list("series_id", flat=True).distinct())
    study_ids = set(
        Series.objects.filter(pk__in=series_ids).values_list("study_id", flat=True).distinct()
    )
    _lock_studies(study_ids)
    n_instances = instances.count()
    instances.delete()
    n_series_before = len(series_ids)
    _refresh_series(series_ids)
    n_series_left = Series.objects.filter(pk__in=series_ids).count()
    patient_ids, n_studies = _refresh_studies(study_ids)
    n_patients = _refresh_patients(patient_ids)
    return DeletionResult(
        studies=n_studies,
        series=n_series_before - n_series_left,
        instances=n_instances,
        patients=n_patients,
    )
