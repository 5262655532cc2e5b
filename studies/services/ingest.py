"""The one ingest path [ING-8]: every instance that enters the PACS (C-STORE, STOW-RS, the
console import, the import tool) goes through :func:`store_instance`.

Durability [ING-2]: the received file sits in the temp folder; it is fsynced, renamed
atomically into its storage folder (whose directory entry is fsynced too), and only then is
the index row committed. Success is answered after the commit, so a crash at any point loses
no acknowledged instance and leaves no half-written file in a storage folder.

The service writes the bytes it received: it reads only the header (stop before pixel data)
to index the instance, and never decodes or re-encodes the dataset.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, data_element_generator, read_preamble
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from pacs.config import get_runtime_settings
from pacs.dimse import status
from pacs.outbox import EventKind, record_event
from storages.exceptions import NoStorageAvailable
from storages.models import Storage
from storages.services import choose_storage
from studies.matching import SEQUENCE_KEYS, Level
from studies.models import Instance, Patient, Series, Study
from studies.services.sequence_index import index_sequences

logger = logging.getLogger(__name__)

_COPY_CHUNK = 1024 * 1024
_SAFE_PATH_COMPONENT = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")
_UID_MAX_LENGTH = 64


class Outcome(enum.Enum):
    """What happened to one instance."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # same SOP Instance UID already stored; kept as is [ING-3]
    REPLACED = "replaced"  # same SOP Instance UID, replaced because overwrite_image is on
    REJECTED = "rejected"  # malformed input [ING-4]
    MISMATCH = "mismatch"  # the dataset's UIDs differ from the request's
    OUT_OF_RESOURCES = "out_of_resources"  # no storage, temp folder or database [STO-3/6/7]


_DIMSE_STATUS = {
    Outcome.STORED: status.SUCCESS,
    Outcome.DUPLICATE: status.SUCCESS,
    Outcome.REPLACED: status.SUCCESS,
    Outcome.REJECTED: status.STORE_CANNOT_UNDERSTAND,
    Outcome.MISMATCH: status.STORE_DATASET_MISMATCH,
    Outcome.OUT_OF_RESOURCES: status.STORE_OUT_OF_RESOURCES,
}
_HTTP_STATUS = {
    Outcome.STORED: 200,
    Outcome.DUPLICATE: 200,
    Outcome.REPLACED: 200,
    Outcome.REJECTED: 400,
    Outcome.MISMATCH: 409,
    Outcome.OUT_OF_RESOURCES: 503,
}


@dataclass(frozen=True)
class Origin:
    """Who sent an instance: a DICOM peer (AE title and address), a REST user, a task."""

    kind: str  # "dimse", "stow", "upload", "import", "task"
    ae_title: str = ""
    address: str = ""
    user: str = ""

    def describe(self) -> str:
        who = self.ae_title or self.user or self.kind
        return f"{who}@{self.address}" if self.address else who


@dataclass(frozen=True)
class StoreResult:
    """The domain outcome of one ingest, with its C-STORE and HTTP mappings."""

    outcome: Outcome
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    reason: str = ""
    instance_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.STORED, Outcome.DUPLICATE, Outcome.REPLACED)

    @property
    def dimse_status(self) -> int:
        return _DIMSE_STATUS[self.outcome]

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self.outcome]


class _Refused(Exception):
    """Raised inside the service to stop with an outcome; never leaves this module."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


@dataclass(frozen=True)
class _Header:
    """The attributes of one instance that the index needs, decoded to Unicode."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    dataset: Dataset


def store_instance(
    path: str | os.PathLike[str],
    *,
    origin: Origin,
    expected_sop_class_uid: str | None = None,
    expected_sop_instance_uid: str | None = None,
) -> StoreResult:
    """Index and store the DICOM Part 10 file at ``path`` and report the outcome.

    ``path`` must be in the temp folder: the service moves it into a storage folder when it
    stores it (the caller removes what is left otherwise). ``expected_*`` are the UIDs of the
    C-STORE request, checked against the dataset [ING-4]."""
    source = Path(path)
    header: _Header | None = None
    try:
        header = _read_header(source)
        _check_request_uids(header, expected_sop_class_uid, expected_sop_instance_uid)
        result = _store(source, header, origin)
    except _Refused as refused:
        result = StoreResult(
            outcome=refused.outcome,
            sop_instance_uid=header.sop_instance_uid if header else expected_sop_instance_uid or "",
            sop_class_uid=header.sop_class_uid if header else expected_sop_class_uid or "",
            reason=refused.reason,
        )
    _log_result(result, origin)
    return result


