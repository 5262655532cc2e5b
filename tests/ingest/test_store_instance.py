"""The one ingest path [ING-1]..[ING-8], [STO-3], [STO-6], [STO-7], called as a service."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from pydicom import dcmread

from storages.models import Storage
from studies.models import Instance, Patient, Series, Study
from studies.services import Origin, Outcome, store_instance, store_stream
from tests.conftest import reconfigure
from tests.dicom_helpers import file_sha1, make_dataset, write_part10

ORIGIN = Origin("import", user="tester")

# Files of the dev corpus that must be refused, and why (see corpus/MANIFEST.csv notes).
EXPECTED_REFUSED = {
    "DICOMDIR": "SOPInstanceUID is missing",  # a file-set index, not an instance
    "nibabel__decimal_rescale.dcm": "SOPInstanceUID is missing",
    "pydicom__JPEGLSNearLossless_16.dcm": "StudyInstanceUID is missing",
    "pydicom__hotiron.dcm": "StudyInstanceUID is missing",  # Color Palette, no study
}


def store_file(path: Path):
    with path.open("rb") as stream:
        return store_stream(stream, origin=ORIGIN)


def stored_path(instance: Instance) -> Path:
    return Path(instance.storage.path) / instance.relative_path


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_every_corpus_file_is_stored_byte_identical_or_refused_with_a_reason(
    pacs_runtime, corpus_dir, caplog
):
    caplog.set_level(logging.WARNING, logger="studies.services.ingest")
    stored, refused, sources = {}, {}, {}
    for path in files_under(corpus_dir / "dev"):
        result = store_file(path)
        if result.outcome is Outcome.STORED:
            stored[result.sop_instance_uid] = path
        elif result.outcome is Outcome.DUPLICATE:
            assert result.sop_instance_uid in stored  # the corpus repeats some SOP UIDs
        else:
            refused[path.name] = result.reason
        sources[path] = result

    assert set(refused) == set(EXPECTED_REFUSED)
    for name, reason in EXPECTED_REFUSED.items():
        assert reason in refused[name]
        assert any(reason in record.getMessage() for record in caplog.records)

    assert Instance.objects.count() == len(stored)
    for instance in Instance.objects.select_related("storage"):
        assert file_sha1(stored_path(instance)) == file_sha1(stored[instance.sop_instance_uid])

    # Counts on the rows match the files.
    expected_instances: dict[str, int] = {}
    for path in stored.values():
        ds = dcmread(path, stop_before_pixels=True)
        expected_instances[ds.StudyInstanceUID] = expected_instances.get(ds.StudyInstanceUID, 0) + 1
    assert {s.study_instance_uid: s.number_of_instances for s in Study.objects.all()} == (
        expected_instances
    )
    for series in Series.objects.all():
        assert series.number_of_instances == series.instances.count()


def test_it_refuses_bytes_that_are_not_dicom(pacs_runtime, caplog):
    result = store_stream(io.BytesIO(b"this is not a DICOM file at all" * 10), origin=ORIGIN)
    assert result.outcome is Outcome.REJECTED
    assert result.dimse_status == 0xC000
    assert result.http_status == 400
    assert "Refused" in caplog.text
    assert not Instance.objects.exists()


def test_it_refuses_an_empty_file(pacs_runtime):
    assert store_stream(io.BytesIO(b""), origin=ORIGIN).outcome is Outcome.REJECTED


def test_it_refuses_a_truncated_file_and_stores_nothing(pacs_runtime, tmp_path):
    path = write_part10(make_dataset(pixels=64), tmp_path / "full.dcm")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(path.read_bytes()[:-1000])
    result = store_file(truncated)
    assert result.outcome is Outcome.REJECTED
    assert "truncated" in result.reason
    assert files_under(tmp_path / "storage") == []


def test_it_refuses_a_file_cut_inside_an_element_header(pacs_runtime, tmp_path):
    path = write_part10(make_dataset(), tmp_path / "full.dcm")
    data = path.read_bytes()
    offset = data.index(b"\xe0\x7f\x10\x00")  # the Pixel Data tag
    (tmp_path / "cut.dcm").write_bytes(data[: offset + 3])
    assert store_file(tmp_path / "cut.dcm").outcome is Outcome.REJECTED


@pytest.mark.parametrize(
    "keyword", ["SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"]
)
def test_it_refuses_a_dataset_without_a_required_uid(pacs_runtime, tmp_path, keyword):
    ds = make_dataset()
    delattr(ds, keyword)
    result = store_file(write_part10(ds, tmp_path / "missing.dcm"))
    assert result.outcome is Outcome.REJECTED
    assert result.reason == f"{keyword} is missing"
    assert not Study.objects.exists()


def test_it_refuses_a_dataset_whose_uid_differs_from_the_request(pacs_runtime, tmp_path):
    path = write_part10(make_dataset(), tmp_path / "a.dcm")
    result = store_instance(path, origin=ORIGIN, expected_sop_instance_uid="1.2.3.4")
    assert result.outcome is Outcome.MISMATCH
    assert result.dimse_status == 0xA900
    assert not Instance.objects.exists()


def test_a_duplicate_is_kept_as_is_and_reported_as_success(pacs_runtime, tmp_path, caplog):
    ds = make_dataset()
    first = store_file(write_part10(ds, tmp_path / "first.dcm"))
    ds.StudyDescription = "changed"
    second = store_file(write_part10(ds, tmp_path / "second.dcm"))
    assert first.outcome is Outcome.STORED
    assert second.outcome is Outcome.DUPLICATE
    assert second.dimse_status == 0x0000
    assert "Duplicate" in caplog.text
    instance = Instance.objects.select_related("storage").get()
    assert file_sha1(stored_path(instance)) == file_sha1(tmp_path / "first.dcm")
    assert Study.objects.get().number_of_instances == 1


def test_overwrite_image_replaces_a_duplicate(pacs_runtime, tmp_path):
    reconfigure(overwrite_image=True)
    ds = make_dataset()
    store_file(write_part10(ds, tmp_path / "first.dcm"))
    ds.StudyDescription = "changed"
    result = store_file(write_part10(ds, tmp_path / "second.dcm"))
    assert result.outcome is Outcome.REPLACED
    instance = Instance.objects.select_related("storage").get()
    assert file_sha1(stored_path(instance)) == file_sha1(tmp_path / "second.dcm")
    study = Study.objects.get()
    assert (study.number_of_instances, study.number_of_series) == (1, 1)
    assert study.size_bytes == instance.size_bytes
    assert len(files_under(tmp_path / "storage")) == 1


@pytest.mark.parametrize("crop, expected", [(True, "A" * 16), (False, "A" * 20)])
def test_accession_number_is_cropped_to_16_characters_when_set(
    pacs_runtime, tmp_path, crop, expected
):
    reconfigure(accession_crop=crop)
    path = write_part10(make_dataset(accession_number="A" * 20), tmp_path / "a.dcm")
    store_file(path)
    assert Study.objects.get().accession_number == expected
    # The file itself is stored as received.
    instance = Instance.objects.select_related("storage").get()
    assert file_sha1(stored_path(instance)) == file_sha1(path)


@pytest.mark.parametrize(
    "charset, name",
    [
        ("ISO_IR 192", "Wang^XiaoDong=王^小東"),
        ("ISO_IR 144", "Люкceмбypг"),
        ("ISO_IR 100", "Äneas^Rüdiger"),
        ("ISO_IR 126", "Διονυσιος"),
    ],
)
def test_names_are_indexed_as_unicode_in_their_character_set(pacs_runtime, tmp_path, charset, name):
    ds = make_dataset(patient_name=name, charset=charset)
    store_file(write_part10(ds, tmp_path / "a.dcm"))
    patient = Patient.objects.get()
    assert patient.patient_name == name
    assert patient.patient_name_search == name.casefold()
    assert Study.objects.get().specific_character_set == charset


def test_counts_follow_studies_series_and_modalities(pacs_runtime, tmp_path):
    study_uid = "1.2.826.0.1.3680043.8.498.1"
    ct_series, mr_series = "1.2.826.0.1.3680043.8.498.2", "1.2.826.0.1.3680043.8.498.3"
    for index, (series_uid, modality) in enumerate(
        [(ct_series, "CT"), (ct_series, "CT"), (mr_series, "MR")]
    ):
        ds = make_dataset(study_uid=study_uid, series_uid=series_uid, modality=modality)
        assert store_file(write_part10(ds, tmp_path / f"{index}.dcm")).outcome is Outcome.STORED
    study = Study.objects.get()
    assert (study.number_of_series, study.number_of_instances) == (2, 3)
    assert study.modalities_in_study == "CT\\MR"
    assert study.size_bytes == sum(i.size_bytes for i in Instance.objects.all())
    assert Patient.objects.get().number_of_studies == 1
    assert Series.objects.get(series_instance_uid=ct_series).number_of_instances == 2


def test_a_series_uid_reused_in_another_study_is_refused(pacs_runtime, tmp_path):
    series_uid = "1.2.826.0.1.3680043.8.498.9"
    store_file(write_part10(make_dataset(series_uid=series_uid), tmp_path / "a.dcm"))
    result = store_file(write_part10(make_dataset(series_uid=series_uid), tmp_path / "b.dcm"))
    assert result.outcome is Outcome.MISMATCH
    assert Instance.objects.count() == 1
    assert len(files_under(tmp_path / "storage")) == 1


def test_files_are_placed_by_study_series_and_sop_uid(pacs_runtime, tmp_path):
    ds = make_dataset()
    store_file(write_part10(ds, tmp_path / "a.dcm"))
    instance = Instance.objects.get()
    assert instance.relative_path == (
        f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    )


def test_uids_that_are_not_safe_file_names_cannot_escape_the_storage(pacs_runtime, tmp_path):
    ds = make_dataset(study_uid="../../escape", series_uid="a/b", sop_uid="..")
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    result = store_file(write_part10(ds, tmp_path / "evil.dcm"))
    assert result.outcome is Outcome.STORED
    stored = files_under(tmp_path / "storage")
    assert len(stored) == 1
    assert ".." not in Instance.objects.get().relative_path


def test_no_storage_above_the_free_space_limit_answers_out_of_resources(
    pacs_runtime, tmp_path, caplog
):
    reconfigure(free_space_limit_mb=2**40)
    path = write_part10(make_dataset(), tmp_path / "a.dcm")
    result = store_file(path)
    assert result.outcome is Outcome.OUT_OF_RESOURCES
    assert result.dimse_status == 0xA700
    assert "no storage has more free space than the limit" in caplog.text
    assert files_under(tmp_path / "storage") == []
    assert path.exists()  # the sender's copy is untouched; nothing is lost
    assert not Instance.objects.exists()


def test_under_the_critical_watermark_on_every_storage_the_store_refuses(pacs_runtime, tmp_path):
    reconfigure(free_space_limit_mb=2**40, critical_free_space_mb=2**40)
    result = store_file(write_part10(make_dataset(), tmp_path / "a.dcm"))
    assert result.outcome is Outcome.OUT_OF_RESOURCES
    assert "critical" in result.reason


def test_a_missing_or_disabled_storage_is_skipped(pacs_runtime, tmp_path, caplog):
    first = Storage.objects.get()
    Storage.objects.filter(pk=first.pk).update(path=str(tmp_path / "gone"))
    disabled = tmp_path / "disabled"
    disabled.mkdir()
    Storage.objects.create(path=str(disabled), enabled=False)
    second = tmp_path / "second"
    second.mkdir()
    Storage.objects.create(path=str(second))
    store_file(write_part10(make_dataset(), tmp_path / "a.dcm"))
    assert Instance.objects.get().storage.path == str(second)
    assert "unavailable" in caplog.text
    assert files_under(disabled) == []


def test_an_unwritable_temp_folder_fails_loudly(pacs_runtime, tmp_path, caplog):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    reconfigure(temp_dir=str(not_a_folder))
    result = store_file(write_part10(make_dataset(), tmp_path / "a.dcm"))
    assert result.outcome is Outcome.OUT_OF_RESOURCES
    assert "temp folder" in result.reason
    assert "temp folder" in caplog.text


def test_storing_into_an_existing_series_is_a_few_short_statements(
    pacs_runtime, tmp_path, django_assert_max_num_queries
):
    study_uid, series_uid = "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12"
    uids = {"study_uid": study_uid, "series_uid": series_uid}
    store_file(write_part10(make_dataset(**uids), tmp_path / "a.dcm"))
    path = write_part10(make_dataset(**uids), tmp_path / "b.dcm")
    # duplicate check, storages, series lookup, insert, two counter updates (+ savepoints)
    with django_assert_max_num_queries(8):
        assert store_file(path).outcome is Outcome.STORED


def test_a_file_left_by_a_crash_without_its_index_row_is_replaced(pacs_runtime, tmp_path):
    ds = make_dataset()
    orphan = (
        tmp_path
        / "storage"
        / ds.StudyInstanceUID
        / ds.SeriesInstanceUID
        / f"{ds.SOPInstanceUID}.dcm"
    )
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left behind")
    path = write_part10(ds, tmp_path / "a.dcm")
    assert store_file(path).outcome is Outcome.STORED
    assert file_sha1(orphan) == file_sha1(path)
    assert Instance.objects.count() == 1


def test_a_sop_uid_already_stored_in_another_study_is_a_duplicate_and_leaves_no_file(
    pacs_runtime, tmp_path
):
    first = make_dataset()
    store_file(write_part10(first, tmp_path / "a.dcm"))
    again = make_dataset(sop_uid=first.SOPInstanceUID)  # new study and series UIDs
    result = store_file(write_part10(again, tmp_path / "b.dcm"))
    assert result.outcome is Outcome.DUPLICATE
    assert len(files_under(tmp_path / "storage")) == 1
    assert Study.objects.count() == 1


def test_across_file_systems_the_copy_goes_through_the_staging_folder(
    pacs_runtime, tmp_path, monkeypatch
):
    import errno
    import os

    from studies.services import ingest

    real_link = os.link

    def link_across_devices(source, destination):
        # The temp folder on another file system: a failure the test cannot cause for real.
        if str(source).startswith(str(tmp_path / "temp")):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(source, destination)

    monkeypatch.setattr(ingest.os, "link", link_across_devices)
    path = write_part10(make_dataset(), tmp_path / "a.dcm")
    assert store_file(path).outcome is Outcome.STORED
    instance = Instance.objects.select_related("storage").get()
    assert file_sha1(stored_path(instance)) == file_sha1(path)
    assert list((tmp_path / "storage" / ingest.STAGING_FOLDER).iterdir()) == []


def test_leftovers_of_a_killed_scp_are_cleaned_when_they_are_old(tmp_path):
    import os
    import time

    from studies.services.ingest import STAGING_FOLDER, clean_leftovers

    temp = tmp_path / "temp"
    staging = tmp_path / "storage" / STAGING_FOLDER
    temp.mkdir()
    staging.mkdir(parents=True)
    old_received, new_received = temp / "tmpold.dcm", temp / "tmpnew.dcm"
    old_copy = staging / "old.part"
    for path in (old_received, new_received, old_copy):
        path.write_bytes(b"partial")
    hours_ago = time.time() - 7200
    for path in (old_received, old_copy):
        os.utime(path, (hours_ago, hours_ago))
    assert clean_leftovers(temp, [str(tmp_path / "storage")]) == 2
    assert not old_received.exists() and not old_copy.exists()
    assert new_received.exists()


def test_times_in_the_old_colon_form_are_indexed_as_hhmmss(pacs_runtime, tmp_path):
    ds = make_dataset()
    ds.StudyTime = "11:20:05"
    ds.SeriesTime = "11:21:00.5"
    store_file(write_part10(ds, tmp_path / "a.dcm"))
    assert Study.objects.get().study_time == "112005"
    assert Series.objects.get().series_time == "112100.5"
