"""The RabbitMQ link with the RIS [AMQP-1]-[AMQP-4] against the real broker: incoming
worklist messages, the dead-letter queue, status and study/series events from MPPS and
C-STORE through the outbox, exactly once; custom names; nothing when disabled."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pacs.models import OutboxEvent
from tests.conftest import configure_pacs, dcmtk_tool, reconfigure, running_scp
from tests.dicom_helpers import make_dataset, write_part10
from tests.worklist.amqp_helpers import Ris, enable_amqp, private_vhost, running_runner
from tests.worklist.conftest import make_procedure, running_worklist_scp
from tests.worklist.test_mpps_scp import MppsScu, final, in_progress
from tests.worklist.test_mwl_scp import mwl_find
from worklist import services
from worklist.choices import ChangeSource, StepStatus
from worklist.models import RequestedProcedure, ScheduledProcedureStep

NEW_MWL = """<mwl><procedure>
  <patient_id>P-77</patient_id><pid>HOSP</pid><patient_name>GARCÍA^JOSÉ</patient_name>
  <patient_sex>M</patient_sex><patient_dob>19800102</patient_dob>
  <patient_weight>72.5</patient_weight><pregnancy_status>4</pregnancy_status>
  <study_uid>:SERVER</study_uid><accession_number>{accession}</accession_number>
  <admission_id>ADM-1</admission_id><proc_description>CT chest &amp; abdomen</proc_description>
  <rpcs_code_value>CT-CHEST</rpcs_code_value><rpcs_coding_scheme_version>1</rpcs_coding_scheme_version>
  <rpcs_coding_scheme_designator>LOCAL</rpcs_coding_scheme_designator>
  <rpcs_code_meaning>CT chest</rpcs_code_meaning>
  <step><modality>CT</modality><station_ae_title>{station}</station_ae_title>
    <start_date>20261202</start_date><start_time>101500</start_time>
    <step_description>Chest</step_description><physician_name>HOUSE^G</physician_name>
    <spcs_code_value>P1</spcs_code_value><spcs_coding_scheme_version>1</spcs_coding_scheme_version>
    <spcs_coding_scheme_designator>LOCAL</spcs_coding_scheme_designator>
    <spcs_code_meaning>Protocol one</spcs_code_meaning></step>
  <step><modality>CT</modality><station_ae_title>{station}</station_ae_title>
    <start_date>20261202</start_date><start_time>111500</start_time></step>