def store_stream(stream: BinaryIO, *, origin: Origin) -> StoreResult:
    """Ingest a DICOM Part 10 file read from ``stream`` (STOW-RS part, browser upload).

    The bytes are spooled to the temp folder first, so the file stored is byte-identical to
    the one received."""
    try:
        temp_path = spool_to_temp(stream)
    except OSError as exc:
        result = StoreResult(Outcome.OUT_OF_RESOURCES, reason=f"temp folder: {exc}")
        _log_result(result, origin)
        return result
    try:
        return store_instance(temp_path, origin=origin)
    finally:
        temp_path.unlink(missing_ok=True)


def temp_folder() -> Path:
    """The configured temp folder [STO-6], created if missing."""
    folder = Path(get_runtime_settings().temp_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def spool_to_temp(stream: BinaryIO) -> Path:
    """Copy ``stream`` to a new file in the temp folder; raises OSError when it cannot."""
    with tempfile.NamedTemporaryFile(dir=temp_folder(), suffix=".dcm", delete=False) as handle:
        shutil.copyfileobj(stream, handle, _COPY_CHUNK)
    return Path(handle.name)


# --- Reading and validating -----------------------------------------------------------------


# The attributes the index reads; everything else in the header is walked past, not decoded.
_HEADER_KEYWORDS = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "StudyDescription",
    "ReferringPhysicianName",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "SeriesDate",
    "SeriesTime",
    "InstanceNumber",
    "NumberOfFrames",
    "Rows",
    "Columns",
    *SEQUENCE_KEYS,  # sequence matching (PS3.4 C.2.2.2.6): small sequences, parsed by the walk
)
_HEADER_TAGS = frozenset(tag_for_keyword(keyword) for keyword in _HEADER_KEYWORDS)
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Values up to this size are read while walking; larger ones (pixel data) are skipped.
_READ_VALUES_UP_TO = 4096


def _read_header(source: Path) -> _Header:
    """Read what the index needs and check that the file is complete, in one pass."""
    try:
        size = source.stat().st_size
        with source.open("rb") as fp:
            read_preamble(fp, force=True)
            file_meta = _read_file_meta_info(fp)
            transfer_syntax = str(file_meta.get("TransferSyntaxUID", "") or "")
            if not transfer_syntax:
                raise _Refused(Outcome.REJECTED, "no Transfer Syntax UID in the file meta")
            uid = UID(transfer_syntax)
            if uid == DeflatedExplicitVRLittleEndian or not uid.is_transfer_syntax:
                # A deflated dataset cannot be walked without inflating it: pydicom does.
                fp.seek(0)
                return _header_from(dcmread(fp, stop_before_pixels=True), transfer_syntax)
            try:
                ds = _walk_dataset(fp, uid, size)
            except _Refused as refused:
                # The fast walk trusts the declared transfer syntax; pydicom's reader also
                # copes with datasets encoded otherwise (explicit VR declared, implicit VR
                # written). Only such a dataset is read that way; any other stays refused.
                fp.seek(0)
                ds = dcmread(fp, stop_before_pixels=True)
                if ds.original_encoding == (uid.is_implicit_VR, uid.is_little_endian):
                    raise refused from None
            ds.file_meta = file_meta
    except _Refused:
        raise
    except (InvalidDicomError, EOFError) as exc:
        raise _Refused(Outcome.REJECTED, f"not DICOM: {exc}") from None
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise _Refused(Outcome.REJECTED, f"cannot be parsed: {type(exc).__name__}: {exc}") from None
    return _header_from(ds, transfer_syntax)


def _header_from(ds: Dataset, transfer_syntax: str) -> _Header:
    """The required UIDs of the header, each present and at most 64 characters [ING-4]."""
    uids = {}
    for keyword in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"):
        try:
            value = str(ds.get(keyword, "") or "").strip().rstrip("\x00")
        except Exception as exc:
            raise _Refused(Outcome.REJECTED, f"{keyword} cannot be read: {exc}") from None
        if not value:
            raise _Refused(Outcome.REJECTED, f"{keyword} is missing")
        if len(value) > _UID_MAX_LENGTH:
            raise _Refused(Outcome.REJECTED, f"{keyword} is longer than 64 characters")
        uids[keyword] = value
    return _Header(
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        transfer_syntax_uid=transfer_syntax,
        dataset=ds,
    )


