"""handle_mwl_find as a plain function (DESIGN §3): a cancel is checked before each pending
answer, a failure status ends the answers, nothing raises."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from devices.models import Device
from pacs.dimse import find as find_loop
from tests.conftest import reconfigure
from tests.dicom_helpers import FakeFindEvent as FakeEvent
from tests.dicom_helpers import find_statuses as statuses
from tests.worklist.conftest import make_procedure
from worklist.dimse import handle_mwl_find

PENDING, CANCEL, NOT_AUTHORIZED = 0xFF00, 0xFE00, 0x0124
IDENTIFIER_MISMATCH, UNABLE_TO_PROCESS = 0xA900, 0xC000


def query(**step_keys) -> Dataset:
    ds = Dataset()
    ds.PatientName = ""
    item = Dataset()
    for keyword, value in step_keys.items():
        setattr(item, keyword, value)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


@pytest.fixture(autouse=True)
def keep_the_test_connection(monkeypatch):
    monkeypatch.setattr(find_loop, "close_old_connections", lambda: None)


@pytest.fixture
def modality(pacs_runtime):
    Device.objects.create(ae_title="FINDSCU", host="127.0.0.1", port=104, find=True, mwl=True)
    reconfigure()
    for number in range(3):
        make_procedure(accession_number=f"A{number}")


def test_every_step_is_pending_and_the_generator_ends(modality):
    answers = list(handle_mwl_find(FakeEvent(query())))
    assert statuses(answers) == [PENDING] * 3
    assert all(identifier is not None for _, identifier in answers)


def test_a_cancel_is_answered_before_the_next_pending_and_ends_the_answers(modality):
    answers = list(handle_mwl_find(FakeEvent(query(), cancel_after=1)))
    assert statuses(answers) == [PENDING, CANCEL]


def test_a_bad_identifier_is_one_failure_and_the_end(modality):
    sequence_of_two = query()
    sequence_of_two.ScheduledProcedureStepSequence.append(Dataset())
    answers = list(handle_mwl_find(FakeEvent(sequence_of_two)))
    assert statuses(answers) == [IDENTIFIER_MISMATCH]


def test_an_error_while_reading_is_unable_to_process_and_the_end(modality, monkeypatch):
    from worklist.query import WorklistFind

    def broken(self, step):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(WorklistFind, "response", broken)
    answers = list(handle_mwl_find(FakeEvent(query())))
    assert statuses(answers) == [UNABLE_TO_PROCESS]
    assert "disk on fire" in answers[0][0].ErrorComment


def test_a_device_with_find_but_not_mwl_is_refused(pacs_runtime):
    Device.objects.create(ae_title="VIEWER", host="127.0.0.1", port=104, find=True, mwl=False)
    reconfigure()
    answers = list(handle_mwl_find(FakeEvent(query(), calling_ae="VIEWER")))
    assert statuses(answers) == [NOT_AUTHORIZED]
    assert "MWL" in answers[0][0].ErrorComment
