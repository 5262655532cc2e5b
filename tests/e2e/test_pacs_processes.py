"""End to end: the README run command and the SCP as real processes, DCMTK as the modality,
the REST API as the administrator [ING-2], [DEV-ACL], [STO-3]."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.conftest import REPO_DIR, dcmtk_tool
from tests.dicom_helpers import make_dataset, write_part10
from tests.e2e.conftest import wait_for_port

pytestmark = pytest.mark.e2e


def storescu(port: int, paths: list[Path], *extra: str, calling_ae: str = "MODALITY"):
    return subprocess.run(
        [dcmtk_tool("storescu"), "-v", "-aet", calling_ae, "-aec", "VESALIUS", *extra]
        + ["127.0.0.1", str(port)]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        timeout=300,
    )


def make_study(folder: Path, *, study_uid: str, patient: str, series: int, per_series: int):
    paths = []
    for s in range(series):
        series_uid = f"{study_uid}.{s + 1}"
        for i in range(per_series):
            ds = make_dataset(
                study_uid=study_uid,
                series_uid=series_uid,
                patient_name=patient,
                patient_id=patient.split("^")[0].upper(),
                modality="CT" if s == 0 else "MR",
            )
            paths.append(write_part10(ds, folder / f"{series_uid}-{i}.dcm"))
    return paths


def test_the_readme_run_command_brings_up_a_pacs_that_stores_and_lists_studies(
    pacs_factory, tmp_path
):
    pacs = pacs_factory(PACS_ACCEPT_ANY_AE="true", PACS_SCP_PROCESSES="2")
    run = subprocess.Popen(
        [str(REPO_DIR / "scripts" / "run")],
        cwd=REPO_DIR,
        env={**pacs.env, "PATH": f"{REPO_DIR / '.venv' / 'bin'}:{os.environ['PATH']}"},
        stdout=(pacs.data_dir / "run.out").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pacs.processes.append(run)
    wait_for_port(pacs.http_port, timeout=120, process=run)
    wait_for_port(pacs.dicom_port, timeout=120, process=run)

    echo = subprocess.run(
        [dcmtk_tool("echoscu"), "-aec", "VESALIUS", "127.0.0.1", str(pacs.dicom_port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert echo.returncode == 0, echo.stderr

    first = make_study(
        tmp_path / "in",
        study_uid="1.2.826.0.1.3680043.8.498.500",
        patient="Alpha^Ann",
        series=2,
        per_series=3,
    )
    second = make_study(
        tmp_path / "in",
        study_uid="1.2.826.0.1.3680043.8.498.501",
        patient="Beta^Bob",
        series=1,
        per_series=2,
    )
    result = storescu(pacs.dicom_port, first + second)
    assert result.returncode == 0, result.stderr

    api = pacs.api()
    response = api.get(f"{api.base_url}/api/studies/", params={"ordering": "patient_name"})
    assert response.status_code == 200, response.text
    studies = response.json()["results"]
    assert len(studies) == 2
    by_uid = {study["study_instance_uid"]: study for study in studies}
    alpha = by_uid["1.2.826.0.1.3680043.8.498.500"]
    assert "Alpha^Ann" in str(alpha)
    assert (alpha["number_of_series"], alpha["number_of_instances"]) == (2, 6)
    beta = by_uid["1.2.826.0.1.3680043.8.498.501"]
    assert (beta["number_of_series"], beta["number_of_instances"]) == (1, 2)

    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 0


def _acknowledged_files(storescu_output: str) -> list[Path]:
    """Files storescu -v reports as sent with a Success response, in order."""
    acknowledged, current = [], None
    for line in storescu_output.splitlines():
        sending = re.match(r"I: Sending file: (.+)$", line)
        if sending:
            current = Path(sending.group(1).strip())
        elif "Received Store Response (Success)" in line and current is not None:
            acknowledged.append(current)
            current = None
    return acknowledged


def test_sigkill_in_the_middle_of_a_burst_loses_no_acknowledged_instance(pacs_factory, tmp_path):
    pacs = pacs_factory(PACS_ACCEPT_ANY_AE="true")
    pacs.prepare()
    scp = pacs.start_scp(processes=2)
    paths = [
        write_part10(make_dataset(pixels=128), tmp_path / "burst" / f"{i:04d}.dcm")
        for i in range(400)
    ]
    sender = subprocess.Popen(
        [dcmtk_tool("storescu"), "-v", "-aet", "MODALITY", "-aec", "VESALIUS", "127.0.0.1"]
        + [str(pacs.dicom_port)]
        + [str(p) for p in paths],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stored = list(pacs.storage_dir.rglob("*.dcm"))
        if len(stored) >= 60:
            break
        time.sleep(0.01)
    os.killpg(scp.pid, signal.SIGKILL)
    scp.wait(timeout=30)
    output, _ = sender.communicate(timeout=120)
    acknowledged = _acknowledged_files(output)
    assert 0 < len(acknowledged) < len(paths), output[-2000:]

    pacs.start_scp(processes=1)  # restarts cleanly on the same port and data
    result = pacs.manage(
        "shell",
        "-c",
        "from studies.models import Instance; from pathlib import Path\n"
        "for i in Instance.objects.select_related('storage'):\n"
        "    print(i.sop_instance_uid, Path(i.storage.path) / i.relative_path)",
    )
    indexed = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.strip())
    for path in acknowledged:
        sent = dcmread(path)
        assert sent.SOPInstanceUID in indexed, f"{path.name} was acknowledged but not indexed"
        stored = dcmread(indexed[sent.SOPInstanceUID])
        assert stored.PixelData == sent.PixelData

    # No partial file in the storage folder: every file there is complete.
    leftovers = [p for p in pacs.storage_dir.rglob("*") if p.is_file()]
    assert not [p for p in leftovers if not p.name.endswith(".dcm")]
    for path in leftovers:
        assert len(dcmread(path).PixelData) == 128 * 128 * 2


def test_sigterm_lets_running_associations_finish(pacs_factory, tmp_path):
    pacs = pacs_factory(PACS_ACCEPT_ANY_AE="true")
    pacs.prepare()
    scp = pacs.start_scp(processes=2)
    paths = [
        write_part10(make_dataset(pixels=256), tmp_path / "burst" / f"{i:04d}.dcm")
        for i in range(150)
    ]
    sender = subprocess.Popen(
        [dcmtk_tool("storescu"), "-aet", "MODALITY", "-aec", "VESALIUS", "127.0.0.1"]
        + [str(pacs.dicom_port)]
        + [str(p) for p in paths],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    while not list(pacs.storage_dir.rglob("*.dcm")):
        time.sleep(0.01)
    os.killpg(scp.pid, signal.SIGTERM)
    assert scp.wait(timeout=60) == 0
    output, _ = sender.communicate(timeout=60)
    assert sender.returncode == 0, output[-2000:]  # the running association completed
    assert len(list(pacs.storage_dir.rglob("*.dcm"))) == len(paths)
    assert "stopped" in pacs.log_file.read_text()


def test_no_free_space_answers_out_of_resources_and_the_log_says_why(pacs_factory, tmp_path):
    pacs = pacs_factory(PACS_ACCEPT_ANY_AE="true", PACS_FREE_SPACE_LIMIT_MB=str(2**40))
    pacs.prepare()
    pacs.start_scp(processes=1)
    path = write_part10(make_dataset(), tmp_path / "in" / "a.dcm")
    before = path.read_bytes()
    result = storescu(pacs.dicom_port, [path])
    assert "Received Store Response (Refused: OutOfResources)" in result.stderr
    assert "no storage has more free space than the limit" in pacs.log_file.read_text()
    assert path.read_bytes() == before
    assert not [p for p in pacs.storage_dir.rglob("*") if p.is_file()]


def test_an_unknown_ae_is_rejected_by_default(pacs_factory, tmp_path):
    pacs = pacs_factory()
    pacs.prepare()
    pacs.start_scp(processes=1)
    result = storescu(pacs.dicom_port, [write_part10(make_dataset(), tmp_path / "a.dcm")])
    assert result.returncode != 0
    assert "Association Rejected" in result.stderr + result.stdout
    assert "not a known device" in pacs.log_file.read_text()