def _walk_dataset(fp: BinaryIO, transfer_syntax: UID, size: int) -> Dataset:
    """Walk the top-level elements (large values skipped, not read), keep the ones the index
    needs, and refuse a file whose last element runs past its end: a truncated transfer
    [ING-4]."""
    wanted = {}
    try:
        last_end = fp.tell()
        for element in data_element_generator(
            fp,
            transfer_syntax.is_implicit_VR,
            transfer_syntax.is_little_endian,
            defer_size=_READ_VALUES_UP_TO,
        ):
            length = getattr(element, "length", _UNDEFINED_LENGTH)  # sequences come parsed
            if length != _UNDEFINED_LENGTH:
                last_end = element.value_tell + length
                if last_end > size:
                    raise _Refused(
                        Outcome.REJECTED,
                        f"truncated: element {element.tag} needs {last_end - size} more bytes",
                    )
            else:
                last_end = fp.tell()
            if element.tag in _HEADER_TAGS:
                wanted[element.tag] = element
    except _Refused:
        raise
    except Exception as exc:
        raise _Refused(Outcome.REJECTED, f"truncated or corrupt: {exc}") from None
    leftover = size - last_end
    if 0 < leftover < 8:
        raise _Refused(Outcome.REJECTED, f"truncated: {leftover} stray bytes at the end")
    ds = Dataset(wanted)
    ds.set_original_encoding(transfer_syntax.is_implicit_VR, transfer_syntax.is_little_endian)
    return ds


def _check_request_uids(
    header: _Header, expected_sop_class_uid: str | None, expected_sop_instance_uid: str | None
) -> None:
    """PS3.4 B.2.3: the dataset must be the instance the C-STORE request announced."""
    if expected_sop_instance_uid and header.sop_instance_uid != expected_sop_instance_uid:
        raise _Refused(
            Outcome.MISMATCH,
            f"SOPInstanceUID {header.sop_instance_uid} differs from the request's "
            f"{expected_sop_instance_uid}",
        )
    if expected_sop_class_uid and header.sop_class_uid != expected_sop_class_uid:
        raise _Refused(
            Outcome.MISMATCH,
            f"SOPClassUID {header.sop_class_uid} differs from the request's "
            f"{expected_sop_class_uid}",
        )


# --- Storing --------------------------------------------------------------------------------


def _store(source: Path, header: _Header, origin: Origin) -> StoreResult:
    runtime = get_runtime_settings()
    existing = None
    if runtime.overwrite_image:
        existing = next(
            iter(
                Instance.objects.filter(sop_instance_uid=header.sop_instance_uid).select_related(
                    "storage"
                )[:1]
            ),
            None,
        )
    try:
        storage = choose_storage(
            free_space_limit_mb=runtime.free_space_limit_mb,
            critical_free_space_mb=runtime.critical_free_space_mb,
        )
    except NoStorageAvailable as exc:
        raise _Refused(Outcome.OUT_OF_RESOURCES, str(exc)) from None

    relative_path = _relative_path(header)
    destination = Path(storage.path) / relative_path
    size = source.stat().st_size
    try:
        staging = Path(storage.path) / STAGING_FOLDER
        placed = _place_durably(source, destination, staging, replace=existing is not None)
        if not placed:
            # A file already has this name: the same instance received before [ING-3], or
            # a file whose index row a crash prevented, which this one replaces.
            existing_id = _indexed_instance_id(header.sop_instance_uid)
            if existing_id is not None:
                return _duplicate(header, existing_id, "already stored; kept as is")
            _place_durably(source, destination, staging, replace=True)
    except OSError as exc:
        raise _Refused(Outcome.OUT_OF_RESOURCES, f"cannot write to {storage.path}: {exc}") from None

    fields = _index_fields(header.dataset, runtime.accession_crop)
    try:
        instance_id = _index(header, fields, storage, relative_path, size, origin, existing)
    except IntegrityError:
        # The SOP Instance UID is indexed already, under another name (another study or
        # storage), or by another association a moment ago: a duplicate, kept as is.
        stored = Instance.objects.filter(sop_instance_uid=header.sop_instance_uid).first()
        if existing is not None or stored is None:
            destination.unlink(missing_ok=True)
            raise
        if stored.storage_id != storage.pk or stored.relative_path != relative_path:
            destination.unlink(missing_ok=True)
        return _duplicate(header, stored.pk, "already stored under another path; kept as is")
    except _Refused:
        destination.unlink(missing_ok=True)
        raise
    except Exception as exc:
        destination.unlink(missing_ok=True)
        logger.exception("Indexing %s failed", header.sop_instance_uid)
        raise _Refused(Outcome.OUT_OF_RESOURCES, f"database error: {exc}") from None

    if existing is not None:
        old_file = Path(existing.storage.path) / existing.relative_path
        if old_file != destination:
            old_file.unlink(missing_ok=True)
        return StoreResult(
            Outcome.REPLACED,
            header.sop_instance_uid,
            header.sop_class_uid,
            reason="already stored; replaced (overwrite_image is on)",
            instance_id=instance_id,
        )
    return StoreResult(
        Outcome.STORED, header.sop_instance_uid, header.sop_class_uid, instance_id=instance_id
    )


