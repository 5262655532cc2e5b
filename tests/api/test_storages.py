"""Storage folders over the API [STO-1], [STO-2], [STO-5]."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from storages.models import Storage
from studies.models import Instance, Patient, Series, Study
from tests.api.factories import add_instance, add_series, make_study, refresh_counts

pytestmark = pytest.mark.django_db


def test_it_creates_a_storage_on_an_existing_writable_folder(api, tmp_path):
    response = api.post("/api/storages/", {"path": str(tmp_path)}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["path"] == str(tmp_path)
    assert body["enabled"] is True
    assert body["available"] is True
    assert body["free_bytes"] > 0
    assert body["total_bytes"] >= body["free_bytes"]
    assert body["used_bytes"] == 0
    assert body["number_of_studies"] == 0


def test_it_refuses_a_relative_storage_path(api):
    response = api.post("/api/storages/", {"path": "data/storage"}, format="json")
    assert response.status_code == 400
    assert "absolute" in response.json()["errors"]["path"][0]


def test_it_refuses_a_storage_path_with_dotdot(api, tmp_path):
    (tmp_path / "a").mkdir()
    response = api.post("/api/storages/", {"path": f"{tmp_path}/a/../a"}, format="json")
    assert response.status_code == 400
    assert ".." in response.json()["errors"]["path"][0]


def test_it_refuses_a_missing_storage_folder(api, tmp_path):
    response = api.post("/api/storages/", {"path": str(tmp_path / "nope")}, format="json")
    assert response.status_code == 400
    assert "does not exist" in response.json()["errors"]["path"][0]


def test_it_refuses_a_file_as_storage_folder(api, tmp_path):
    (tmp_path / "file").write_text("x")
    response = api.post("/api/storages/", {"path": str(tmp_path / "file")}, format="json")
    assert response.status_code == 400
    assert "path" in response.json()["errors"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_it_refuses_a_storage_folder_that_is_not_writable(api, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        response = api.post("/api/storages/", {"path": str(folder)}, format="json")
    finally:
        folder.chmod(0o700)
    assert response.status_code == 400
    assert "not writable" in response.json()["errors"]["path"][0]


def test_it_refuses_a_storage_folder_that_is_not_writable_even_as_root(api, tmp_path, monkeypatch):
    """Root ignores permission bits, so simulate the failed write-check instead."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    response = api.post("/api/storages/", {"path": str(tmp_path)}, format="json")
    assert response.status_code == 400
    assert "not writable" in response.json()["errors"]["path"][0]


def test_it_refuses_the_same_folder_twice_even_spelled_differently(api, tmp_path):
    assert api.post("/api/storages/", {"path": str(tmp_path)}, format="json").status_code == 201
    response = api.post("/api/storages/", {"path": f"{tmp_path}/"}, format="json")
    assert response.status_code == 400
    assert "path" in response.json()["errors"]


def test_it_checks_the_path_when_a_storage_is_moved(api, storage, tmp_path):
    response = api.patch(
        f"/api/storages/{storage.pk}/", {"path": str(tmp_path / "gone")}, format="json"
    )
    assert response.status_code == 400
    moved = tmp_path / "moved"
    moved.mkdir()
    response = api.patch(f"/api/storages/{storage.pk}/", {"path": str(moved)}, format="json")
    assert response.status_code == 200
    assert response.json()["path"] == str(moved)


def test_it_disables_a_storage(api, storage):
    response = api.patch(f"/api/storages/{storage.pk}/", {"enabled": False}, format="json")
    assert response.json()["enabled"] is False


def test_the_list_shows_used_space_and_number_of_studies(api, storage):
    study_a = make_study()
    add_series(study_a, storage, instances=3)
    study_b = make_study()
    add_series(study_b, storage, instances=1)
    add_series(study_b, storage, instances=2, modality="MR")
    expected = sum(Instance.objects.values_list("size_bytes", flat=True))
    row = api.get("/api/storages/").json()["results"][0]
    assert row["used_bytes"] == expected
    assert row["number_of_studies"] == 2


def test_a_storage_whose_folder_vanished_is_listed_as_unavailable(api, tmp_path):
    storage = Storage.objects.create(path=str(tmp_path / "vanished"))
    row = api.get(f"/api/storages/{storage.pk}/").json()
    assert row["available"] is False
    assert row["free_bytes"] is None


def test_the_storage_list_costs_the_same_queries_for_1_and_30_storages(api, tmp_path):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get("/api/storages/?page_size=30").status_code == 200
        return len(queries)

    for n in range(1):
        Storage.objects.create(path=str(tmp_path / f"s{n}"))
    one = count_queries()
    for n in range(1, 30):
        Storage.objects.create(path=str(tmp_path / f"s{n}"))
    assert count_queries() == one == 2


def test_removing_a_storage_needs_confirmation(api, storage):
    response = api.delete(f"/api/storages/{storage.pk}/")
    assert response.status_code == 400
    assert "confirm" in response.json()["errors"]
    assert Storage.objects.filter(pk=storage.pk).exists()


def test_removing_a_storage_drops_its_rows_but_keeps_files_by_default(api, storage):
    study = make_study()
    add_series(study, storage, instances=2)
    files = [Path(storage.path) / i.relative_path for i in Instance.objects.all()]
    response = api.delete(f"/api/storages/{storage.pk}/?confirm=true")
    assert response.status_code == 204
    assert not Storage.objects.exists()
    assert not Instance.objects.exists()
    assert not Study.objects.exists()
    assert not Patient.objects.exists()
    assert all(path.exists() for path in files)


def test_removing_a_storage_with_remove_files_deletes_its_files(api, storage):
    study = make_study()
    add_series(study, storage, instances=2)
    response = api.delete(f"/api/storages/{storage.pk}/?confirm=true&remove_files=true")
    assert response.status_code == 204
    assert list(Path(storage.path).iterdir()) == []


def test_removing_one_storage_keeps_counts_right_for_studies_on_two(api, storage, tmp_path):
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    other = Storage.objects.create(path=str(other_folder))
    study = make_study()
    kept = add_series(study, storage, instances=2, modality="CT")
    add_series(study, other, instances=3, modality="MR")
    mixed = add_series(study, storage, instances=1, modality="SR")
    add_instance(mixed, other, instance_number=2)
    refresh_counts(study)
    assert api.delete(f"/api/storages/{other.pk}/?confirm=true").status_code == 204
    study.refresh_from_db()
    assert study.number_of_series == 2
    assert study.number_of_instances == 3
    assert study.modalities_in_study == "CT\\SR"
    assert study.size_bytes == sum(Instance.objects.values_list("size_bytes", flat=True))
    mixed.refresh_from_db()
    assert mixed.number_of_instances == 1
    assert Series.objects.filter(pk=kept.pk).exists()
