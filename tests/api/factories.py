"""Index rows built directly with the ORM, with real files in a storage folder."""

from __future__ import annotations

import datetime
import itertools
import os
from pathlib import Path

from django.utils import timezone

from storages.models import Storage
from studies.models import Instance, Patient, Series, Study

_counter = itertools.count(1)


def uid(prefix: str = "1.2.826.0.1.3680043.10.1") -> str:
    return f"{prefix}.{next(_counter)}"


def make_patient(
    patient_name: str = "Doe^John",
    patient_id: str | None = None,
    *,
    patient_birth_date: datetime.date | None = None,
    patient_sex: str = "",
) -> Patient:
    return Patient.objects.create(
        patient_id=patient_id if patient_id is not None else f"PID{next(_counter)}",
        patient_name=patient_name,
        patient_name_search=patient_name.casefold(),
        patient_birth_date=patient_birth_date,
        patient_sex=patient_sex,
    )


def make_study(
    patient: Patient | None = None,
    *,
    study_date: datetime.date | None = None,
    accession_number: str = "",
    study_description: str = "",
    study_time: str = "",
    referring_physician_name: str = "",
    received_at: datetime.datetime | None = None,
    **patient_fields,
) -> Study:
    patient = patient or make_patient(**patient_fields)
    now = received_at or timezone.now()
    study = Study.objects.create(
        study_instance_uid=uid(),
        patient=patient,
        study_date=study_date,
        study_time=study_time,
        accession_number=accession_number,
        study_description=study_description,
        referring_physician_name=referring_physician_name,
        received_at=now,
        updated_at=now,
    )
    patient.number_of_studies = patient.studies.count()
    patient.save(update_fields=["number_of_studies"])
    return study


def add_series(
    study: Study,
    storage: Storage,
    *,
    modality: str = "CT",
    instances: int = 2,
    frames: int = 1,
    series_number: int | None = None,
    description: str = "",
) -> Series:
    """A series with ``instances`` files of random bytes; keeps the counts on the parents."""
    now = timezone.now()
    series = Series.objects.create(
        series_instance_uid=uid(),
        study=study,
        modality=modality,
        series_number=series_number,
        series_description=description,
        received_at=now,
        updated_at=now,
    )
    for number in range(1, instances + 1):
        add_instance(series, storage, instance_number=number, frames=frames)
    refresh_counts(study)
    return series


def add_instance(
    series: Series, storage: Storage, *, instance_number: int = 1, frames: int = 1
) -> Instance:
    sop_instance_uid = uid()
    study_uid = series.study.study_instance_uid
    relative_path = f"{study_uid}/{series.series_instance_uid}/{sop_instance_uid}"
    path = Path(storage.path) / relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"\0" * 128 + b"DICM" + os.urandom(200 + next(_counter))
    path.write_bytes(data)
    return Instance.objects.create(
        sop_instance_uid=sop_instance_uid,
        series=series,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        instance_number=instance_number,
        number_of_frames=frames,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        storage=storage,
        relative_path=relative_path,
        size_bytes=len(data),
        received_at=timezone.now(),
    )


def refresh_counts(study: Study) -> None:
    """What the ingest service keeps up to date, recomputed for test rows."""
    modalities = set()
    for series in study.series.all():
        instances = list(series.instances.all())
        series.number_of_instances = len(instances)
        series.number_of_frames = sum(i.number_of_frames for i in instances)
        series.size_bytes = sum(i.size_bytes for i in instances)
        series.save()
        if series.modality:
            modalities.add(series.modality)
    study.number_of_series = study.series.count()
    study.number_of_instances = sum(s.number_of_instances for s in study.series.all())
    study.size_bytes = sum(s.size_bytes for s in study.series.all())
    study.modalities_in_study = "\\".join(sorted(modalities))
    study.save()
