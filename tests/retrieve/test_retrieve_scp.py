"""C-MOVE and C-GET SCP (PS3.4 C.4.2, C.4.3) [QR-2], [QR-3], [DEV-ACL] with DCMTK movescu,
getscu and storescp as real peers, and pynetdicom for exact statuses."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from devices.models import Device
from studies.models import Instance
from studies.services import Origin, store_instance
from tests.conftest import dcmtk_tool, reconfigure, running_scp
from tests.dicom_helpers import dataset_sha1, free_port, make_dataset, write_part10

STUDY_UID = "1.2.826.0.1.3680043.8.498.700"
SUCCESS, WARNING, NOT_AUTHORIZED = 0x0000, 0xB000, 0x0124
DESTINATION_UNKNOWN, BAD_IDENTIFIER = 0xA801, 0xA900


@pytest.fixture
def scp(pacs_runtime_tx):
    with running_scp() as server:
        yield server


@pytest.fixture
def study(scp, tmp_path) -> list[Path]:
    """A study of 2 series, 5 instances, stored through the ingest service."""
    sources = []
    for index in range(5):
        ds = make_dataset(study_uid=STUDY_UID, series_uid=f"{STUDY_UID}.{index % 2 + 1}", pixels=32)
        source = write_part10(ds, tmp_path / "sources" / f"{index}.dcm")
        copy = tmp_path / "temp" / f"in-{index}.dcm"
        copy.write_bytes(source.read_bytes())
        assert store_instance(copy, origin=Origin("test")).ok
        sources.append(source)
    return sources


@pytest.fixture
def storescp(tmp_path):
    """A DCMTK storescp accepting every transfer syntax it knows."""
    port = free_port()
    folder = tmp_path / "received"
    folder.mkdir()
    process = subprocess.Popen(
        [dcmtk_tool("storescp"), "+xa", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    yield port, folder
    process.terminate()
    process.wait(timeout=10)


def add_device(ae_title: str, port: int = 104, **permissions) -> Device:
    device = Device.objects.create(
        ae_title=ae_title, host="127.0.0.1", port=port, **{"download": True, **permissions}
    )
    reconfigure()
    return device


def stored_files() -> dict[str, Path]:
    return {
        i.sop_instance_uid: Path(i.storage.path) / i.relative_path
        for i in Instance.objects.select_related("storage")
    }


def study_identifier(level: str = "STUDY") -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.StudyInstanceUID = STUDY_UID
    return ds


def move_statuses(port: int, identifier: Dataset, destination: str, calling="MOVER") -> list:
    ae = AE(ae_title=calling)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", port, ae_title="VESALIUS")
    assert assoc.is_established
    try:
        return [
            (int(status.Status), identifier_out)
            for status, identifier_out in assoc.send_c_move(
                identifier, destination, StudyRootQueryRetrieveInformationModelMove
            )
            if status is not None and "Status" in status
        ]
    finally:
        assoc.release()


def test_c_move_of_a_study_to_storescp_delivers_every_file_byte_identical(scp, study, storescp):
    port, folder = storescp
    add_device("MOVER")
    add_device("STORESCP", port=port)
    result = subprocess.run(
        [
            *(dcmtk_tool("movescu"), "-S", "-aet", "MOVER", "-aec", "VESALIUS"),
            *("-aem", "STORESCP", "-k", "QueryRetrieveLevel=STUDY"),
            *("-k", f"StudyInstanceUID={STUDY_UID}", "127.0.0.1", str(scp.port)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    received = {dcmread(p).SOPInstanceUID: p for p in folder.iterdir()}
    stored = stored_files()
    assert set(received) == set(stored)
    for uid, path in received.items():
        assert dataset_sha1(path) == dataset_sha1(stored[uid])


def test_c_get_with_getscu_delivers_every_file_byte_identical(scp, study, tmp_path):
    add_device("GETTER")
    folder = tmp_path / "got"
    folder.mkdir()
    result = subprocess.run(
        [
            *(dcmtk_tool("getscu"), "-S", "-xe", "-aet", "GETTER", "-aec", "VESALIUS"),
            *("-od", str(folder), "-k", "QueryRetrieveLevel=SERIES"),
            *("-k", f"StudyInstanceUID={STUDY_UID}", "-k", f"SeriesInstanceUID={STUDY_UID}.1"),
            *("127.0.0.1", str(scp.port)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    received = {dcmread(p).SOPInstanceUID: p for p in folder.iterdir()}
    stored = stored_files()
    series_uids = {
        i.sop_instance_uid
        for i in Instance.objects.filter(series__series_instance_uid=f"{STUDY_UID}.1")
    }
    assert set(received) == series_uids
    for uid, path in received.items():
        assert dataset_sha1(path) == dataset_sha1(stored[uid])


def test_c_move_sends_the_destinations_preferred_transfer_syntax_when_it_is_accepted(
    scp, study, storescp
):
    port, folder = storescp
    add_device("MOVER")
    add_device("STORESCP", port=port, preferred_transfer_syntax="1.2.840.10008.1.2.5")
    statuses = move_statuses(scp.port, study_identifier(), "STORESCP")
    assert statuses[-1][0] == SUCCESS
    stored = stored_files()
    for path in folder.iterdir():
        received = dcmread(path)
        assert received.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
        original = dcmread(stored[received.SOPInstanceUID])
        assert (received.pixel_array == original.pixel_array).all()


def test_sub_operation_counts_are_reported_and_a_missing_file_fails_alone(scp, study, storescp):
    port, _folder = storescp
    add_device("MOVER")
    add_device("STORESCP", port=port)
    victim = Instance.objects.select_related("storage").first()
    (Path(victim.storage.path) / victim.relative_path).unlink()
    statuses = move_statuses(scp.port, study_identifier(), "STORESCP")
    final_status, final_identifier = statuses[-1]
    assert final_status == WARNING  # PS3.4 C.4.2.1.5: some sub-operations failed
    assert final_identifier.FailedSOPInstanceUIDList == victim.sop_instance_uid
    # Pending responses are paced (at most four a second), then the final one.
    assert 2 <= len(statuses) <= 5


def test_an_unknown_move_destination_is_refused(scp, study):
    add_device("MOVER")
    assert move_statuses(scp.port, study_identifier(), "NOWHERE")[-1][0] == DESTINATION_UNKNOWN


def test_a_device_without_download_is_refused(scp, study, storescp, caplog):
    port, folder = storescp
    add_device("MOVER", download=False)
    add_device("STORESCP", port=port)
    assert move_statuses(scp.port, study_identifier(), "STORESCP")[-1][0] == NOT_AUTHORIZED
    assert "lacks the DOWNLOAD permission" in caplog.text
    assert list(folder.iterdir()) == []


def test_an_identifier_without_a_level_is_refused(scp, study, storescp):
    port, _folder = storescp
    add_device("MOVER")
    add_device("STORESCP", port=port)
    identifier = study_identifier()
    del identifier.QueryRetrieveLevel
    assert move_statuses(scp.port, identifier, "STORESCP")[-1][0] == BAD_IDENTIFIER


def test_c_get_from_pynetdicom_counts_its_sub_operations(scp, study, tmp_path):
    add_device("GETTER")
    received = []

    def on_store(event):
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    from pynetdicom import build_role, evt

    ae = AE(ae_title="GETTER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    assoc = ae.associate(
        "127.0.0.1",
        scp.port,
        ae_title="VESALIUS",
        ext_neg=[build_role("1.2.840.10008.5.1.4.1.1.2", scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    try:
        responses = [
            status
            for status, _ in assoc.send_c_get(
                study_identifier(), StudyRootQueryRetrieveInformationModelGet
            )
            if status is not None and "Status" in status
        ]
    finally:
        assoc.release()
    final = responses[-1]
    assert int(final.Status) == SUCCESS
    assert final.NumberOfCompletedSuboperations == 5
    assert sorted(received) == sorted(stored_files())


LOSSLESS_TARGETS = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.5",
]
LOSSY_TARGETS = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91"]
PSNR_BOUND_DB = 30.0  # quality 90, over the image's value range


def psnr(received, original) -> float:
    import numpy as np

    a, b = original.astype(np.float64), received.astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    peak = float(a.max() - a.min()) or 1.0
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


@pytest.fixture
def eight_bit_study(scp, tmp_path) -> None:
    """Three 8-bit MONOCHROME2 images (JPEG Baseline takes 8-bit only), with structure."""
    import numpy as np

    for index in range(3):
        ds = make_dataset(study_uid=STUDY_UID, series_uid=f"{STUDY_UID}.9", pixels=64)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        y, x = np.mgrid[0:64, 0:64]
        ds.PixelData = ((x * 3 + y * 2 + index * 10) % 256).astype(np.uint8).tobytes()
        copy = write_part10(ds, tmp_path / "temp" / f"eight-{index}.dcm")
        assert store_instance(copy, origin=Origin("test")).ok


@pytest.mark.parametrize("target", LOSSLESS_TARGETS + LOSSY_TARGETS)
def test_c_move_delivers_each_preferred_transfer_syntax_the_receiver_accepts(
    scp, eight_bit_study, storescp, target
):
    port, folder = storescp
    add_device("MOVER")
    add_device(
        "STORESCP",
        port=port,
        preferred_transfer_syntax=target,
        allow_lossy=target in LOSSY_TARGETS,
    )
    assert move_statuses(scp.port, study_identifier(), "STORESCP")[-1][0] == SUCCESS
    stored = stored_files()
    received_files = list(folder.iterdir())
    assert len(received_files) == 3
    for path in received_files:
        received = dcmread(path)
        assert received.file_meta.TransferSyntaxUID == target
        original = dcmread(stored[received.SOPInstanceUID])
        if target in LOSSLESS_TARGETS:
            assert (received.pixel_array == original.pixel_array).all()
        else:
            assert psnr(received.pixel_array, original.pixel_array) > PSNR_BOUND_DB


def test_a_lossy_preference_is_not_used_unless_the_device_allows_lossy(
    scp, eight_bit_study, storescp
):
    port, folder = storescp
    add_device("MOVER")
    add_device("STORESCP", port=port, preferred_transfer_syntax="1.2.840.10008.1.2.4.50")
    assert move_statuses(scp.port, study_identifier(), "STORESCP")[-1][0] == SUCCESS
    for path in folder.iterdir():
        assert dcmread(path).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"  # as stored


def test_a_preference_the_receiver_does_not_accept_falls_back_to_the_stored_syntax(
    scp, study, tmp_path
):
    port = free_port()
    folder = tmp_path / "plain"
    folder.mkdir()
    # Without +xa, storescp accepts uncompressed syntaxes only.
    receiver = subprocess.Popen(
        [dcmtk_tool("storescp"), "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        add_device("MOVER")
        add_device("PLAIN", port=port, preferred_transfer_syntax="1.2.840.10008.1.2.4.90")
        assert move_statuses(scp.port, study_identifier(), "PLAIN")[-1][0] == SUCCESS
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    stored = stored_files()
    received = {dcmread(p).SOPInstanceUID: p for p in folder.iterdir()}
    assert set(received) == set(stored)
    for uid, path in received.items():
        assert dcmread(path).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert dataset_sha1(path) == dataset_sha1(stored[uid])


def test_a_c_cancel_mid_way_ends_the_c_move_with_cancel_status(scp, study, tmp_path):
    from pynetdicom import evt

    def slow_store(event):
        time.sleep(0.3)  # a slow receiver, so that the cancel arrives mid-way
        return 0x0000

    receiver_ae = AE(ae_title="SLOW")
    receiver_ae.add_supported_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    port = free_port()
    receiver = receiver_ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, slow_store)]
    )
    add_device("MOVER")
    add_device("SLOW", port=port)
    ae = AE(ae_title="MOVER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="VESALIUS")
    try:
        context_id = assoc._get_valid_context(
            StudyRootQueryRetrieveInformationModelMove, "", "scu"
        ).context_id
        final = None
        for rsp, identifier in assoc.send_c_move(
            study_identifier(), "SLOW", StudyRootQueryRetrieveInformationModelMove, msg_id=7
        ):
            if rsp is None or "Status" not in rsp:
                continue
            if int(rsp.Status) == 0xFF00:
                assoc.send_c_cancel(7, context_id)
            else:
                final = (int(rsp.Status), rsp, identifier)
    finally:
        assoc.release()
        receiver.shutdown()
    status_code, rsp, identifier = final
    assert status_code == 0xFE00
    assert rsp.NumberOfCompletedSuboperations < 5
    assert rsp.NumberOfRemainingSuboperations > 0
    not_sent = identifier.FailedSOPInstanceUIDList
    not_sent = [not_sent] if isinstance(not_sent, str) else list(not_sent)
    assert len(not_sent) == rsp.NumberOfRemainingSuboperations


# The fast path of the sender for files sent as they are (studies/services/direct_store.py):
# PDUs written straight to the socket, responses read by the sending thread.


@pytest.fixture
def large_study(scp, tmp_path) -> None:
    """A study of 3 instances of ~32 KB each, so that small PDUs split every dataset."""
    for index in range(3):
        ds = make_dataset(study_uid=STUDY_UID, series_uid=f"{STUDY_UID}.1", pixels=128)
        copy = write_part10(ds, tmp_path / "temp" / f"large-{index}.dcm")
        assert store_instance(copy, origin=Origin("test")).ok


def test_c_get_to_a_receiver_with_4_kb_pdus_delivers_every_file_byte_identical(
    scp, large_study, tmp_path
):
    # PS3.8 9.3.5: each P-DATA-TF PDU within the receiver's maximum length (DCMTK's least).
    add_device("GETTER")
    folder = tmp_path / "got"
    folder.mkdir()
    result = subprocess.run(
        [
            *(dcmtk_tool("getscu"), "-S", "-xe", "-pdu", "4096", "-aet", "GETTER"),
            *("-aec", "VESALIUS", "-od", str(folder), "-k", "QueryRetrieveLevel=STUDY"),
            *("-k", f"StudyInstanceUID={STUDY_UID}", "127.0.0.1", str(scp.port)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    received = {dcmread(p).SOPInstanceUID: p for p in folder.iterdir()}
    stored = stored_files()
    assert set(received) == set(stored)
    for uid, path in received.items():
        assert dataset_sha1(path) == dataset_sha1(stored[uid])


def c_get_from_pynetdicom(port: int, on_store, *, during=None) -> tuple[Dataset, Dataset]:
    """A C-GET of the test study with a pynetdicom SCU whose storage SCP calls ``on_store``;
    ``during(assoc, context_id)`` runs after the first pending response. Returns the final
    response and its identifier."""
    from pynetdicom import build_role, evt

    ae = AE(ae_title="GETTER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="VESALIUS",
        ext_neg=[build_role("1.2.840.10008.5.1.4.1.1.2", scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    final = None
    try:
        for rsp, identifier in assoc.send_c_get(
            study_identifier(), StudyRootQueryRetrieveInformationModelGet, msg_id=9
        ):
            if rsp is None or "Status" not in rsp:
                continue
            if int(rsp.Status) == 0xFF00:
                if during is not None:
                    context_id = assoc._get_valid_context(
                        StudyRootQueryRetrieveInformationModelGet, "", "scu"
                    ).context_id
                    during(assoc, context_id)
                    during = None
            else:
                final = (rsp, identifier)
    finally:
        assoc.release()
    return final


def test_the_receivers_failure_and_warning_statuses_are_counted_per_instance(scp, study):
    # PS3.4 C.4.3.1.5: sub-operation failures and warnings are counted, the others go on.
    add_device("GETTER")
    answers = iter([0xA700, 0xB007, 0x0000, 0x0000, 0x0000])

    def on_store(event):
        return next(answers)

    rsp, identifier = c_get_from_pynetdicom(scp.port, on_store)
    assert int(rsp.Status) == WARNING
    assert rsp.NumberOfCompletedSuboperations == 3
    assert rsp.NumberOfFailedSuboperations == 1
    assert rsp.NumberOfWarningSuboperations == 1
    assert isinstance(identifier.FailedSOPInstanceUIDList, str)  # the one that failed


def test_a_c_cancel_that_arrives_while_a_c_get_waits_for_a_c_store_response_is_honoured(scp, study):
    # PS3.4 C.4.3.3.1: the C-CANCEL comes while the sender waits for a C-STORE response;
    # it is handed to pynetdicom and the C-GET ends with Cancel (0xFE00) and the counts.
    add_device("GETTER")
    storing = []

    def slow_store(event):
        storing.append(event.request.AffectedSOPInstanceUID)
        time.sleep(0.3)
        return 0x0000

    def cancel_while_storing(assoc, context_id):
        threading.Timer(0.1, assoc.send_c_cancel, (9, context_id)).start()

    rsp, _ = c_get_from_pynetdicom(scp.port, slow_store, during=cancel_while_storing)
    assert int(rsp.Status) == 0xFE00
    assert 0 < rsp.NumberOfCompletedSuboperations < 5
    assert rsp.NumberOfRemainingSuboperations == 5 - rsp.NumberOfCompletedSuboperations
    assert len(storing) == rsp.NumberOfCompletedSuboperations


def test_a_receiver_that_aborts_mid_way_ends_the_c_get_without_hanging_the_scp(scp, study):
    # The A-ABORT arrives while the sender waits for a C-STORE response: it is handed to
    # pynetdicom, the remaining sub-operations fail at once, and the SCP serves on.
    from pynetdicom import build_role, evt

    add_device("GETTER")
    holder = {}

    def abort_on_the_second(event):
        holder["count"] = holder.get("count", 0) + 1
        if holder["count"] == 2:
            threading.Timer(0.05, holder["assoc"].abort).start()
            time.sleep(0.3)
        return 0x0000

    ae = AE(ae_title="GETTER")
    ae.dimse_timeout = 2  # pynetdicom's SCU waits this long after aborting by itself
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    assoc = ae.associate(
        "127.0.0.1",
        scp.port,
        ae_title="VESALIUS",
        ext_neg=[build_role("1.2.840.10008.5.1.4.1.1.2", scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, abort_on_the_second)],
    )
    holder["assoc"] = assoc
    list(assoc.send_c_get(study_identifier(), StudyRootQueryRetrieveInformationModelGet))
    assert assoc.is_aborted
    deadline = time.monotonic() + 10
    while scp.server.active_associations and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not scp.server.active_associations
    echo_ae = AE(ae_title="GETTER")
    echo_ae.add_requested_context("1.2.840.10008.1.1")
    echo = echo_ae.associate("127.0.0.1", scp.port, ae_title="VESALIUS")
    assert echo.is_established
    assert echo.send_c_echo().Status == 0x0000
    echo.release()