def _duplicate(header: _Header, instance_id: int, reason: str) -> StoreResult:
    return StoreResult(
        Outcome.DUPLICATE,
        header.sop_instance_uid,
        header.sop_class_uid,
        reason=reason,
        instance_id=instance_id,
    )


def _path_component(uid: str) -> str:
    """A UID as a folder or file name; anything unusual becomes a hash (no traversal)."""
    if _SAFE_PATH_COMPONENT.match(uid) and ".." not in uid:
        return uid
    return hashlib.sha1(uid.encode("utf-8", "surrogateescape")).hexdigest()


def _relative_path(header: _Header) -> str:
    return "/".join(
        (
            _path_component(header.study_instance_uid),
            _path_component(header.series_instance_uid),
            _path_component(header.sop_instance_uid) + ".dcm",
        )
    )


def _fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents, fsyncing each new directory entry."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for new_folder in reversed(missing):
        try:
            new_folder.mkdir()
        except FileExistsError:
            continue
        _fsync_directory(new_folder.parent)


def _place_durably(source: Path, destination: Path, staging: Path, *, replace: bool) -> bool:
    """Make ``source`` durable and give it the name ``destination`` atomically.

    Without ``replace`` an existing file is never touched: the name is created with a hard
    link, which fails if it exists, and False is returned (a duplicate, checked by the
    caller). Across file systems the bytes are first copied into the storage's ``staging``
    folder, so a storage's study folders never hold a partial file; ``runscp`` empties the
    staging folders when it starts (see :func:`clean_leftovers`)."""
    fd = os.open(source, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)
    _make_folders(destination.parent)
    partial = None
    try:
        try:
            placed = _rename(source, destination, replace=replace)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # the temp folder is on another file system
                raise
            staging.mkdir(exist_ok=True)
            partial = staging / f"{uuid.uuid4().hex}.part"
            with source.open("rb") as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst, _COPY_CHUNK)
                dst.flush()
                os.fdatasync(dst.fileno())
            placed = _rename(partial, destination, replace=replace)
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    if placed:
        _fsync_directory(destination.parent)
    return placed


STAGING_FOLDER = ".incoming"
_LEFTOVER_AGE_SECONDS = 3600


def clean_leftovers(temp_dir: Path, storage_paths: list[str]) -> int:
    """Remove what a killed SCP may have left: received files in the temp folder and copies
    in the storages' staging folders, older than an hour (so that another SCP on this host
    sharing the folders is not disturbed). None of them was ever acknowledged."""
    removed = 0
    cutoff = time.time() - _LEFTOVER_AGE_SECONDS
    candidates = [*temp_dir.glob("tmp*.dcm")]
    for storage_path in storage_paths:
        candidates.extend((Path(storage_path) / STAGING_FOLDER).glob("*.part"))
    for path in candidates:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def _rename(source: Path, destination: Path, *, replace: bool) -> bool:
    """Rename, or with ``replace`` off create the new name only if it does not exist."""
    if replace:
        os.replace(source, destination)
        return True
    try:
        os.link(source, destination)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # No hard links on this file system (some network shares).
        if destination.exists():
            return False
        os.replace(source, destination)
        return True
    source.unlink()
    return True


# --- Indexing -------------------------------------------------------------------------------


def _text(ds: Dataset, keyword: str, max_length: int) -> str:
    """A header value as Unicode text (multi-values joined by backslash), clipped to the
    column; unreadable values index as empty rather than refusing the instance."""
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(item) for item in value)
    else:
        text = str(value)
    return text.strip().rstrip("\x00")[:max_length]


