"""The store SCP on a real socket, with DCMTK and pynetdicom as peers [ING], [DEV-ACL]."""

from __future__ import annotations

import logging
import subprocess
import threading
from pathlib import Path

import pytest
from pydicom import dcmread

from devices.models import Device
from studies.models import Instance, Series, Study
from tests.conftest import dcmtk_tool, reconfigure, running_scp
from tests.dicom_helpers import (
    association_accepted,
    dataset_offset,
    dataset_sha1,
    make_dataset,
    rewrite_meta,
    send_files,
    with_command_uids_from_dataset,
    write_part10,
)
from tests.ingest.test_store_instance import EXPECTED_REFUSED

SUCCESS, NOT_AUTHORIZED, OUT_OF_RESOURCES = 0x0000, 0x0124, 0xA700
MISMATCH, CANNOT_UNDERSTAND = 0xA900, 0xC000


@pytest.fixture
def scp(pacs_runtime_tx):
    with running_scp() as server:
        yield server


@pytest.fixture
def uploader(scp):
    Device.objects.create(ae_title="TESTSCU", host="127.0.0.1", port=11112, upload=True)
    reconfigure()
    return "TESTSCU"


def storage_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "storage").rglob("*") if p.is_file())


def test_echoscu_gets_an_answer(scp):
    reconfigure(accept_any_ae=True)
    echoscu = dcmtk_tool("echoscu")
    result = subprocess.run(
        [echoscu, "-aet", "ECHOSCU", "-aec", "VESALIUS", "127.0.0.1", str(scp.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_an_unknown_calling_ae_is_rejected_unless_accept_any_is_on(scp, caplog):
    caplog.set_level(logging.WARNING)
    assert not association_accepted(scp.port, "STRANGER")
    assert "not a known device" in caplog.text
    reconfigure(accept_any_ae=True)
    assert association_accepted(scp.port, "STRANGER")


def test_a_known_device_is_accepted_while_accept_any_is_off(scp):
    Device.objects.create(ae_title="MODALITY1", host="10.0.0.1", port=104)
    reconfigure()
    assert association_accepted(scp.port, "MODALITY1")
    assert not association_accepted(scp.port, "MODALITY2")


def test_storescu_from_an_unknown_ae_stores_nothing(scp, tmp_path):
    path = write_part10(make_dataset(), tmp_path / "in" / "a.dcm")
    storescu = dcmtk_tool("storescu")
    result = subprocess.run(
        [storescu, "-aet", "STRANGER", "-aec", "VESALIUS", "127.0.0.1", str(scp.port), str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "Rejected" in result.stderr or "rejected" in result.stderr.lower()
    assert storage_files(tmp_path) == []
    assert not Instance.objects.exists()


def test_a_device_without_upload_gets_a_failure_status_and_nothing_is_stored(scp, tmp_path, caplog):
    Device.objects.create(ae_title="VIEWER", host="127.0.0.1", port=104, upload=False)
    reconfigure()
    path = write_part10(make_dataset(), tmp_path / "in" / "a.dcm")
    assert send_files(scp.port, [path], calling_ae="VIEWER") == [NOT_AUTHORIZED]
    assert "lacks the UPLOAD permission" in caplog.text
    assert storage_files(tmp_path) == []
    assert not Instance.objects.exists()


def test_storescu_sends_are_stored_and_indexed(scp, uploader, tmp_path):
    study_uid = "1.2.826.0.1.3680043.8.498.100"
    paths = [
        write_part10(make_dataset(study_uid=study_uid), tmp_path / "in" / f"{i}.dcm")
        for i in range(3)
    ]
    result = subprocess.run(
        [dcmtk_tool("storescu"), "-aet", uploader, "-aec", "VESALIUS"]
        + ["127.0.0.1", str(scp.port)]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    study = Study.objects.get(study_instance_uid=study_uid)
    assert (study.number_of_series, study.number_of_instances) == (3, 3)


def test_every_corpus_file_is_stored_byte_identical_or_refused_with_a_failure_status(
    scp, uploader, corpus_dir, tmp_path
):
    files = sorted(p for p in (corpus_dir / "dev").rglob("*") if p.is_file())
    statuses = {}
    for path in files:
        # One association per file keeps the presentation contexts simple; raw bytes are
        # sent, so what the SCP stores can be compared with the source byte for byte.
        sent = with_command_uids_from_dataset(path, tmp_path)
        statuses[path] = send_files(scp.port, [sent], calling_ae=uploader)[0]
    refused = {path.name for path, code in statuses.items() if code != SUCCESS}
    assert refused == set(EXPECTED_REFUSED)
    assert all(statuses[p] == CANNOT_UNDERSTAND for p in files if p.name in EXPECTED_REFUSED)

    sources = {}
    for path in files:
        if path.name not in EXPECTED_REFUSED:
            uid = dcmread(path, stop_before_pixels=True).SOPInstanceUID
            sources.setdefault(uid, path)  # the first one sent is kept [ING-3]
    assert Instance.objects.count() == len(sources)
    for instance in Instance.objects.select_related("storage"):
        stored = Path(instance.storage.path) / instance.relative_path
        assert dataset_sha1(stored) == dataset_sha1(sources[instance.sop_instance_uid])


def test_bad_input_gets_a_failure_status_and_the_association_carries_on(scp, uploader, tmp_path):
    good = write_part10(make_dataset(pixels=32), tmp_path / "in" / "good.dcm")
    offset = dataset_offset(good)
    data = good.read_bytes()

    not_dicom = tmp_path / "in" / "not_dicom.dcm"
    not_dicom.write_bytes(data[:offset] + b"\xff\xfe garbage, not a dataset " * 20)
    truncated = tmp_path / "in" / "truncated.dcm"
    truncated.write_bytes(data[:-500])
    no_study = make_dataset()
    del no_study.StudyInstanceUID
    missing_uid = write_part10(no_study, tmp_path / "in" / "missing.dcm")
    mismatch = rewrite_meta(
        write_part10(make_dataset(), tmp_path / "in" / "other.dcm"),
        tmp_path / "in" / "mismatch.dcm",
        MediaStorageSOPInstanceUID="1.2.826.0.1.3680043.8.498.77",
    )

    statuses = send_files(
        scp.port, [not_dicom, truncated, missing_uid, mismatch, good], calling_ae=uploader
    )
    assert statuses == [CANNOT_UNDERSTAND, CANNOT_UNDERSTAND, CANNOT_UNDERSTAND, MISMATCH, SUCCESS]
    assert Instance.objects.count() == 1
    assert len(storage_files(tmp_path)) == 1
    # The server carries on with new associations too.
    assert association_accepted(scp.port, uploader)


def test_no_free_space_answers_out_of_resources_and_loses_nothing(scp, uploader, tmp_path, caplog):
    reconfigure(free_space_limit_mb=2**40)
    path = write_part10(make_dataset(), tmp_path / "in" / "a.dcm")
    before = path.read_bytes()
    assert send_files(scp.port, [path], calling_ae=uploader) == [OUT_OF_RESOURCES]
    assert "no storage has more free space than the limit" in caplog.text
    assert path.read_bytes() == before
    assert storage_files(tmp_path) == []
    # When space returns, the same file is stored.
    reconfigure(free_space_limit_mb=1)
    assert send_files(scp.port, [path], calling_ae=uploader) == [SUCCESS]


def test_many_associations_at_once_store_everything(scp, uploader, tmp_path):
    study_uid = "1.2.826.0.1.3680043.8.498.200"
    series_uid = "1.2.826.0.1.3680043.8.498.201"
    batches = [
        [
            write_part10(
                make_dataset(study_uid=study_uid, series_uid=series_uid),
                tmp_path / "in" / f"{a}-{i}.dcm",
            )
            for i in range(10)
        ]
        for a in range(6)
    ]
    results: list[list[int]] = []

    def send(batch: list[Path]) -> None:
        results.append(send_files(scp.port, batch, calling_ae=uploader))

    threads = [threading.Thread(target=send, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(code for batch in results for code in batch) == [SUCCESS] * 60
    series = Series.objects.get(series_instance_uid=series_uid)
    assert series.number_of_instances == 60
    assert Study.objects.get().number_of_instances == 60
    assert len(storage_files(tmp_path)) == 60
