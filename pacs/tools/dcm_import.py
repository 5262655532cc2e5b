"""dcm-import: send every DICOM file under a folder to a PACS by C-STORE (SPEC [IMP-1], [IMP-2]).

    dcm-import HOST PORT PATH AETITLE

The work is split into plain functions so that it can be tested and reused:

1. :func:`discover_files` walks PATH (any depth, symlinks followed, loops cut).
2. :func:`read_header` reads one file's header (never the pixel data) and says what it is:
   SOP Class, SOP Instance, transfer syntax, and whether its bytes can be sent as they are.
   Files that are not DICOM raise :class:`NotDicomError` with the reason.
3. :func:`plan_associations` builds presentation contexts from those headers (the file's own
   transfer syntax per SOP Class, PS3.8 9.3.2.2) and packs them into associations of at most
   128 contexts each (PS3.8 9.3.2: the presentation context ID is an odd number 1-255).
4. :func:`send_files` opens each association (TCP_NODELAY on the socket) and sends each file:
   the bytes after the file meta group go out untouched when the peer accepted the file's own
   transfer syntax; otherwise the dataset is decoded and re-encoded in an accepted uncompressed
   syntax (pixel data is never decompressed).
5. :func:`write_reports` writes ``not-read`` and ``not-sent`` reports (CSV and text).

:func:`main` is the thin console entry point (``dcm-import`` in pyproject.toml).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import os
import re
import socket
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)
from pynetdicom import AE, _config, evt
from pynetdicom.dsutils import split_dataset
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category

from pacs.dimse.scu import keep_responses_for_sender

LOGGER = logging.getLogger("pacs.tools.dcm_import")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000
DEFAULT_CALLED_AET = "VESALIUS"
DEFAULT_CALLING_AET = "DCMIMPORT"
DEFAULT_TIMEOUT = 120.0
# PS3.8 9.3.2.2: presentation context IDs are odd integers 1-255, so at most 128 per association.
MAX_CONTEXTS_PER_ASSOCIATION = 128
# Maximum PDU we offer to receive (PS3.8 D.1); the size we send with is the peer's choice.
DEFAULT_MAX_PDU = 262_144

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2

UNCOMPRESSED_SYNTAXES = (ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian)
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")

# Warnings (PS3.4 B.2.3, PS3.7 C.4): the instance was stored.
_WARNING_CATEGORIES = {"Warning"}


class NotDicomError(Exception):
    """The file could not be read as a DICOM instance; the message says why."""


class SkippedFileError(Exception):
    """The file is DICOM but not an instance to store (a DICOMDIR); it is skipped, not failed."""


@dataclass(frozen=True)
class DicomFile:
    """What the header of one file says, enough to negotiate and send it."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    size: int
    # True when the file has a preamble and a complete file meta group consistent with its
    # dataset, so the bytes after the meta group can be sent as they are.
    raw: bool

    @property
    def is_uncompressed(self) -> bool:
        return self.transfer_syntax_uid in UNCOMPRESSED_SYNTAXES


@dataclass(frozen=True)
class Failure:
    """A file that could not be read or sent, with the reason (and the DIMSE status if any)."""

    path: Path
    reason: str
    status: int | None = None
    sop_instance_uid: str = ""
    # The association is no longer usable after this failure (abort, timeout, socket error).
    connection_lost: bool = field(default=False, compare=False)

    @property
    def status_hex(self) -> str:
        return "" if self.status is None else f"0x{self.status:04X}"


@dataclass
class Batch:
    """The files sent over one association and the presentation contexts it proposes."""

    contexts: list[PresentationContext]
    files: list[DicomFile]


@dataclass
class SendResult:
    sent: list[DicomFile] = field(default_factory=list)
    warnings: list[Failure] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    associations: int = 0


@dataclass
class ImportSummary:
    found: int = 0
    skipped: list[Path] = field(default_factory=list)
    not_read: list[Failure] = field(default_factory=list)
    result: SendResult = field(default_factory=SendResult)
    report_paths: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.found > 0 and not self.not_read and not self.result.failures


# --------------------------------------------------------------------------------------------
# 1. Discovery