def _date(ds: Dataset, keyword: str) -> date | None:
    """DA value to a date; the ACR-NEMA ``YYYY.MM.DD`` form is accepted, invalid is None."""
    raw = _text(ds, keyword, 32).replace(".", "")
    if len(raw) != 8 or not raw.isdigit():
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:
        return None


def _time(ds: Dataset, keyword: str) -> str:
    """TM value as HHMMSS.FFFFFF; the ACR-NEMA ``HH:MM:SS`` form loses its colons so that
    range matching compares like with like."""
    return _text(ds, keyword, 32).replace(":", "")


def _integer(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None
    except Exception:
        return None


def _index_fields(ds: Dataset, accession_crop: bool) -> dict[str, object]:
    """Everything the index stores, read from the header once."""
    accession = _text(ds, "AccessionNumber", 64)
    if accession_crop:
        accession = accession[:16]  # [ING-5]: SH is at most 16 characters
    patient_name = _text(ds, "PatientName", 324)
    frames = _integer(ds, "NumberOfFrames")
    return {
        "patient_id": _text(ds, "PatientID", 64),
        "issuer_of_patient_id": _text(ds, "IssuerOfPatientID", 64),
        "patient_name": patient_name,
        "patient_name_search": patient_name.casefold(),
        "patient_birth_date": _date(ds, "PatientBirthDate"),
        "patient_sex": _text(ds, "PatientSex", 16),
        "study_date": _date(ds, "StudyDate"),
        "study_time": _time(ds, "StudyTime"),
        "accession_number": accession,
        "study_id": _text(ds, "StudyID", 16),
        "study_description": _text(ds, "StudyDescription", 256),
        "referring_physician_name": _text(ds, "ReferringPhysicianName", 324),
        "specific_character_set": _text(ds, "SpecificCharacterSet", 128),
        "modality": _text(ds, "Modality", 16),
        "series_number": _integer(ds, "SeriesNumber"),
        "series_description": _text(ds, "SeriesDescription", 256),
        "body_part_examined": _text(ds, "BodyPartExamined", 16),
        "series_date": _date(ds, "SeriesDate"),
        "series_time": _time(ds, "SeriesTime"),
        "instance_number": _integer(ds, "InstanceNumber"),
        "number_of_frames": frames if frames and frames > 0 else 1,
        "rows": _integer(ds, "Rows"),
        "columns": _integer(ds, "Columns"),
    }


def _merge_modalities(current: str, modality: str) -> str:
    """ModalitiesInStudy: the sorted, backslash-separated set of series modalities."""
    values = {value for value in current.split("\\") if value}
    if modality:
        values.add(modality)
    return "\\".join(sorted(values))


@dataclass(frozen=True)
class _SeriesIds:
    series_pk: int
    study_pk: int
    study_instance_uid: str


# Series received recently in this process, so that the next instance of a series costs no
# lookup. A series deleted meanwhile is noticed (its counter update touches no row) and
# looked up again.
_series_cache: dict[str, _SeriesIds] = {}
_SERIES_CACHE_SIZE = 4096


def forget_series_cache() -> None:
    _series_cache.clear()


def _index(
    header: _Header,
    fields: dict,
    storage: Storage,
    relative_path: str,
    size: int,
    origin: Origin,
    existing: Instance | None,
) -> int:
    """Write the index rows in one short transaction; counters move with F() updates so
    concurrent associations on the same study do not lose counts. For an instance of a
    known series this is three statements: series counters, instance insert, study
    counters."""
    now = timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)  # for the SQL statements
    frames = fields["number_of_frames"]
    values = _instance_values(header, fields, storage.pk, relative_path, size, origin, stamp)
    ids = _series_cache.get(header.series_instance_uid)
    if ids is not None and existing is None and connection.vendor == "postgresql":
        if ids.study_instance_uid != header.study_instance_uid:
            raise _Refused(Outcome.MISMATCH, _series_mismatch(header, ids))
        instance_id = _index_in_one_statement(ids, header, values, frames, size, stamp)
        if instance_id is not None:
            return instance_id
    with transaction.atomic():
        uid = header.series_instance_uid
        if ids is None or not _add_to_series(ids, uid, frames, size, stamp):
            ids = _find_or_create_series(header, fields, now)
            _add_to_series(ids, uid, frames, size, stamp)
        if ids.study_instance_uid != header.study_instance_uid:
            raise _Refused(Outcome.MISMATCH, _series_mismatch(header, ids))
        if existing is not None:
            _remove_replaced(existing)
        instance_id = _insert_instance({"series_id": ids.series_pk, **values})
        _add_to_study(ids.study_pk, size, stamp)
    if len(_series_cache) >= _SERIES_CACHE_SIZE:
        _series_cache.clear()
    _series_cache[header.series_instance_uid] = ids
    return instance_id


