"""End to end: the SCP as real processes with DCMTK as the modality [ING-2], [DEV-ACL],
[STO-3]. The README run command itself is tested in tests/ops/test_run_script.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.conftest import dcmtk_tool
from tests.dicom_helpers import make_dataset, write_part10

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
