"""dcm-import [IMP-1], [IMP-2]: discovery, headers, negotiation, sending and the two reports.

The network tests use real peers: DCMTK storescp (writes what it receives, bit-preserving) and
an in-process pynetdicom SCP whose answers each test chooses."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import (
    AllTransferSyntaxes,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.dsutils import split_dataset

from pacs.tools import dcm_import
from pacs.tools.dcm_import import (
    NotDicomError,
    SkippedFileError,
    discover_files,
    plan_associations,
    read_header,
    read_headers,
)
from tests.conftest import CORPUS_DIR, IN_CI, dcmtk_tool
from tests.dicom_helpers import free_port

CORPUS_DEV = CORPUS_DIR / "dev"

# Small uncompressed files of the corpus, each with its own SOP Instance UID.
CT_SMALL = "pydicom__CT_small.dcm"  # CT, Explicit VR LE
MR_IMPLICIT = "pydicom__MR_small_implicit.dcm"  # MR, Implicit VR LE
RTPLAN = "pydicom__rtplan.dcm"  # RT Plan, Implicit VR LE
JPEG_BASELINE = "pydicom__SC_rgb_jpeg_dcmtk.dcm"  # SC, JPEG Baseline
# What the whole dev corpus gives against storescp: see MANIFEST.csv.
CORPUS_NOT_READ = {"nibabel__decimal_rescale.dcm"}  # its dataset has no SOP Class/Instance UID
# Color Palette Storage: DCMTK 3.6.7's storescp does not offer it (a later one may).
CORPUS_MAYBE_UNSUPPORTED = {"pydicom__hotiron.dcm"}
CORPUS_SKIPPED = {"DICOMDIR"}
# Odd-length datasets cannot go in P-DATA as they are: they are re-encoded (padded).
CORPUS_REENCODED = {"deid-data__ctbrain1.dcm", "pydicom__image_dfl.dcm"}


@pytest.fixture(scope="module")
def corpus() -> Path:
    if not CORPUS_DEV.is_dir():
        if IN_CI:
            pytest.fail(f"corpus not found at {CORPUS_DEV}")
        pytest.skip(f"corpus not found at {CORPUS_DEV}")
    return CORPUS_DEV


def copy_corpus_files(corpus: Path, dest: Path, *names: str) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(corpus / name, dest / name)) for name in names]


def dataset_bytes(path: Path) -> bytes:
    """The bytes after the file meta group: what goes on the wire."""
    _, offset = split_dataset(path)
    return path.read_bytes()[offset:]


def write_without_meta(source: Path, dest: Path) -> Dataset:
    """A bare Implicit VR Little Endian dataset: no preamble, no file meta group."""
    ds = Dataset(dcmread(source))
    dcmwrite(dest, ds, implicit_vr=True, little_endian=True)
    assert dest.read_bytes()[128:132] != b"DICM"
    return ds


def read_report(report_dir: Path, name: str) -> list[dict[str, str]]:
    with (report_dir / f"{name}.csv").open(newline="", encoding="utf-8") as fp:
        return list(csv.DictReader(fp))


def run_import(port: int, path: Path, aet: str, report_dir: Path, *extra: str) -> int:
    """dcm-import HOST PORT PATH AETITLE, as from the command line, without progress bars."""
    args = ["127.0.0.1", str(port), str(path), aet, "--report-dir", str(report_dir)]
    return dcm_import.main([*args, "--no-progress", *extra])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


# --------------------------------------------------------------------------------------------
# Peers


@dataclass
class StoreSCP:
    port: int
    received: Path
    ae_title: str = "STORESCP"

    def received_files(self) -> list[Path]:
        return sorted(p for p in self.received.iterdir() if p.is_file())


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StoreSCP]:
    """DCMTK storescp accepting every transfer syntax it knows, writing bit-preserving files
    with unique names (the corpus has files that share a SOP Instance UID)."""
    binary = dcmtk_tool("storescp")
    received = tmp_path / "received"
    received.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [binary, "+xa", "+B", "+uf", "-aet", "STORESCP", "-od", str(received), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # DCMTK keeps Nagle's algorithm on unless told: each response would wait ~40 ms.
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    try:
        wait_for_port(port)
        yield StoreSCP(port=port, received=received)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class PynetdicomSCP:
    port: int
    ae_title: str
    stored: list[str] = field(default_factory=list)
    calling_aets: list[str] = field(default_factory=list)
    associations: int = 0


@pytest.fixture
def make_pynetdicom_scp() -> Iterator[Callable[..., PynetdicomSCP]]:
    servers = []

    def start(
        *,
        refuse: dict[str, int] | None = None,
        transfer_syntaxes: list[str] | None = None,
        require_called_aet: bool = False,
    ) -> PynetdicomSCP:
        refuse = refuse or {}
        scp = PynetdicomSCP(port=free_port(), ae_title="PYSCP")
        lock = threading.Lock()

        def on_store(event: evt.Event) -> int:
            sop_instance_uid = event.request.AffectedSOPInstanceUID
            if sop_instance_uid in refuse:
                return refuse[sop_instance_uid]
            with lock:
                scp.stored.append(sop_instance_uid)
            return 0x0000

        def on_accepted(event: evt.Event) -> None:
            with lock:
                scp.associations += 1
                scp.calling_aets.append(event.assoc.requestor.ae_title)

        ae = AE(ae_title=scp.ae_title)
        ae.require_called_aet = require_called_aet
        syntaxes = transfer_syntaxes or AllTransferSyntaxes
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, syntaxes)
        server = ae.start_server(
            ("127.0.0.1", scp.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_ACCEPTED, on_accepted)],
        )
        servers.append(server)
        return scp

    yield start
    for server in servers:
        server.shutdown()


# --------------------------------------------------------------------------------------------
# Discovery and headers (plain functions)


def test_it_finds_files_at_any_depth(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    for rel in ("top.dcm", "a/one", "a/b/two.DCM", "a/b/c/three.txt"):
        (tmp_path / rel).write_bytes(b"x")

    found = discover_files(tmp_path)

    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "top.dcm",
        "a/one",
        "a/b/two.DCM",
        "a/b/c/three.txt",
    ]


def test_it_follows_symlinks_but_not_round_in_loops(tmp_path: Path) -> None:
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "sub" / "file").write_bytes(b"x")
    (tmp_path / "data" / "sub" / "loop").symlink_to(tmp_path / "data")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "linked").write_bytes(b"y")
    (tmp_path / "data" / "link").symlink_to(tmp_path / "elsewhere")

    found = discover_files(tmp_path / "data")

    assert sorted(p.name for p in found) == ["file", "linked"]


def test_it_takes_a_single_file_as_path(corpus: Path) -> None:
    assert discover_files(corpus / CT_SMALL) == [corpus / CT_SMALL]


def test_it_reads_the_header_of_a_dicom_file(corpus: Path) -> None:
    f = read_header(corpus / JPEG_BASELINE)

    assert f.sop_class_uid == "1.2.840.10008.5.1.4.1.1.7"
    assert f.transfer_syntax_uid == JPEGBaseline8Bit
    assert f.raw
    assert f.size == (corpus / JPEG_BASELINE).stat().st_size


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"hello, this is not DICOM\n" * 10, "not DICOM"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200), "not DICOM"),
    ],
    ids=["empty", "text", "jpeg"],
)
def test_it_refuses_what_is_not_dicom_with_the_reason(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "file"
    path.write_bytes(content)

    with pytest.raises(NotDicomError, match=reason):
        read_header(path)


def test_it_refuses_a_dataset_without_sop_uids(corpus: Path) -> None:
    with pytest.raises(NotDicomError, match=r"SOP Class UID \(0008,0016\)"):
        read_header(corpus / "nibabel__decimal_rescale.dcm")


def test_it_reads_a_file_without_preamble_and_derives_its_transfer_syntax(
    tmp_path: Path, corpus: Path
) -> None:
    path = tmp_path / "bare.dcm"
    write_without_meta(corpus / MR_IMPLICIT, path)
    assert path.read_bytes()[128:132] != b"DICM"

    f = read_header(path)

    assert f.transfer_syntax_uid == ImplicitVRLittleEndian
    assert not f.raw  # no meta group: it is re-encoded when sent


def test_it_skips_a_dicomdir(corpus: Path) -> None:
    with pytest.raises(SkippedFileError, match="DICOMDIR"):
        read_header(corpus / "dicomdir_fileset" / "DICOMDIR")


def test_it_sorts_files_into_read_not_read_and_skipped(tmp_path: Path, corpus: Path) -> None:
    good = copy_corpus_files(corpus, tmp_path, CT_SMALL)[0]
    bad = tmp_path / "notes.txt"
    bad.write_text("not dicom")
    dicomdir = Path(shutil.copy(corpus / "dicomdir_fileset" / "DICOMDIR", tmp_path))

    files, not_read, skipped = read_headers([good, bad, dicomdir])

    assert [f.path for f in files] == [good]
    assert [f.path for f in not_read] == [bad]
    assert skipped == [dicomdir]


# --------------------------------------------------------------------------------------------
# Presentation contexts


def _fake(i: int, sop_class: str, ts: str) -> dcm_import.DicomFile:
    return dcm_import.DicomFile(Path(f"f{i}"), sop_class, f"1.2.3.{i}", ts, 10, True)


def test_it_proposes_each_files_own_syntax_with_an_implicit_fallback() -> None:
    files = [
        _fake(1, "1.2.840.10008.5.1.4.1.1.2", ExplicitVRLittleEndian),
        _fake(2, "1.2.840.10008.5.1.4.1.1.2", ExplicitVRLittleEndian),
        _fake(3, "1.2.840.10008.5.1.4.1.1.7", JPEGBaseline8Bit),
    ]

    (batch,) = plan_associations(files)

    proposed = {(cx.abstract_syntax, tuple(cx.transfer_syntax)) for cx in batch.contexts}
    assert proposed == {
        ("1.2.840.10008.5.1.4.1.1.2", (ExplicitVRLittleEndian,)),
        ("1.2.840.10008.5.1.4.1.1.2", (ImplicitVRLittleEndian,)),
        ("1.2.840.10008.5.1.4.1.1.7", (JPEGBaseline8Bit,)),
    }
    assert [f.path.name for f in batch.files] == ["f1", "f2", "f3"]


def test_it_never_proposes_more_than_128_contexts_per_association() -> None:
    files = [_fake(i, f"1.2.840.10008.5.1.4.1.1.{1000 + i}", JPEGBaseline8Bit) for i in range(300)]

    batches = plan_associations(files)

    assert [len(b.contexts) for b in batches] == [128, 128, 44]
    assert sum(len(b.files) for b in batches) == 300


# --------------------------------------------------------------------------------------------
# Sending, against real peers


def test_it_sends_the_corpus_byte_for_byte_and_reports_the_rest(
    tmp_path: Path, corpus: Path, storescp: StoreSCP
) -> None:
    reports = tmp_path / "reports"
    code = run_import(storescp.port, corpus, storescp.ae_title, reports)

    assert code == 1  # at least one file could not be read
    not_read = read_report(reports, "not-read")
    assert {Path(r["path"]).name for r in not_read} == CORPUS_NOT_READ
    assert all(r["reason"] for r in not_read)
    not_sent = read_report(reports, "not-sent")
    not_sent_names = {Path(r["path"]).name for r in not_sent}
    assert not_sent_names <= CORPUS_MAYBE_UNSUPPORTED
    assert all("the peer does not support SOP Class" in r["reason"] for r in not_sent)

    received = {hashlib.sha1(dataset_bytes(p)).hexdigest() for p in storescp.received_files()}
    expected_count = 0
    for path in discover_files(corpus):
        if path.name in CORPUS_NOT_READ | not_sent_names | CORPUS_SKIPPED:
            continue
        expected_count += 1
        if path.name in CORPUS_REENCODED:
            continue
        assert hashlib.sha1(dataset_bytes(path)).hexdigest() in received, path
    assert len(storescp.received_files()) == expected_count


def test_it_pads_an_odd_length_dataset_and_keeps_its_content(
    tmp_path: Path, corpus: Path, storescp: StoreSCP
) -> None:
    folder = tmp_path / "in"
    copy_corpus_files(corpus, folder, "deid-data__ctbrain1.dcm")

    code = run_import(storescp.port, folder, "STORESCP", tmp_path)

    assert code == 0
    (received,) = storescp.received_files()
    sent_ds, received_ds = dcmread(folder / "deid-data__ctbrain1.dcm"), dcmread(received)
    assert received_ds.SOPInstanceUID == sent_ds.SOPInstanceUID
    assert received_ds.PixelData == sent_ds.PixelData


def test_it_exits_zero_when_everything_was_sent(
    tmp_path: Path, corpus: Path, storescp: StoreSCP
) -> None:
    folder = tmp_path / "in"
    copy_corpus_files(corpus, folder / "a", CT_SMALL)
    copy_corpus_files(corpus, folder / "a" / "b" / "c", MR_IMPLICIT, JPEG_BASELINE)
    reports = tmp_path / "reports"

    code = run_import(storescp.port, folder, "STORESCP", reports)

    assert code == 0
    assert read_report(reports, "not-read") == []
    assert read_report(reports, "not-sent") == []
    assert (reports / "not-read.txt").read_text().startswith("0 file(s) could not be read")
    sent = sorted(dataset_bytes(p) for p in folder.rglob("*.dcm"))
    assert sorted(dataset_bytes(p) for p in storescp.received_files()) == sent


def test_it_reports_a_file_that_is_not_dicom(
    tmp_path: Path, corpus: Path, storescp: StoreSCP
) -> None:
    folder = tmp_path / "in"
    copy_corpus_files(corpus, folder / "deep" / "er", CT_SMALL)
    (folder / "readme.txt").write_text("this folder holds a CT\n")
    (folder / "deep" / "empty.dcm").write_bytes(b"")
    reports = tmp_path / "reports"

    code = run_import(storescp.port, folder, "STORESCP", reports)

    assert code == 1
    reasons = {Path(r["path"]).name: r["reason"] for r in read_report(reports, "not-read")}
    assert reasons == {
        "readme.txt": "not DICOM: no DICM preamble, no file meta and no SOP Class UID (0008,0016)",
        "empty.dcm": "empty file",
    }
    text = (reports / "not-read.txt").read_text()
    assert "2 file(s) could not be read" in text and "readme.txt: could not be read" in text
    assert read_report(reports, "not-sent") == []
    assert len(storescp.received_files()) == 1


def test_it_sends_a_file_without_preamble(tmp_path: Path, corpus: Path, storescp: StoreSCP) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    ds = write_without_meta(corpus / MR_IMPLICIT, folder / "bare")

    code = run_import(storescp.port, folder, "STORESCP", tmp_path)

    assert code == 0
    (received,) = storescp.received_files()
    assert dcmread(received).SOPInstanceUID == ds.SOPInstanceUID


def test_it_reports_the_status_of_a_refused_file(
    tmp_path: Path, corpus: Path, make_pynetdicom_scp: Callable[..., PynetdicomSCP]
) -> None:
    folder = tmp_path / "in"
    _, mr, _ = copy_corpus_files(corpus, folder, CT_SMALL, MR_IMPLICIT, RTPLAN)
    refused_uid = dcmread(mr, stop_before_pixels=True).SOPInstanceUID
    scp = make_pynetdicom_scp(refuse={refused_uid: 0xA700})
    reports = tmp_path / "reports"

    code = run_import(scp.port, folder, scp.ae_title, reports)

    assert code == 1
    (row,) = read_report(reports, "not-sent")
    assert Path(row["path"]).name == MR_IMPLICIT
    assert row["status"] == "0xA700"
    assert row["sop_instance_uid"] == refused_uid
    assert "0xA700" in row["reason"] and "Out of Resources" in row["reason"]
    assert "0xA700" in (reports / "not-sent.txt").read_text()
    assert len(scp.stored) == 2
    assert scp.associations == 1  # a refused instance does not end the association


def test_it_uses_the_calling_ae_title(
    tmp_path: Path, corpus: Path, make_pynetdicom_scp: Callable[..., PynetdicomSCP]
) -> None:
    folder = tmp_path / "in"
    copy_corpus_files(corpus, folder, CT_SMALL)
    scp = make_pynetdicom_scp()

    args = ["127.0.0.1", str(scp.port), str(folder), scp.ae_title, "--report-dir", str(tmp_path)]
    assert dcm_import.main([*args, "--no-progress"]) == 0
    assert dcm_import.main([*args, "--no-progress", "--calling-aet", "MODALITY1"]) == 0

    assert scp.calling_aets == ["DCMIMPORT", "MODALITY1"]


def test_it_reports_an_association_rejected_by_the_peer(
    tmp_path: Path, corpus: Path, make_pynetdicom_scp: Callable[..., PynetdicomSCP]
) -> None:
    folder = tmp_path / "in"
    copy_corpus_files(corpus, folder, CT_SMALL, MR_IMPLICIT)
    scp = make_pynetdicom_scp(require_called_aet=True)

    code = run_import(scp.port, folder, "WRONG_AET", tmp_path)

    assert code == 1
    rows = read_report(tmp_path, "not-sent")
    assert len(rows) == 2
    assert all("association rejected" in r["reason"] for r in rows)
    assert all("Called AE title not recognised" in r["reason"] for r in rows)
    assert scp.stored == []


def test_it_reports_when_nothing_listens(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "in"
    copy_corpus_files(corpus, folder, CT_SMALL)

    code = run_import(free_port(), folder, "VESALIUS", tmp_path, "--timeout", "5")

    assert code == 1
    (row,) = read_report(tmp_path, "not-sent")
    assert "could not connect to 127.0.0.1:" in row["reason"]
    assert row["status"] == ""


def test_it_reencodes_an_uncompressed_file_when_the_peer_wants_another_syntax(
    tmp_path: Path, corpus: Path, make_pynetdicom_scp: Callable[..., PynetdicomSCP]
) -> None:
    folder = tmp_path / "in"
    copy_corpus_files(corpus, folder, CT_SMALL)  # Explicit VR Little Endian
    scp = make_pynetdicom_scp(transfer_syntaxes=[ImplicitVRLittleEndian])

    code = run_import(scp.port, folder, scp.ae_title, tmp_path)

    assert code == 0
    assert len(scp.stored) == 1


def test_it_reports_a_compressed_file_the_peer_does_not_accept(
    tmp_path: Path, corpus: Path, make_pynetdicom_scp: Callable[..., PynetdicomSCP]
) -> None:
    folder = tmp_path / "in"
    copy_corpus_files(corpus, folder, CT_SMALL, JPEG_BASELINE)
    scp = make_pynetdicom_scp(transfer_syntaxes=[ImplicitVRLittleEndian, ExplicitVRLittleEndian])

    code = run_import(scp.port, folder, scp.ae_title, tmp_path)

    assert code == 1
    (row,) = read_report(tmp_path, "not-sent")
    assert Path(row["path"]).name == JPEG_BASELINE
    assert "did not accept transfer syntax JPEG Baseline" in row["reason"]
    assert len(scp.stored) == 1


def test_it_opens_more_associations_when_the_contexts_do_not_fit_in_one(
    tmp_path: Path, corpus: Path, make_pynetdicom_scp: Callable[..., PynetdicomSCP]
) -> None:
    folder = tmp_path / "in"
    paths = copy_corpus_files(corpus, folder, CT_SMALL, MR_IMPLICIT, RTPLAN, JPEG_BASELINE)
    files, _, _ = read_headers(paths)
    scp = make_pynetdicom_scp()

    result = dcm_import.send_files(files, "127.0.0.1", scp.port, scp.ae_title, max_contexts=2)

    assert result.failures == []
    assert len(result.sent) == 4
    # CT (Explicit VR LE + its Implicit fallback), MR + RT Plan (Implicit), SC (JPEG)
    assert result.associations == scp.associations == 3


def test_it_sets_tcp_nodelay_on_its_socket(
    corpus: Path, make_pynetdicom_scp: Callable[..., PynetdicomSCP]
) -> None:
    scp = make_pynetdicom_scp()
    files, _, _ = read_headers([corpus / CT_SMALL])
    (batch,) = plan_associations(files)
    ae = dcm_import.make_ae("DCMIMPORT")

    assoc, error = dcm_import.open_association(
        ae, "127.0.0.1", scp.port, scp.ae_title, batch.contexts
    )
    try:
        assert error is None
        sock = assoc.dul.socket.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        assoc.release()


# --------------------------------------------------------------------------------------------
# Command line


def test_it_asks_for_each_value_with_defaults_when_run_without_arguments(tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert dcm_import.ask_values(io.StringIO("\n\n\n\n")) == (
            "127.0.0.1",
            3000,
            tmp_path,
            "VESALIUS",
        )
    finally:
        os.chdir(cwd)


def test_it_asks_again_after_a_bad_answer(tmp_path: Path) -> None:
    answers = io.StringIO(f"pacs.local\nnot-a-port\n104\n{tmp_path}\nARCHIVE\n")

    assert dcm_import.ask_values(answers) == ("pacs.local", 104, tmp_path, "ARCHIVE")


def test_it_wants_all_four_arguments_or_none(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        dcm_import.main(["127.0.0.1", "3000"])

    assert exc.value.code == 2
    assert "HOST PORT PATH AETITLE" in capsys.readouterr().err


def test_its_help_documents_the_options_the_reports_and_the_exit_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        dcm_import.main(["--help"])

    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ("--calling-aet", "--report-dir", "not-read.csv", "not-sent.csv", "0xA700"):
        assert text in out
    assert "exit status" in out and "127.0.0.1, 3000" in out


def test_it_runs_as_a_console_command(tmp_path: Path, corpus: Path, storescp: StoreSCP) -> None:
    folder = tmp_path / "in"
    copy_corpus_files(corpus, folder, CT_SMALL)

    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pacs.tools.dcm_import"),
            *("127.0.0.1", str(storescp.port), str(folder), "STORESCP"),
            *("--report-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],  # the repository: `pacs` is importable
    )

    assert proc.returncode == 0, proc.stderr
    assert "1 file(s) found, 1 sent" in proc.stderr
    assert len(storescp.received_files()) == 1