# The statements every instance runs are written in SQL (portable: PostgreSQL and SQLite),
# because the ORM's per-statement overhead was a large share of the per-instance cost.
_SERIES = Series._meta.db_table
_STUDY = Study._meta.db_table
_INSTANCE = Instance._meta.db_table


def _indexed_instance_id(sop_instance_uid: str) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {_INSTANCE} WHERE sop_instance_uid = %s", [sop_instance_uid]
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _add_to_series(ids: _SeriesIds, series_instance_uid: str, frames: int, size: int, now) -> bool:
    """Count one more instance in the series; False when the series row is gone (the UID
    is part of the filter, so a reused primary key cannot match another series)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_SERIES} SET number_of_instances = number_of_instances + 1, "
            "number_of_frames = number_of_frames + %s, size_bytes = size_bytes + %s, "
            "updated_at = %s WHERE id = %s AND series_instance_uid = %s",
            [frames, size, now, ids.series_pk, series_instance_uid],
        )
        return cursor.rowcount == 1


def _add_to_study(study_pk: int, size: int, now) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_STUDY} SET number_of_instances = number_of_instances + 1, "
            "size_bytes = size_bytes + %s, updated_at = %s WHERE id = %s",
            [size, now, study_pk],
        )


def _instance_values(
    header: _Header,
    fields: dict,
    storage_pk: int,
    relative_path: str,
    size: int,
    origin: Origin,
    stamp,
) -> dict:
    """The columns of the instance row, but its series."""
    return {
        "sop_instance_uid": header.sop_instance_uid,
        "sop_class_uid": header.sop_class_uid,
        "instance_number": fields["instance_number"],
        "number_of_frames": fields["number_of_frames"],
        "rows": fields["rows"],
        "columns": fields["columns"],
        "transfer_syntax_uid": header.transfer_syntax_uid,
        "storage_id": storage_pk,
        "relative_path": relative_path,
        "size_bytes": size,
        "received_at": stamp,
        "source_ae_title": origin.ae_title[:16],
        "source_address": origin.address[:255],
    }


def _column_list(names) -> str:
    return ", ".join(connection.ops.quote_name(name) for name in names)


def _insert_instance(values: dict) -> int:
    placeholders = ", ".join(["%s"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_INSTANCE} ({_column_list(values)}) VALUES ({placeholders}) "
            "RETURNING id",
            list(values.values()),
        )
        return cursor.fetchone()[0]


def _index_in_one_statement(
    ids: _SeriesIds, header: _Header, values: dict, frames: int, size: int, stamp
) -> int | None:
    """PostgreSQL: the three writes of an instance of a known series as one statement, so
    one round trip that commits by itself (no BEGIN/COMMIT exchanges). None when the series
    row is gone (nothing was written)."""
    placeholders = ", ".join(["%s"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH s AS (UPDATE {_SERIES} SET number_of_instances = number_of_instances + 1, "
            "number_of_frames = number_of_frames + %s, size_bytes = size_bytes + %s, "
            "updated_at = %s WHERE id = %s AND series_instance_uid = %s "
            "RETURNING id, study_id), "
            f"st AS (UPDATE {_STUDY} SET number_of_instances = number_of_instances + 1, "
            "size_bytes = size_bytes + %s, updated_at = %s "
            "WHERE id = (SELECT study_id FROM s)), "
            f"i AS (INSERT INTO {_INSTANCE} (series_id, {_column_list(values)}) "
            f"SELECT s.id, {placeholders} FROM s RETURNING id) "
            "SELECT id FROM i",
            [
                *(frames, size, stamp, ids.series_pk, header.series_instance_uid),
                *(size, stamp),
                *values.values(),
            ],
        )
        row = cursor.fetchone()
    if row is None:
        _series_cache.pop(header.series_instance_uid, None)
        return None
    return row[0]


def _series_mismatch(header: _Header, ids: _SeriesIds) -> str:
    return (
        f"SeriesInstanceUID {header.series_instance_uid} already belongs to study "
        f"{ids.study_instance_uid}"
    )


def _find_or_create_series(header: _Header, fields: dict, now) -> _SeriesIds:
    """The series of the instance, created with its study and patient when new."""
    series = (
        Series.objects.filter(series_instance_uid=header.series_instance_uid)
        .values_list("pk", "study_id", "study__study_instance_uid")
        .first()
    )
    if series is not None:
        return _SeriesIds(*series)
    study = _get_or_create_study(header, fields, now)
    series, created = Series.objects.get_or_create(
        series_instance_uid=header.series_instance_uid,
        defaults={
            "study": study,
            "modality": fields["modality"],
            "series_number": fields["series_number"],
            "series_description": fields["series_description"],
            "body_part_examined": fields["body_part_examined"],
            "series_date": fields["series_date"],
            "series_time": fields["series_time"],
            "received_at": now,
            "updated_at": now,
        },
    )
    if created:
        # In the transaction that creates the row: announced once, never for a rollback.
        record_event(EventKind.NEW_SERIES, {"uid": header.series_instance_uid})
        index_sequences(Level.SERIES, series, header.dataset)
        locked = Study.objects.select_for_update().only("modalities_in_study").get(pk=study.pk)
        Study.objects.filter(pk=study.pk).update(
            number_of_series=F("number_of_series") + 1,
            modalities_in_study=_merge_modalities(locked.modalities_in_study, fields["modality"]),
        )
        return _SeriesIds(series.pk, study.pk, study.study_instance_uid)
    return _SeriesIds(
        series.pk,
        series.study_id,
        Study.objects.values_list("study_instance_uid", flat=True).get(pk=series.study_id),
    )


def _remove_replaced(existing: Instance) -> None:
    """overwrite_image: the old row goes, its counts with it; the new one is inserted."""
    Series.objects.filter(pk=existing.series_id).update(
        number_of_instances=F("number_of_instances") - 1,
        number_of_frames=F("number_of_frames") - existing.number_of_frames,
        size_bytes=F("size_bytes") - existing.size_bytes,
    )
    Study.objects.filter(series__pk=existing.series_id).update(
        number_of_instances=F("number_of_instances") - 1,
        size_bytes=F("size_bytes") - existing.size_bytes,
    )
    existing.delete()


def _get_or_create_study(header: _Header, fields: dict, now) -> Study:
    study = Study.objects.filter(study_instance_uid=header.study_instance_uid).first()
    if study is not None:
        return study
    patient, _ = Patient.objects.get_or_create(
        patient_id=fields["patient_id"],
        issuer_of_patient_id=fields["issuer_of_patient_id"],
        defaults={
            "patient_name": fields["patient_name"],
            "patient_name_search": fields["patient_name_search"],
            "patient_birth_date": fields["patient_birth_date"],
            "patient_sex": fields["patient_sex"],
        },
    )
    study, created = Study.objects.get_or_create(
        study_instance_uid=header.study_instance_uid,
        defaults={
            "patient": patient,
            "study_date": fields["study_date"],
            "study_time": fields["study_time"],
            "accession_number": fields["accession_number"],
            "study_id": fields["study_id"],
            "study_description": fields["study_description"],
            "referring_physician_name": fields["referring_physician_name"],
            "specific_character_set": fields["specific_character_set"],
            "received_at": now,
            "updated_at": now,
        },
    )
    if created:
        record_event(EventKind.NEW_STUDY, {"uid": header.study_instance_uid})
        index_sequences(Level.STUDY, study, header.dataset)
        Patient.objects.filter(pk=patient.pk).update(number_of_studies=F("number_of_studies") + 1)
    return study


def _log_result(result: StoreResult, origin: Origin) -> None:
    """One log line per instance that was not simply stored; patient data stays out."""
    if result.outcome is Outcome.STORED:
        logger.debug("Stored %s from %s", result.sop_instance_uid, origin.describe())
    elif result.outcome in (Outcome.DUPLICATE, Outcome.REPLACED):
        logger.warning(
            "Duplicate %s from %s: %s", result.sop_instance_uid, origin.describe(), result.reason
        )
    else:
        logger.error(
            "Refused %s from %s (status 0x%04X): %s",
            result.sop_instance_uid or "an instance",
            origin.describe(),
            result.dimse_status,
            result.reason,
        )
