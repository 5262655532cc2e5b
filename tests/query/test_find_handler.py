"""handle_find as a plain function (DESIGN §3): a failure status ends the answers, a cancel is
checked before each pending answer, nothing raises."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from devices.models import Device
from pacs.dimse import find as find_loop
from studies import dimse as studies_dimse
from studies.dimse import handle_find
from tests.conftest import reconfigure
from tests.dicom_helpers import FakeFindEvent as FakeEvent
from tests.dicom_helpers import find_statuses as statuses

PENDING, CANCEL, NOT_AUTHORIZED = 0xFF00, 0xFE00, 0x0124
IDENTIFIER_MISMATCH, UNABLE_TO_PROCESS = 0xA900, 0xC000


def study_query(**keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


@pytest.fixture(autouse=True)
def keep_the_test_connection(monkeypatch):
    """The handler closes stale connections (it runs in association threads); here it runs
    inside the test's transaction, whose connection must stay open."""
    monkeypatch.setattr(find_loop, "close_old_connections", lambda: None)


@pytest.fixture
def finder(pacs_runtime):
    Device.objects.create(ae_title="FINDSCU", host="127.0.0.1", port=104, find=True)
    reconfigure()


def test_every_match_is_pending_and_the_generator_ends(finder, corpus_index):
    answers = list(handle_find(FakeEvent(study_query(PatientID="1CT1"))))
    assert statuses(answers) == [PENDING] * 3
    assert all(identifier is not None for _, identifier in answers)


def test_a_cancel_before_a_pending_answer_ends_with_cancel(finder, corpus_index):
    answers = list(handle_find(FakeEvent(study_query(), cancel_after=2)))
    assert statuses(answers) == [PENDING, PENDING, CANCEL]


def test_a_refusal_is_the_only_answer(pacs_runtime):
    Device.objects.create(ae_title="VIEWER", host="127.0.0.1", port=104, find=False)
    reconfigure()
    answers = list(handle_find(FakeEvent(study_query(), calling_ae="VIEWER")))
    assert statuses(answers) == [NOT_AUTHORIZED]
    assert answers[0][1] is None
    assert "FIND" in answers[0][0].ErrorComment


def test_an_invalid_identifier_is_the_only_answer(finder):
    answers = list(handle_find(FakeEvent(study_query(QueryRetrieveLevel="WARD"))))
    assert statuses(answers) == [IDENTIFIER_MISMATCH]


def test_an_error_while_reading_matches_is_the_last_answer(finder, corpus_index, monkeypatch):
    def broken_find(*args, **kwargs):
        yield Dataset()
        raise RuntimeError("database went away")

    monkeypatch.setattr(studies_dimse, "find", broken_find)
    answers = list(handle_find(FakeEvent(study_query())))
    assert statuses(answers) == [PENDING, UNABLE_TO_PROCESS]