</procedure></mwl>"""


@pytest.fixture
def vhost(transactional_db, tmp_path):
    configure_pacs(tmp_path, accept_any_ae=True)
    with private_vhost() as name:
        enable_amqp(name)
        yield name
    reconfigure(accept_any_ae=False)


@pytest.fixture
def ris(vhost):
    with running_runner():
        client = Ris(vhost)
        yield client
        client.close()


@pytest.fixture
def worklist_server(transactional_db):
    with running_worklist_scp() as server:
        yield server


def _station_query(station: str) -> Dataset:
    query = Dataset()
    query.PatientName = ""
    query.AccessionNumber = ""
    query.StudyInstanceUID = ""
    item = Dataset()
    item.ScheduledStationAETitle = station
    item.ScheduledProcedureStepStartTime = ""
    query.ScheduledProcedureStepSequence = [item]
    return query


def _wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_a_new_mwl_message_appears_in_mwl_c_find_within_two_seconds(ris, worklist_server):
    started = time.monotonic()
    ris.publish(NEW_MWL.format(accession="ACC-RIS-1", station="CTROOM1"))

    def answers():
        return [
            rsp
            for status, rsp in mwl_find(worklist_server.port, _station_query("CTROOM1"))
            if status == 0xFF00
        ]

    assert _wait_for(lambda: len(answers()) == 2, timeout=2.0)
    assert time.monotonic() - started < 2.0
    found = answers()
    assert {str(ds.PatientName) for ds in found} == {"GARCÍA^JOSÉ"}
    assert {ds.AccessionNumber for ds in found} == {"ACC-RIS-1"}
    assert len({ds.StudyInstanceUID for ds in found}) == 1  # generated once
    procedure = RequestedProcedure.objects.get(accession_number="ACC-RIS-1")
    assert (procedure.issuer_of_patient_id, procedure.patient_weight) == ("HOSP", 72.5)
    assert procedure.requested_procedure_description == "CT chest & abdomen"
    assert procedure.procedure_code_meaning == "CT chest"
    first = procedure.steps.order_by("start_time").first()
    assert (first.protocol_code_value, first.performing_physician_name) == ("P1", "HOUSE^G")


def test_mwl_missed_and_canceled_change_the_steps_of_the_accession(ris):
    make_procedure(accession_number="MISS-1", statuses=(StepStatus.SCHEDULED,) * 2)
    make_procedure(accession_number="CANCEL-1")
    make_procedure(accession_number="KEEP-1")
    ris.publish("<mwl-missed><accession_number>MISS-1</accession_number></mwl-missed>")
    ris.publish("<mwl-canceled><accession_number>CANCEL-1</accession_number></mwl-canceled>")

    def statuses(accession: str) -> set[str]:
        steps = ScheduledProcedureStep.objects.filter(procedure__accession_number=accession)
        return set(steps.values_list("status", flat=True))

    assert _wait_for(lambda: statuses("CANCEL-1") == {"CANCELED"})
    assert statuses("MISS-1") == {"MISSED"}
    assert statuses("KEEP-1") == {"SCHEDULED"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<mwl><procedure>", "not well-formed XML"),
        ("<mwl><procedure><patient_id>X</patient_id></procedure></mwl>", "without a <step>"),
        ("<order/>", "unknown message <order>"),
        (
            "<mwl><procedure><patient_dob>1980-01-02</patient_dob><step/></procedure></mwl>",
            "<patient_dob> is not a yyyymmdd date",
        ),
        (b"<mwl-missed><accession_number>\xff</accession_number></mwl-missed>", "not UTF-8"),
    ],
)
def test_a_malformed_message_goes_to_the_dead_letter_queue_and_the_next_is_processed(
    ris, body, reason
):
    ris.publish(body)
    ris.publish(NEW_MWL.format(accession="AFTER-BAD", station="CT9"))
    dead = ris.take("PACS.MWL.dead-letter", 1)
    assert len(dead) == 1
    dead_body, headers = dead[0]
    assert dead_body == (body if isinstance(body, bytes) else body.encode())
    assert reason in headers["x-rejection-reason"]
    assert headers["x-original-routing-key"] == "MWL"
    assert _wait_for(
        lambda: RequestedProcedure.objects.filter(accession_number="AFTER-BAD").exists()
    )
    assert ris.count("PACS.MWL") == 0


def test_mpps_changes_arrive_as_two_mwl_messages_in_order(ris, worklist_server):
    procedure = make_procedure(accession_number="MPPS-<1>&")
    scu = MppsScu(worklist_server.port)
    uid = generate_uid()
    try:
        assert scu.create(uid, in_progress(procedure)) == 0
        assert scu.set(uid, final("COMPLETED")) == 0
    finally:
        scu.close()
    received = [body for body, _ in ris.take("PACS.MWL_changed", 2)]
    assert received == [
        b"<mwl><accession_number>MPPS-&lt;1&gt;&amp;</accession_number>"
        b"<status>IN_PROGRESS</status></mwl>",
        b"<mwl><accession_number>MPPS-&lt;1&gt;&amp;</accession_number>"
        b"<status>COMPLETED</status></mwl>",
    ]
    assert ris.take("PACS.MWL_changed", 1, timeout=0.5) == []


def _study_files(folder: Path) -> tuple[list[Path], str, list[str]]:
    study_uid = generate_uid()
    series_uids = [generate_uid(), generate_uid()]
    paths = [
        write_part10(make_dataset(study_uid=study_uid, series_uid=series_uid), folder / f"{n}.dcm")
        for n, series_uid in enumerate(series_uids * 2)
    ]
    return paths, study_uid, series_uids


def storescu(port: int, paths: list[Path]) -> None:
    completed = subprocess.run(
        [dcmtk_tool("storescu"), "-aet", "MODALITY1", "-aec", "VESALIUS", "127.0.0.1", str(port)]
        + [str(path) for path in paths],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr


def test_c_store_sent_twice_gives_one_study_and_one_series_message_each(ris, tmp_path):
    paths, study_uid, series_uids = _study_files(tmp_path / "files")
    with running_scp() as scp:
        storescu(scp.port, paths)
        storescu(scp.port, paths)
    received = [body for body, _ in ris.take("PACS.Studies", 3)]
    assert received == [
        f"<study><uid>{study_uid}</uid></study>".encode(),
        f"<series><uid>{series_uids[0]}</uid></series>".encode(),
        f"<series><uid>{series_uids[1]}</uid></series>".encode(),
    ]
    assert ris.take("PACS.Studies", 1, timeout=1.0) == []


def test_the_names_of_an_existing_inobitec_installation_work(transactional_db, tmp_path):
    configure_pacs(tmp_path, accept_any_ae=True)
    names = {
        "ris_exchange": "Inobitec.RIS",
        "request_exchange": "Inobitec.request",
        "mwl_queue": "Inobitec.MWL",
        "mwl_changed_queue": "Inobitec.MWL_changed",
        "studies_queue": "Inobitec.Studies",
    }
    with private_vhost() as vhost:
        # The RIS's own queue exists already, with arguments of its own.
        setup = Ris(vhost)
        setup.channel.queue_declare("Inobitec.MWL", durable=True, arguments={"x-max-length": 1000})
        setup.close()
        enable_amqp(vhost, **names)
        with running_runner():
            client = Ris(vhost)
            try:
                client.publish(NEW_MWL.format(accession="INO-1", station="CT2"), "Inobitec.RIS")
                assert _wait_for(
                    lambda: RequestedProcedure.objects.filter(accession_number="INO-1").exists()
                )
                step = ScheduledProcedureStep.objects.filter(procedure__accession_number="INO-1")
                services.change_status(
                    list(step.select_related("procedure")[:1]),
                    StepStatus.IN_PROGRESS,
                    source=ChangeSource.CONSOLE,
                )
                received = client.take("Inobitec.MWL_changed", 1)
                assert received[0][0] == (
                    b"<mwl><accession_number>INO-1</accession_number>"
                    b"<status>IN_PROGRESS</status></mwl>"
                )
            finally:
                client.close()
    reconfigure(accept_any_ae=False)


def test_when_amqp_is_off_nothing_connects_and_nothing_piles_up(transactional_db, tmp_path):
    configure_pacs(tmp_path, accept_any_ae=True)
    paths, _study_uid, _series = _study_files(tmp_path / "files")
    with running_runner(wait_connected=False) as runner, running_scp() as scp:
        storescu(scp.port, paths)
        procedure = make_procedure()
        from worklist import services

        services.reset_step(procedure.steps.get()) if False else None
        services.change_status(list(procedure.steps.all()), StepStatus.MISSED, source="console")
        time.sleep(1.0)
        assert not runner.connected.is_set()
    assert OutboxEvent.objects.count() == 0
    reconfigure(accept_any_ae=False)
