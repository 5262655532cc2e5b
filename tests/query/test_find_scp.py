"""The C-FIND SCP on a real socket [QR-1], [DEV-ACL], with DCMTK findscu and pynetdicom as
peers, on the dev corpus."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from devices.models import Device
from studies import dimse as studies_dimse
from tests.conftest import dcmtk_tool, reconfigure, running_scp

PENDING, SUCCESS, CANCEL = 0xFF00, 0x0000, 0xFE00
NOT_AUTHORIZED, IDENTIFIER_MISMATCH = 0x0124, 0xA900
CT1_STUDIES = {
    "1.3.6.1.4.1.5962.1.2.1.20040826185059.5457",
    "1.3.6.1.4.1.5962.1.2.1.20031208063649.855",
    "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
}


@pytest.fixture
def scp(corpus_index_tx):
    with running_scp() as server:
        yield server


@pytest.fixture
def finder(scp):
    Device.objects.create(ae_title="FINDSCU", host="127.0.0.1", port=11112, find=True)
    reconfigure()
    return "FINDSCU"


def c_find(
    port: int,
    query: Dataset,
    *,
    model=StudyRootQueryRetrieveInformationModelFind,
    calling_ae: str = "FINDSCU",
) -> list[tuple[int, Dataset | None]]:
    """One C-FIND over pynetdicom; every (status, identifier) received."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title="VESALIUS")
    assert assoc.is_established
    try:
        return [
            (int(rsp.Status), identifier) for rsp, identifier in assoc.send_c_find(query, model)
        ]
    finally:
        assoc.release()


def findscu(port: int, model_flag: str, keys: list[str], out: Path) -> set[str]:
    """DCMTK findscu at STUDY level; the StudyInstanceUIDs of the extracted responses."""
    out.mkdir(parents=True, exist_ok=True)
    args = [
        dcmtk_tool("findscu"),
        model_flag,
        "-aet",
        "FINDSCU",
        "-aec",
        "VESALIUS",
        "-X",
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "StudyInstanceUID",
    ]
    for key in keys:
        args += ["-k", key]
    result = subprocess.run(
        [*args, "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return {dcmread(path).StudyInstanceUID for path in sorted(out.glob("rsp*.dcm"))}


def study_query(**keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_findscu_gets_the_same_studies_through_patient_root_and_study_root(finder, scp, tmp_path):
    """PS3.4 C.6.1 / C.6.2: the same STUDY-level query through both models."""
    keys = ["PatientID=1CT1", "PatientName", "StudyDate"]
    patient_root = findscu(scp.port, "-P", keys, tmp_path / "patient")
    study_root = findscu(scp.port, "-S", keys, tmp_path / "study")
    assert patient_root == study_root == CT1_STUDIES
    wildcard = ["PatientID=", "PatientName=compressedsamples^C*", "StudyDate=20040101-"]
    assert (
        findscu(scp.port, "-P", wildcard, tmp_path / "p2")
        == findscu(scp.port, "-S", wildcard, tmp_path / "s2")
        == CT1_STUDIES - {"1.3.6.1.4.1.5962.1.2.1.20031208063649.855"}
    )


def test_findscu_sees_utf8_names(finder, scp, tmp_path):
    out = tmp_path / "utf8"
    findscu(scp.port, "-S", ["PatientID=SCSRUSS", "PatientName"], out)
    (path,) = out.glob("rsp*.dcm")
    rsp = dcmread(path)
    assert rsp.SpecificCharacterSet == "ISO_IR 192"
    assert rsp.PatientName == "Люкceмбypг"


def test_a_c_find_answers_pending_then_success(finder, scp):
    answers = c_find(scp.port, study_query(PatientID="1CT1", ModalitiesInStudy=""))
    assert [status for status, _ in answers] == [PENDING] * 3 + [SUCCESS]
    assert {ds.StudyInstanceUID for status, ds in answers if status == PENDING} == CT1_STUDIES


def test_patient_root_patient_level_over_the_network(finder, scp):
    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientID = "1CT1"
    query.NumberOfPatientRelatedStudies = ""
    answers = c_find(scp.port, query, model=PatientRootQueryRetrieveInformationModelFind)
    assert [(s, ds.NumberOfPatientRelatedStudies if ds else None) for s, ds in answers] == [
        (PENDING, 3),
        (SUCCESS, None),
    ]


def test_a_device_without_find_gets_a_failure_status_and_a_log_line(scp, caplog):
    caplog.set_level(logging.WARNING)
    Device.objects.create(ae_title="NOFIND", host="127.0.0.1", port=104, find=False)
    reconfigure()
    answers = c_find(scp.port, study_query(), calling_ae="NOFIND")
    assert [status for status, _ in answers] == [NOT_AUTHORIZED]
    assert "C-FIND from NOFIND refused" in caplog.text
    assert "lacks the FIND permission" in caplog.text


@pytest.mark.parametrize("level", [None, "FRAME", "PATIENT"])
def test_no_unknown_or_out_of_model_level_is_identifier_does_not_match(finder, scp, level, caplog):
    """PS3.4 C.4.1.1.4: 0xA900. PATIENT is not a level of the Study Root model."""
    query = Dataset()
    if level:
        query.QueryRetrieveLevel = level
    query.PatientID = ""
    answers = c_find(scp.port, query)
    assert [status for status, _ in answers] == [IDENTIFIER_MISMATCH]
    assert "invalid identifier" in caplog.text


def test_an_invalid_value_is_identifier_does_not_match(finder, scp):
    answers = c_find(scp.port, study_query(StudyDate="2004-"))
    assert [status for status, _ in answers] == [IDENTIFIER_MISMATCH]


def test_a_cancel_mid_way_ends_the_answers_with_cancel(finder, scp, monkeypatch):
    """PS3.4 C.4.1.2.3 / PS3.7 9.1.2: a C-CANCEL ends the pending responses with 0xFE00."""
    real_find = studies_dimse.find

    def slow_find(*args, **kwargs):
        for answer in real_find(*args, **kwargs):
            time.sleep(0.05)
            yield answer

    monkeypatch.setattr(studies_dimse, "find", slow_find)
    ae = AE(ae_title="FINDSCU")
    model = StudyRootQueryRetrieveInformationModelFind
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="VESALIUS")
    assert assoc.is_established
    statuses = []
    try:
        context_id = assoc.accepted_contexts[0].context_id
        for rsp, _identifier in assoc.send_c_find(study_query(), model, msg_id=7):
            statuses.append(int(rsp.Status))
            if len(statuses) == 2:
                assoc.send_c_cancel(7, context_id)
    finally:
        assoc.release()
    assert statuses[-1] == CANCEL
    assert set(statuses[:-1]) == {PENDING}
    assert 2 <= len(statuses) - 1 < 40


def test_a_utf8_query_finds_a_name_in_another_character_set(finder, scp):
    """[ING-7]: stored from ISO 8859-5, queried in UTF-8 (ISO_IR 192), answered in UTF-8."""
    query = study_query(PatientName="люк*")
    query.SpecificCharacterSet = "ISO_IR 192"
    answers = c_find(scp.port, query)
    assert [status for status, _ in answers] == [PENDING, SUCCESS]
    assert answers[0][1].PatientName == "Люкceмбypг"
