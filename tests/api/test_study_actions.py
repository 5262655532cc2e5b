"""Study detail, series panel, deletion [STU-6] and streamed ZIP download [STU-5]."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from studies.models import Instance, Patient, Series, Study
from studies.services import delete_studies
from tests.api.factories import add_series, make_patient, make_study

pytestmark = pytest.mark.django_db


def file_of(instance: Instance) -> Path:
    return Path(instance.storage.path) / instance.relative_path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_zip(response) -> zipfile.ZipFile:
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response.streaming
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


@pytest.fixture
def study(storage) -> Study:
    patient = make_patient("Doe^Jane", "PAT-1")
    study = make_study(patient)
    add_series(study, storage, modality="CT", instances=3, series_number=2, frames=2)
    add_series(study, storage, modality="SR", instances=1, series_number=1)
    study.refresh_from_db()
    return study


def test_it_shows_one_study(api, study):
    body = api.get(f"/api/studies/{study.pk}/").json()
    assert body["study_instance_uid"] == study.study_instance_uid
    assert body["modalities"] == ["CT", "SR"]
    assert body["number_of_series"] == 2
    assert body["number_of_instances"] == 4


def test_it_lists_the_series_of_a_study_in_series_number_order(api, study):
    rows = api.get(f"/api/studies/{study.pk}/series/").json()
    assert [row["modality"] for row in rows] == ["SR", "CT"]
    ct = rows[1]
    assert ct["number_of_instances"] == 3
    assert ct["number_of_frames"] == 6
    assert ct["size_bytes"] == sum(
        Instance.objects.filter(series_id=ct["id"]).values_list("size_bytes", flat=True)
    )
    for key in ("series_instance_uid", "series_number", "series_description", "body_part_examined"):
        assert key in ct


def test_the_series_list_costs_the_same_queries_for_2_and_12_series(api, study, storage):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get(f"/api/studies/{study.pk}/series/").status_code == 200
        return len(queries)

    two = count_queries()
    for _ in range(10):
        add_series(study, storage, instances=1)
    assert count_queries() == two == 2


def test_an_unknown_study_is_404(api):
    assert api.get("/api/studies/424242/").status_code == 404
    assert api.get("/api/studies/424242/series/").status_code == 404
    assert api.get("/api/studies/424242/download/").status_code == 404


# --- deletion --------------------------------------------------------------------------


def test_deleting_a_study_removes_its_files_rows_and_emptied_patient(
    api, study, django_capture_on_commit_callbacks
):
    files = [file_of(i) for i in Instance.objects.all()]
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/studies/{study.pk}/").status_code == 204
    assert not Study.objects.exists()
    assert not Series.objects.exists()
    assert not Instance.objects.exists()
    assert not Patient.objects.exists()
    assert not any(path.exists() for path in files)


def test_deleting_one_of_two_studies_keeps_the_patient_with_its_count(api, study):
    other = make_study(study.patient)
    assert api.delete(f"/api/studies/{study.pk}/").status_code == 204
    patient = Patient.objects.get()
    assert patient.number_of_studies == 1
    assert Study.objects.get() == other


def test_it_deletes_several_studies_at_once(
    api, study, storage, django_capture_on_commit_callbacks
):
    second = make_study()
    add_series(second, storage, instances=2)
    kept = make_study()
    add_series(kept, storage, instances=1)
    deleted_files = [file_of(i) for i in Instance.objects.exclude(series__study=kept)]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/studies/delete/", {"ids": [study.pk, second.pk, 999999]}, format="json"
        )
    assert response.status_code == 200
    assert response.json() == {"studies": 2, "series": 3, "instances": 6, "patients": 2}
    assert list(Study.objects.all()) == [kept]
    assert all(file_of(i).exists() for i in Instance.objects.all())
    assert not any(path.exists() for path in deleted_files)


def test_deleting_several_studies_needs_a_list_of_ids(api):
    for body in ({}, {"ids": []}, {"ids": ["x"]}, {"ids": 5}):
        response = api.post("/api/studies/delete/", body, format="json")
        assert response.status_code == 400
        assert "ids" in response.json()["errors"]


def test_deleting_a_series_updates_the_study_counts_and_modalities(
    api, study, django_capture_on_commit_callbacks
):
    sr = study.series.get(modality="SR")
    sr_files = [file_of(i) for i in sr.instances.all()]
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/series/{sr.pk}/").status_code == 204
    study.refresh_from_db()
    assert study.number_of_series == 1
    assert study.number_of_instances == 3
    assert study.modalities_in_study == "CT"
    assert study.size_bytes == sum(Instance.objects.values_list("size_bytes", flat=True))
    assert not any(path.exists() for path in sr_files)


def test_deleting_the_last_series_removes_the_study_and_patient(api, storage):
    study = make_study()
    series = add_series(study, storage, instances=1)
    assert api.delete(f"/api/series/{series.pk}/").status_code == 204
    assert not Study.objects.exists()
    assert not Patient.objects.exists()


def test_deleting_a_study_with_a_file_already_gone_still_succeeds(
    api, study, django_capture_on_commit_callbacks
):
    file_of(Instance.objects.first()).unlink()
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/studies/{study.pk}/").status_code == 204
    assert not Instance.objects.exists()


def test_deletion_needs_a_login(anonymous, study):
    assert anonymous.delete(f"/api/studies/{study.pk}/").status_code == 401
    assert Study.objects.exists()


# --- ZIP download ----------------------------------------------------------------------


def test_the_study_zip_holds_every_file_byte_identical_under_uid_folders(api, study):
    response = api.get(f"/api/studies/{study.pk}/download/")
    assert study.study_instance_uid in response["Content-Disposition"]
    archive = read_zip(response)
    expected = {
        "/".join(
            (
                "PAT-1",
                study.study_instance_uid,
                i.series.series_instance_uid,
                f"{i.sop_instance_uid}.dcm",
            )
        ): sha256(file_of(i).read_bytes())
        for i in Instance.objects.select_related("series", "storage")
    }
    assert {name: sha256(archive.read(name)) for name in archive.namelist()} == expected
    assert archive.testzip() is None
    assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())


def test_the_series_zip_holds_only_that_series(api, study):
    ct = study.series.get(modality="CT")
    archive = read_zip(api.get(f"/api/series/{ct.pk}/download/"))
    assert len(archive.namelist()) == 3
    assert all(f"/{ct.series_instance_uid}/" in name for name in archive.namelist())


def test_the_zip_is_named_by_patient_name_when_there_is_no_patient_id(api, storage):
    patient = make_patient("Nobody/../Evil^Name", "")
    study = make_study(patient)
    add_series(study, storage, instances=1)
    archive = read_zip(api.get(f"/api/studies/{study.pk}/download/"))
    (name,) = archive.namelist()
    assert name.split("/")[0] == "Nobody_.._Evil^Name"
    assert ".." not in name.split("/")


def test_a_file_missing_from_storage_is_skipped_not_a_broken_download(api, study):
    missing = Instance.objects.first()
    file_of(missing).unlink()
    archive = read_zip(api.get(f"/api/studies/{study.pk}/download/"))
    assert len(archive.namelist()) == 3
    assert not any(missing.sop_instance_uid in name for name in archive.namelist())


def test_the_zip_download_ignores_the_accept_header(api, study):
    response = api.get(f"/api/studies/{study.pk}/download/", HTTP_ACCEPT="application/zip")
    assert response.status_code == 200


def test_the_zip_streams_in_chunks_instead_of_building_it_in_memory(api, study, monkeypatch):
    from studies import archive

    monkeypatch.setattr(archive, "CHUNK_SIZE", 64)
    response = api.get(f"/api/studies/{study.pk}/download/")
    chunks = [chunk for chunk in response.streaming_content if chunk]
    assert len(chunks) > 4 * 4
    assert max(len(chunk) for chunk in chunks) < 1024


def test_files_stay_when_the_deleting_transaction_rolls_back(
    study, django_capture_on_commit_callbacks
):
    files = [file_of(i) for i in Instance.objects.all()]
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        delete_studies([study.pk])
        raise RuntimeError("database trouble")
    assert callbacks == []
    assert Study.objects.filter(pk=study.pk).exists()
    assert all(path.exists() for path in files)
