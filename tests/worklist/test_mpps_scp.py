"""The MPPS SCP [MWL-3] on the worklist port with a pynetdicom SCU: N-CREATE (IN PROGRESS)
then N-SET (COMPLETED / DISCONTINUED) move the scheduled step, and the refusals of
PS3.4 F.7.2 and PS3.7 C.4."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from devices.models import Device
from tests.conftest import configure_pacs, reconfigure
from tests.worklist.conftest import make_procedure, running_worklist_scp
from worklist.choices import StepStatus
from worklist.models import PerformedProcedureStep, StepStatusChange

SUCCESS, INVALID_VALUE, PROCESSING_FAILURE = 0x0000, 0x0106, 0x0110
DUPLICATE, NO_SUCH_INSTANCE, MISSING, NOT_AUTHORIZED = 0x0111, 0x0112, 0x0120, 0x0124


@pytest.fixture
def mwl_scp(transactional_db, tmp_path):
    configure_pacs(tmp_path, accept_any_ae=True)
    with running_worklist_scp() as server:
        yield server
    reconfigure(accept_any_ae=False)


class MppsScu:
    """A modality's MPPS SCU over pynetdicom."""

    def __init__(self, port: int, ae_title: str = "MODALITY1") -> None:
        ae = AE(ae_title=ae_title)
        ae.add_requested_context(ModalityPerformedProcedureStep)
        self.assoc = ae.associate("127.0.0.1", port, ae_title="VESALIUS")
        assert self.assoc.is_established

    def create(self, uid: str, attributes: Dataset) -> int:
        status, _ = self.assoc.send_n_create(attributes, ModalityPerformedProcedureStep, uid)
        return int(status.Status)

    def set(self, uid: str, modifications: Dataset) -> int:
        status, _ = self.assoc.send_n_set(modifications, ModalityPerformedProcedureStep, uid)
        return int(status.Status)

    def close(self) -> None:
        self.assoc.release()


@pytest.fixture
def scu(mwl_scp):
    client = MppsScu(mwl_scp.port)
    yield client
    client.close()


def in_progress(procedure, step_id: str | None = None) -> Dataset:
    """The N-CREATE attributes of a modality starting the procedure's step (PS3.4 F.7.2.1)."""
    step = procedure.steps.get()
    item = Dataset()
    item.StudyInstanceUID = procedure.study_instance_uid
    item.AccessionNumber = procedure.accession_number
    item.ScheduledProcedureStepID = step.step_id if step_id is None else step_id
    item.RequestedProcedureID = procedure.requested_procedure_id
    ds = Dataset()
    ds.ScheduledStepAttributesSequence = [item]
    ds.PatientName = procedure.patient_name
    ds.PatientID = procedure.patient_id
    ds.PerformedStationAETitle = "MODALITY1"
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedProcedureStepStartDate = "20261202"
    ds.PerformedProcedureStepStartTime = "093000"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.Modality = "CT"
    return ds


def final(status: str) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261202"
    ds.PerformedProcedureStepEndTime = "094500"
    return ds


def _status_of(procedure) -> str:
    return procedure.steps.get().status


def test_n_create_then_n_set_move_the_step_to_in_progress_then_completed(scu):
    procedure = make_procedure()
    uid = generate_uid()
    assert scu.create(uid, in_progress(procedure)) == SUCCESS
    assert _status_of(procedure) == StepStatus.IN_PROGRESS
    assert scu.set(uid, final("COMPLETED")) == SUCCESS
    assert _status_of(procedure) == StepStatus.COMPLETED
    history = StepStatusChange.objects.order_by("id").values_list("new_status", "source")
    assert list(history) == [("IN_PROGRESS", "mpps"), ("COMPLETED", "mpps")]
    assert PerformedProcedureStep.objects.get(sop_instance_uid=uid).status == "COMPLETED"


def test_discontinued_ends_the_step_and_no_later_n_set_is_accepted(scu):
    procedure = make_procedure()
    uid = generate_uid()
    assert scu.create(uid, in_progress(procedure)) == SUCCESS
    assert scu.set(uid, final("DISCONTINUED")) == SUCCESS
    assert _status_of(procedure) == StepStatus.DISCONTINUED
    # PS3.4 F.7.2.2.2: a finished performed step may no longer be updated.
    assert scu.set(uid, final("COMPLETED")) == PROCESSING_FAILURE
    assert _status_of(procedure) == StepStatus.DISCONTINUED


def test_an_n_set_in_progress_changes_nothing(scu):
    procedure = make_procedure()
    uid = generate_uid()
    scu.create(uid, in_progress(procedure))
    assert scu.set(uid, final("IN PROGRESS")) == SUCCESS
    assert StepStatusChange.objects.count() == 1


def test_it_refuses_an_n_create_that_is_not_in_progress_or_lacks_the_status(scu):
    procedure = make_procedure()
    created_completed = in_progress(procedure)
    created_completed.PerformedProcedureStepStatus = "COMPLETED"
    assert scu.create(generate_uid(), created_completed) == INVALID_VALUE
    no_status = in_progress(procedure)
    del no_status.PerformedProcedureStepStatus
    assert scu.create(generate_uid(), no_status) == MISSING
    assert _status_of(procedure) == StepStatus.SCHEDULED
    assert not PerformedProcedureStep.objects.exists()


def test_it_refuses_a_duplicate_n_create_and_an_n_set_of_an_unknown_instance(scu):
    procedure = make_procedure()
    uid = generate_uid()
    assert scu.create(uid, in_progress(procedure)) == SUCCESS
    assert scu.create(uid, in_progress(procedure)) == DUPLICATE
    assert scu.set(generate_uid(), final("COMPLETED")) == NO_SUCH_INSTANCE
    assert StepStatusChange.objects.count() == 1


def test_an_unscheduled_performed_step_is_kept_and_changes_no_step(scu):
    procedure = make_procedure()
    other = make_procedure(accession_number="OTHER")
    attributes = in_progress(procedure, step_id="NOT-A-STEP")
    uid = generate_uid()
    assert scu.create(uid, attributes) == SUCCESS
    assert _status_of(procedure) == StepStatus.SCHEDULED
    assert _status_of(other) == StepStatus.SCHEDULED
    assert PerformedProcedureStep.objects.get(sop_instance_uid=uid).steps.count() == 0


def test_mpps_needs_the_mwl_permission(mwl_scp):
    Device.objects.create(ae_title="NOMWL", host="127.0.0.1", port=104, find=True, mwl=False)
    reconfigure(accept_any_ae=False)
    procedure = make_procedure()
    client = MppsScu(mwl_scp.port, ae_title="NOMWL")
    try:
        assert client.create(generate_uid(), in_progress(procedure)) == NOT_AUTHORIZED
    finally:
        client.close()
    assert _status_of(procedure) == StepStatus.SCHEDULED
