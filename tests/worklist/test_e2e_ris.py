"""End to end with the fixed names of the issue: ``runscp`` (2 processes, both ports) and
``manage.py runamqp`` as real processes, configured only by ``PACS_AMQP_ENABLED`` and
``PACS_AMQP_URL``, the default names of [AMQP-2], DCMTK as the modality and a pika client as
the RIS."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.conftest import REPO_DIR, dcmtk_tool
from tests.worklist.amqp_helpers import BROKER_HOST, BROKER_PORT, Ris, private_vhost
from tests.worklist.test_amqp import NEW_MWL, _study_files, storescu
from tests.worklist.test_mpps_scp import MppsScu, final

pytestmark = pytest.mark.e2e


def _findscu_worklist(port: int, station: str, out: Path) -> list[Dataset]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("rsp*.dcm"):
        old.unlink()
    completed = subprocess.run(
        [
            dcmtk_tool("findscu"),
            "-W",
            "-aet",
            "MODALITY1",
            "-aec",
            "VESALIUS",
            "-X",
            "-od",
            str(out),
            "-k",
            "PatientName",
            "-k",
            "AccessionNumber",
            "-k",
            "StudyInstanceUID",
            "-k",
            f"ScheduledProcedureStepSequence[0].ScheduledStationAETitle={station}",
            "-k",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
            "-k",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261202",
            "127.0.0.1",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return [dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


def test_the_worklist_and_the_ris_link_as_real_processes(pacs_factory, tmp_path):
    with private_vhost() as vhost:
        pacs = pacs_factory(
            PACS_AMQP_ENABLED="on",
            PACS_AMQP_URL=f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/{vhost}",
            PACS_ACCEPT_ANY_AE="on",
        )
        pacs.prepare()
        pacs.start_scp(processes=2)
        mwl_port = int(pacs.env["PACS_MWL_PORT"])
        amqp_log = (pacs.data_dir / "runamqp.out").open("ab")
        amqp = subprocess.Popen(
            [sys.executable, "manage.py", "runamqp"],
            cwd=REPO_DIR,
            env=pacs.env,
            stdout=amqp_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pacs.processes.append(amqp)
        ris = None
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    ris = Ris(vhost)
                    channel = ris.connection.channel()
                    if channel.queue_declare("PACS.MWL", passive=True).method.consumer_count:
                        break
                except Exception:
                    if ris is not None:
                        ris.close()
                    ris = None
                time.sleep(0.3)
            assert ris is not None, "runamqp did not declare its topology"

            # RIS -> worklist -> findscu -W on PACS_MWL_PORT.
            ris.publish(NEW_MWL.format(accession="E2E-1", station="E2ECT"))
            answers: list[Dataset] = []
            deadline = time.monotonic() + 10
            while len(answers) < 2 and time.monotonic() < deadline:
                answers = _findscu_worklist(mwl_port, "E2ECT", tmp_path / "mwl")
            assert {ds.AccessionNumber for ds in answers} == {"E2E-1"}
            assert len(answers) == 2

            # MPPS on the same port -> two status messages, in order.
            item = Dataset()
            item.StudyInstanceUID = answers[0].StudyInstanceUID
            item.AccessionNumber = "E2E-1"
            item.ScheduledProcedureStepID = (
                answers[0].ScheduledProcedureStepSequence[0].ScheduledProcedureStepID
            )
            started = Dataset()
            started.ScheduledStepAttributesSequence = [item]
            started.PerformedProcedureStepStatus = "IN PROGRESS"
            scu = MppsScu(mwl_port)
            uid = generate_uid()
            try:
                assert scu.create(uid, started) == 0
                assert scu.set(uid, final("COMPLETED")) == 0
            finally:
                scu.close()
            changes = [body for body, _ in ris.take("PACS.MWL_changed", 2, timeout=20)]
            assert changes == [
                b"<mwl><accession_number>E2E-1</accession_number><status>IN_PROGRESS</status></mwl>",
                b"<mwl><accession_number>E2E-1</accession_number><status>COMPLETED</status></mwl>",
            ]

            # C-STORE twice -> one <study> and one <series> per new study / series.
            paths, study_uid, series_uids = _study_files(tmp_path / "files")
            storescu(pacs.dicom_port, paths)
            storescu(pacs.dicom_port, paths)
            studies = sorted(body for body, _ in ris.take("PACS.Studies", 3, timeout=20))
            assert studies == sorted(
                [f"<study><uid>{study_uid}</uid></study>".encode()]
                + [f"<series><uid>{uid}</uid></series>".encode() for uid in series_uids]
            )
            assert ris.take("PACS.Studies", 1, timeout=1.5) == []
        finally:
            if ris is not None:
                ris.close()
            pacs.stop_all()