def discover_files(root: Path | str) -> list[Path]:
    """Every regular file under `root` (or `root` itself if it is a file), sorted.

    Symbolic links are followed, but a directory already visited (same device and inode) is not
    entered again, so symlink loops end."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is neither a file nor a folder")
    found: list[Path] = []
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()

    def on_error(exc: OSError) -> None:
        LOGGER.warning("cannot list %s: %s", exc.filename, exc.strerror)

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(key)
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            try:
                fst = path.stat()
            except OSError:
                # A dangling symlink: report it as unreadable rather than dropping it silently.
                found.append(path)
                continue
            if not path.is_file():
                continue  # sockets, fifos, devices
            fkey = (fst.st_dev, fst.st_ino)
            if fkey in seen_files:
                continue  # the same file reached twice through links
            seen_files.add(fkey)
            found.append(path)
    return found


# --------------------------------------------------------------------------------------------
# 2. Headers


def _valid_uid(value: Any) -> str | None:
    text = str(value).strip().rstrip("\0").strip() if value is not None else ""
    if not text or len(text) > 64 or not _UID_RE.match(text):
        return None
    return text


def _syntax_for_encoding(is_implicit: bool | None, is_little: bool | None) -> UID | None:
    if is_implicit is None or is_little is None:
        return None
    if is_implicit:
        return ImplicitVRLittleEndian if is_little else None
    return ExplicitVRLittleEndian if is_little else ExplicitVRBigEndian


def _has_preamble(path: Path) -> bool:
    with path.open("rb") as fp:
        head = fp.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _dataset_length_is_even(path: Path, size: int) -> bool:
    """A dataset of odd length (a malformed element, or a deflated stream without its padding
    byte, PS3.5 A.5) cannot go in P-DATA as it is: peers refuse odd fragments (DCMTK: "Odd
    Fragment Length"). Such files are re-encoded instead."""
    try:
        _, offset = split_dataset(path)
    except Exception:
        return False
    return (size - offset) % 2 == 0


def read_header(path: Path | str) -> DicomFile:
    """Read the header of `path` (stops before the pixel data) and describe the instance.

    Raises :class:`NotDicomError` when it is not a DICOM instance (the message is the reason)
    and :class:`SkippedFileError` for a DICOMDIR."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise NotDicomError(f"cannot open: {exc.strerror or exc}") from exc
    if size == 0:
        raise NotDicomError("empty file")
    try:
        has_preamble = _has_preamble(path)
        ds = dcmread(path, stop_before_pixels=True, force=True)
    except PermissionError as exc:
        raise NotDicomError(f"cannot open: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise NotDicomError(f"not DICOM: {type(exc).__name__}: {exc}") from exc

    try:
        meta = ds.file_meta if getattr(ds, "file_meta", None) is not None else Dataset()
        meta_sop_class = _valid_uid(meta.get("MediaStorageSOPClassUID"))
        if meta_sop_class == MediaStorageDirectoryStorage:
            raise SkippedFileError("DICOMDIR (a file-set index, not an instance to store)")
        sop_class = _valid_uid(ds.get("SOPClassUID"))
        sop_instance = _valid_uid(ds.get("SOPInstanceUID"))
        raw_meta_ts = meta.get("TransferSyntaxUID")
        meta_sop_instance = _valid_uid(meta.get("MediaStorageSOPInstanceUID"))
        is_implicit, is_little = ds.original_encoding
    except (SkippedFileError, NotDicomError):
        raise
    except Exception as exc:
        raise NotDicomError(f"not DICOM: {type(exc).__name__}: {exc}") from exc

    if sop_class is None:
        if not has_preamble and len(meta) == 0:
            raise NotDicomError(
                "not DICOM: no DICM preamble, no file meta and no SOP Class UID (0008,0016)"
            )
        raise NotDicomError("no valid SOP Class UID (0008,0016) in the dataset")
    if sop_instance is None:
        raise NotDicomError("no valid SOP Instance UID (0008,0018) in the dataset")

    encoding_syntax = _syntax_for_encoding(is_implicit, is_little)
    meta_ts = _valid_uid(raw_meta_ts)
    meta_uid = UID(meta_ts) if meta_ts is not None else None
    if meta_uid is not None and (meta_uid.is_transfer_syntax or meta_uid.is_private):
        ts: UID = meta_uid
        consistent = True
        if meta_uid.is_transfer_syntax and encoding_syntax is not None:
            declared = (meta_uid.is_implicit_VR, meta_uid.is_little_endian)
            if declared != (is_implicit, is_little):
                # The file meta names one syntax but the dataset is written in another:
                # trust the bytes, and re-encode when sending.
                ts, consistent = encoding_syntax, False
    elif encoding_syntax is not None:
        # No (0002,0010), or a UID there that is not a transfer syntax.
        ts, consistent = encoding_syntax, False
    else:
        raise NotDicomError(
            "no transfer syntax: the file meta has no valid (0002,0010) Transfer Syntax UID "
            "and the dataset encoding cannot be determined"
        )

    raw = (
        has_preamble
        and consistent
        and meta_ts is not None
        and meta_sop_class == sop_class
        and meta_sop_instance == sop_instance
        and _dataset_length_is_even(path, size)
    )
    return DicomFile(
        path=path,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        transfer_syntax_uid=str(ts),
        size=size,
        raw=raw,
    )


def read_headers(
    paths: Sequence[Path], *, on_progress: Callable[[int], None] | None = None
) -> tuple[list[DicomFile], list[Failure], list[Path]]:
    """Read every header. Returns (readable files, files that could not be read, skipped)."""
    files: list[DicomFile] = []
    not_read: list[Failure] = []
    skipped: list[Path] = []
    for path in paths:
        try:
            files.append(read_header(path))
        except SkippedFileError as exc:
            LOGGER.info("skipped %s: %s", path, exc)
            skipped.append(path)
        except NotDicomError as exc:
            not_read.append(Failure(path=path, reason=str(exc)))
        if on_progress:
            on_progress(1)
    return files, not_read, skipped


# --------------------------------------------------------------------------------------------
# 3. Presentation contexts


def contexts_for(files: Iterable[DicomFile]) -> list[tuple[str, str]]:
    """The (SOP Class, transfer syntax) pairs to propose for `files`, in a stable order.

    Each file's own syntax is proposed alone in its context so the peer's answer says exactly
    whether the bytes can go as they are. For SOP classes with uncompressed files, Implicit VR
    Little Endian (which every SCP must accept, PS3.5 10.1) is added as a fallback."""
    pairs: dict[tuple[str, str], None] = {}
    for f in files:
        pairs[(f.sop_class_uid, f.transfer_syntax_uid)] = None
        if f.is_uncompressed:
            pairs[(f.sop_class_uid, ImplicitVRLittleEndian)] = None
    return list(pairs)


def plan_associations(
    files: Sequence[DicomFile], *, max_contexts: int = MAX_CONTEXTS_PER_ASSOCIATION
) -> list[Batch]:
    """Group `files` into associations of at most `max_contexts` presentation contexts.

    Files are grouped by SOP Class so that a class and its fallback context stay together;
    within a batch files keep their discovery order."""
    by_class: dict[str, list[DicomFile]] = {}
    for f in files:
        by_class.setdefault(f.sop_class_uid, []).append(f)

    batches: list[Batch] = []
    current_pairs: dict[tuple[str, str], None] = {}
    current_files: list[DicomFile] = []

    def flush() -> None:
        if current_files:
            order = {id(f): i for i, f in enumerate(files)}
            current_files.sort(key=lambda f: order[id(f)])
            batches.append(
                Batch(
                    contexts=[build_context(sop, ts) for sop, ts in current_pairs],
                    files=list(current_files),
                )
            )
        current_pairs.clear()
        current_files.clear()

    for class_files in by_class.values():
        class_pairs = contexts_for(class_files)
        # One class needing more than max_contexts syntaxes: split it by syntax.
        chunks: list[tuple[list[tuple[str, str]], list[DicomFile]]] = []
        if len(class_pairs) > max_contexts:
            by_ts: dict[str, list[DicomFile]] = {}
            for f in class_files:
                by_ts.setdefault(f.transfer_syntax_uid, []).append(f)
            for ts_files in by_ts.values():
                chunks.append((contexts_for(ts_files), ts_files))
        else:
            chunks.append((class_pairs, class_files))
        for pairs, chunk_files in chunks:
            new = [p for p in pairs if p not in current_pairs]
            if len(current_pairs) + len(new) > max_contexts:
                flush()
            current_pairs.update(dict.fromkeys(pairs))
            current_files.extend(chunk_files)
    flush()
    return batches


# --------------------------------------------------------------------------------------------
# 4. Sending


@contextlib.contextmanager
def _chunked_send() -> Iterator[None]:
    """Have pynetdicom stream a file's dataset straight from disk (no decode, no re-encode)."""
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous


def _set_tcp_nodelay(event: evt.Event) -> None:
    """EVT_CONN_OPEN: small PDUs must not wait for delayed ACKs (Nagle)."""
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _resolve(host: str, port: int) -> str:
    """pynetdicom wants an IP address: resolve host names first."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return host
    return str(infos[0][4][0]) if infos else host


def make_ae(calling_aet: str, *, timeout: float = DEFAULT_TIMEOUT) -> AE:
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = min(timeout, 15.0)
    ae.maximum_pdu_size = DEFAULT_MAX_PDU
    return ae


def open_association(
    ae: AE,
    host: str,
    port: int,
    called_aet: str,
    contexts: list[PresentationContext],
    *,
    max_pdu: int = DEFAULT_MAX_PDU,
) -> tuple[Any, str | None]:
    """Associate with TCP_NODELAY set. Returns (association, None) or (association, reason)."""
    rejection: dict[str, str] = {}
    connected: list[bool] = []

    def on_conn_open(event: evt.Event) -> None:
        connected.append(True)
        _set_tcp_nodelay(event)

    def on_acse_recv(event: evt.Event) -> None:
        primitive = event.primitive  # type: ignore[attr-defined]
        result = getattr(primitive, "result", None)
        if result in (0x01, 0x02):
            rejection["reason"] = (
                f"association rejected ({primitive.result_str}, {primitive.source_str}): "
                f"{primitive.reason_str}"
            )

    assoc = ae.associate(
        _resolve(host, port),
        port,
        contexts=contexts,
        ae_title=called_aet,
        max_pdu=max_pdu,
        evt_handlers=[(evt.EVT_CONN_OPEN, on_conn_open), (evt.EVT_ACSE_RECV, on_acse_recv)],
    )
    if assoc.is_established:
        return keep_responses_for_sender(assoc), None
    if not connected:
        return assoc, f"could not connect to {host}:{port} (connection refused or timed out)"
    if assoc.is_rejected:
        return assoc, rejection.get("reason", "association rejected")
    if assoc.is_aborted:
        if not assoc.accepted_contexts and assoc.rejected_contexts:
            return assoc, "association aborted: the peer accepted no presentation context"
        return assoc, "association aborted by the peer"
    return assoc, f"could not associate with {host}:{port} (no answer to the association request)"


def _status_reason(code: int, comment: str | None = None) -> str:
    description = STORAGE_SERVICE_CLASS_STATUS.get(code, (None, "unknown status"))[1]
    reason = f"status 0x{code:04X} ({code_to_category(code)}: {description})"
    if comment:
        reason += f": {comment}"
    return reason


def _syntax_name(uid: str) -> str:
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def _pad_odd_values(ds: Dataset) -> None:
    """PS3.5 7.1.1: every value has an even length. pydicom pads text when it writes, but
    writes binary values (OB, UN, ...) as they are; pad those with a NUL byte."""
    for elem in ds.iterall():
        if elem.VR == "SQ" or elem.tag == 0x7FE00010:
            continue
        value = elem.value
        if isinstance(value, bytes) and len(value) % 2:
            elem.value = value + b"\0"


def send_one(assoc: Any, f: DicomFile, *, msg_id: int = 1) -> Failure | None:
    """Send one file on an established association. None when stored (success or warning
    statuses are both "stored"; a warning is logged), else the failure with its reason."""
    accepted = [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == f.sop_class_uid]
    if not accepted:
        rejected = [cx for cx in assoc.rejected_contexts if cx.abstract_syntax == f.sop_class_uid]
        # PS3.8 9.3.3.2: result 3 = abstract syntax not supported, 4 = transfer syntaxes not.
        if rejected and all(cx.result == 0x03 for cx in rejected):
            reason = f"the peer does not support SOP Class {_syntax_name(f.sop_class_uid)}"
        else:
            reason = (
                f"the peer did not accept transfer syntax {_syntax_name(f.transfer_syntax_uid)} "
                f"for SOP Class {_syntax_name(f.sop_class_uid)}"
            )
        return Failure(f.path, reason, sop_instance_uid=f.sop_instance_uid)
    accepted_syntaxes = {cx.transfer_syntax[0] for cx in accepted}
    exact = f.transfer_syntax_uid in accepted_syntaxes
    convertible = f.is_uncompressed and any(ts in UNCOMPRESSED_SYNTAXES for ts in accepted_syntaxes)
    try:
        if exact and f.raw:
            with _chunked_send():
                status = assoc.send_c_store(f.path, msg_id=msg_id)
        elif exact or convertible:
            # Decode the dataset (pixel data stays as bytes) and re-encode it in an accepted
            # syntax: the file has no usable meta group, or the peer wants another syntax.
            ds = dcmread(f.path, force=True)
            ds.file_meta = getattr(ds, "file_meta", None) or Dataset()
            ds.file_meta.TransferSyntaxUID = UID(f.transfer_syntax_uid)
            _pad_odd_values(ds)
            status = assoc.send_c_store(ds, msg_id=msg_id)
        else:
            return Failure(
                f.path,
                f"the peer did not accept transfer syntax {_syntax_name(f.transfer_syntax_uid)} "
                f"for SOP Class {_syntax_name(f.sop_class_uid)}; accepted: "
                + ", ".join(sorted(_syntax_name(ts) for ts in accepted_syntaxes)),
                sop_instance_uid=f.sop_instance_uid,
            )
    except (ValueError, AttributeError, TypeError, KeyError, NotImplementedError) as exc:
        # Raised before anything went on the wire (no context, cannot encode).
        return Failure(
            f.path, f"could not send: {type(exc).__name__}: {exc}", None, f.sop_instance_uid
        )
    except Exception as exc:
        return Failure(
            f.path,
            f"could not send: {type(exc).__name__}: {exc}",
            None,
            f.sop_instance_uid,
            connection_lost=True,
        )

    if "Status" not in status:
        reason = "no response from the peer (association aborted or timed out)"
        return Failure(f.path, reason, None, f.sop_instance_uid, connection_lost=True)
    code = int(status.Status)
    category = code_to_category(code)
    if code == 0x0000:
        return None
    comment = str(status.get("ErrorComment", "") or "") or None
    if category in _WARNING_CATEGORIES:
        LOGGER.warning("%s stored with a warning: %s", f.path, _status_reason(code, comment))
        return None
    return Failure(f.path, _status_reason(code, comment), code, f.sop_instance_uid)


def send_files(
    files: Sequence[DicomFile],
    host: str,
    port: int,
    called_aet: str,
    *,
    calling_aet: str = DEFAULT_CALLING_AET,
    timeout: float = DEFAULT_TIMEOUT,
    max_contexts: int = MAX_CONTEXTS_PER_ASSOCIATION,
    on_progress: Callable[[int], None] | None = None,
) -> SendResult:
    """Send `files` over as many associations as their presentation contexts need.

    If the peer drops an association, the file being sent is reported and the rest of the
    batch goes on a new association; if associating fails, the rest of the batch is reported
    with the association error."""
    result = SendResult()
    ae = make_ae(calling_aet, timeout=timeout)
    for batch in plan_associations(files, max_contexts=max_contexts):
        pending = list(batch.files)
        while pending:
            assoc, error = open_association(ae, host, port, called_aet, batch.contexts)
            if error is not None:
                for f in pending:
                    result.failures.append(Failure(f.path, error, None, f.sop_instance_uid))
                if on_progress:
                    on_progress(len(pending))
                pending = []
                break
            result.associations += 1
            msg_id = 0
            try:
                while pending and assoc.is_established:
                    f = pending.pop(0)
                    msg_id = msg_id % 65535 + 1
                    failure = send_one(assoc, f, msg_id=msg_id)
                    if on_progress:
                        on_progress(1)
                    if failure is None:
                        result.sent.append(f)
                        continue
                    result.failures.append(failure)
                    if failure.connection_lost:
                        # The peer aborted (or went silent): start again on a new association.
                        assoc.abort()
                        break
            finally:
                if assoc.is_established:
                    assoc.release()
    return result


# --------------------------------------------------------------------------------------------
# 5. Reports


def write_reports(
    report_dir: Path | str, not_read: Sequence[Failure], not_sent: Sequence[Failure]
) -> list[Path]:
    """Write not-read.csv/.txt and not-sent.csv/.txt (always, even when empty)."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, header: list[str], rows: list[list[str]], lines: list[str]) -> None:
        csv_path = report_dir / f"{name}.csv"
        with csv_path.open("w", newline="", encoding="utf-8") as fp:
            writer = csv.writer(fp)
            writer.writerow(header)
            writer.writerows(rows)
        txt_path = report_dir / f"{name}.txt"
        txt_path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        written.extend([csv_path, txt_path])

    write(
        "not-read",
        ["path", "reason"],
        [[str(f.path), f.reason] for f in not_read],
        [f"{len(not_read)} file(s) could not be read"]
        + [f"{f.path}: could not be read: {f.reason}" for f in not_read],
    )
    write(
        "not-sent",
        ["path", "sop_instance_uid", "status", "reason"],
        [[str(f.path), f.sop_instance_uid, f.status_hex, f.reason] for f in not_sent],
        [f"{len(not_sent)} file(s) failed to send"]
        + [f"{f.path}: not sent: {f.reason}" for f in not_sent],
    )
    return written


# --------------------------------------------------------------------------------------------
# Orchestration and command line


def run_import(
    host: str,
    port: int,
    path: Path | str,
    called_aet: str,
    *,
    calling_aet: str = DEFAULT_CALLING_AET,
    report_dir: Path | str = ".",
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
    out: TextIO | None = None,
) -> ImportSummary:
    """Discover, read, send and report. Prints a short summary on `out`."""
    from tqdm import tqdm

    out = out if out is not None else sys.stderr
    summary = ImportSummary()
    paths = discover_files(path)
    summary.found = len(paths)

    with tqdm(total=len(paths), desc="Reading", unit="file", disable=not progress, file=out) as bar:
        files, summary.not_read, summary.skipped = read_headers(paths, on_progress=bar.update)
    with tqdm(total=len(files), desc="Sending", unit="file", disable=not progress, file=out) as bar:
        summary.result = send_files(
            files,
            host,
            port,
            called_aet,
            calling_aet=calling_aet,
            timeout=timeout,
            on_progress=bar.update,
        )
    summary.report_paths = write_reports(report_dir, summary.not_read, summary.result.failures)

    result = summary.result
    print(
        f"{summary.found} file(s) found, {len(result.sent)} sent, "
        f"{len(summary.not_read)} could not be read, {len(result.failures)} failed to send"
        + (f", {len(summary.skipped)} DICOMDIR skipped" if summary.skipped else ""),
        file=out,
    )
    if summary.found == 0:
        print(f"nothing to send: no file under {path}", file=out)
    print(f"reports: {', '.join(str(p) for p in summary.report_paths)}", file=out)
    return summary


def _ae_title(value: str) -> str:
    """An AE title (PS3.5 6.2, AE VR): 1-16 characters, no backslash or control characters."""
    text = value.strip()
    if not text or len(text) > 16 or "\\" in text or any(ord(c) < 32 for c in text):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an AE title (1-16 characters, no backslash, no control characters)"
        )
    return text


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port (1-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcm-import",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Send every file under PATH (any depth) to a DICOM storage SCP by C-STORE.\n\n"
            "Every file found is tried as DICOM (with or without the 128-byte preamble).\n"
            "Files are sent in their own transfer syntax, bytes untouched, when the peer\n"
            "accepts it; uncompressed files are re-encoded in a syntax the peer accepts\n"
            "otherwise; compressed files are never decompressed. Presentation contexts are\n"
            "built from the headers, at most 128 per association (more associations are\n"
            "opened when needed). DICOMDIR files are skipped.\n\n"
            "With no arguments, asks for each value (defaults: 127.0.0.1, 3000, the current\n"
            "folder, VESALIUS)."
        ),
        epilog=(
            "reports (in --report-dir, written on every run, even when empty):\n"
            "  not-read.csv / not-read.txt  files that could not be read as DICOM, with the\n"
            "                               reason (empty file, no SOP Class UID, ...)\n"
            "  not-sent.csv / not-sent.txt  files that failed to send, with the reason: the\n"
            "                               DIMSE status in hex (e.g. 0xA700 Out of Resources)\n"
            "                               or the association / transfer syntax error\n\n"
            "exit status:\n"
            "  0  every file found was sent (stored with success or a warning status)\n"
            "  1  at least one file could not be read or failed to send, or nothing was found\n"
            "  2  bad arguments\n\n"
            "example:\n"
            "  dcm-import 127.0.0.1 3000 /media/cdrom VESALIUS --calling-aet CDIMPORT"
        ),
    )
    parser.add_argument("host", nargs="?", help="host name or IP address of the PACS")
    parser.add_argument("port", nargs="?", type=_port, help="DICOM port of the PACS")
    parser.add_argument("path", nargs="?", type=Path, help="file or folder to send")
    parser.add_argument(
        "aetitle", nargs="?", type=_ae_title, help="called AE title (the PACS's AE title)"
    )
    parser.add_argument(
        "--calling-aet",
        type=_ae_title,
        default=DEFAULT_CALLING_AET,
        help=f"our AE title, the calling AE title (default {DEFAULT_CALLING_AET})",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("."),
        help="folder for the not-read and not-sent reports (default: the current folder)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"network, association and DIMSE timeout in seconds (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    return parser


def _ask(prompt: str, default: str, convert: Callable[[str], Any], stdin: TextIO) -> Any:
    while True:
        print(f"{prompt} [{default}]: ", end="", file=sys.stderr, flush=True)
        line = stdin.readline()
        # At the end of input, take the default.
        answer = (line.strip() or default) if line else default
        try:
            return convert(answer)
        except argparse.ArgumentTypeError as exc:
            print(exc, file=sys.stderr)
            if not line:
                raise


def ask_values(stdin: TextIO | None = None) -> tuple[str, int, Path, str]:
    """Interactive mode [IMP-1]: ask for host, port, path and AE title with defaults."""
    stdin = stdin if stdin is not None else sys.stdin
    host = _ask("PACS host", DEFAULT_HOST, str, stdin)
    port = _ask("PACS DICOM port", str(DEFAULT_PORT), _port, stdin)
    path = _ask("Folder to import", os.getcwd(), Path, stdin)
    aet = _ask("PACS AE title", DEFAULT_CALLED_AET, _ae_title, stdin)
    return host, port, path, aet


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.ERROR, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.verbose < 2:
        # pynetdicom logs each failed association at ERROR: our reports already say it.
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    if args.verbose == 0:
        # pydicom warns about every odd value it reads (invalid UI, VR guesses): noise here.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\.")
        logging.getLogger("pydicom").setLevel(logging.ERROR)

    given = [args.host, args.port, args.path, args.aetitle]
    if all(v is None for v in given):
        try:
            host, port, path, aet = ask_values()
        except (argparse.ArgumentTypeError, KeyboardInterrupt) as exc:
            print(f"dcm-import: {exc}", file=sys.stderr)
            return EXIT_USAGE
    elif any(v is None for v in given):
        parser.error("give all of HOST PORT PATH AETITLE, or none to be asked for each")
    else:
        host, port, path, aet = args.host, args.port, args.path, args.aetitle

    if not path.exists():
        parser.error(f"{path} does not exist")
    summary = run_import(
        host,
        port,
        path,
        aet,
        calling_aet=args.calling_aet,
        report_dir=args.report_dir,
        timeout=args.timeout,
        progress=not args.no_progress,
    )
    return EXIT_OK if summary.ok else EXIT_FAILURES


if __name__ == "__main__":
    sys.exit(main())
