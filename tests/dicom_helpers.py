"""Helpers to build DICOM test data and to talk to an SCP as a pynetdicom SCU."""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_preamble
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

CT_IMAGE_STORAGE = str(CTImageStorage)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_dataset(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    patient_name: str = "Test^Patient",
    patient_id: str = "PID-1",
    modality: str = "CT",
    study_date: str = "20240102",
    accession_number: str = "ACC1",
    charset: str | None = None,
    pixels: int = 8,
) -> Dataset:
    """A small CT image in Explicit VR Little Endian with file meta, ready to save."""
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = study_date
    ds.StudyTime = "101010"
    ds.AccessionNumber = accession_number
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows = pixels
    ds.Columns = pixels
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(range(256)) * (pixels * pixels * 2 // 256) + b"\x00" * (
        pixels * pixels * 2 % 256
    )
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def write_part10(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def dataset_offset(path: Path) -> int:
    """Where the dataset starts in a Part 10 file (after preamble and file meta)."""
    from pydicom.filereader import _read_file_meta_info

    with path.open("rb") as fp:
        read_preamble(fp, force=True)
        _read_file_meta_info(fp)
        return fp.tell()


def dataset_sha1(path: Path) -> str:
    """Hash of the dataset bytes: what a C-STORE transfers, byte for byte."""
    data = path.read_bytes()
    return hashlib.sha1(data[dataset_offset(path) :]).hexdigest()


def file_sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def raw_send_mode() -> Iterator[None]:
    """Send files as their raw bytes (no decode), so corrupt datasets reach the SCP."""
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous


def rewrite_meta(path: Path, destination: Path, **meta_fields: str) -> Path:
    """A copy of a Part 10 file with some file meta elements changed and the dataset bytes
    untouched (in raw mode pynetdicom takes the C-STORE request's UIDs from the meta)."""
    meta = dcmread(path, stop_before_pixels=True, force=True).file_meta
    for keyword, value in meta_fields.items():
        setattr(meta, keyword, value)
    buffer = io.BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=False)
    destination.write_bytes(buffer.getvalue() + path.read_bytes()[dataset_offset(path) :])
    return destination


def with_command_uids_from_dataset(path: Path, folder: Path) -> Path:
    """A modality puts the dataset's SOP Class/Instance UIDs in the C-STORE request. For
    files whose meta disagrees with the dataset, a copy with the meta fixed."""
    ds = dcmread(path, stop_before_pixels=True, force=True)
    meta = ds.file_meta
    sop_class = ds.get("SOPClassUID", meta.get("MediaStorageSOPClassUID"))
    sop_instance = ds.get("SOPInstanceUID", meta.get("MediaStorageSOPInstanceUID"))
    if (sop_class, sop_instance) == (
        meta.get("MediaStorageSOPClassUID"),
        meta.get("MediaStorageSOPInstanceUID"),
    ):
        return path
    return rewrite_meta(
        path,
        folder / f"{path.name}.fixed-meta",
        MediaStorageSOPClassUID=sop_class,
        MediaStorageSOPInstanceUID=sop_instance,
    )


def send_files(
    port: int,
    paths: Iterable[Path],
    *,
    calling_ae: str = "TESTSCU",
    called_ae: str = "VESALIUS",
) -> list[int]:
    """C-STORE each file as it is (raw bytes) in one association; the status of each."""
    paths = list(paths)
    ae = AE(ae_title=calling_ae)
    for path in paths:
        meta = dcmread(path, stop_before_pixels=True, force=True).file_meta
        ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
    with raw_send_mode():
        assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
        if not assoc.is_established:
            raise ConnectionRefusedError("association rejected or aborted")
        try:
            statuses = []
            for path in paths:
                rsp = assoc.send_c_store(path)
                statuses.append(int(rsp.Status) if "Status" in rsp else -1)
            return statuses
        finally:
            assoc.release()


def association_accepted(port: int, calling_ae: str, called_ae: str = "VESALIUS") -> bool:
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    accepted = assoc.is_established
    if accepted:
        assoc.release()
    return accepted


class FakeFindEvent(SimpleNamespace):
    """What the C-FIND handlers read of a pynetdicom C-FIND event: the calling AE, the
    identifier, the SOP class, no extended negotiation, and a cancel after N checks."""

    def __init__(self, identifier: Dataset, calling_ae: str = "FINDSCU", cancel_after: int = -1):
        super().__init__(
            assoc=SimpleNamespace(
                requestor=SimpleNamespace(ae_title=calling_ae),
                acceptor=SimpleNamespace(sop_class_extended={}),  # no extended negotiation
            ),
            request=SimpleNamespace(AffectedSOPClassUID=StudyRootQueryRetrieveInformationModelFind),
            identifier=identifier,
        )
        self._checks = 0
        self._cancel_after = cancel_after

    @property
    def is_cancelled(self) -> bool:
        self._checks += 1
        return 0 <= self._cancel_after < self._checks


def find_statuses(answers) -> list[int]:
    return [status if isinstance(status, int) else int(status.Status) for status, _ in answers]
