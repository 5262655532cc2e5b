"""The MWL C-FIND SCP on its own port [MWL-2], with DCMTK ``findscu -W`` and the 13 query
files DCMTK ships, against the worklist imported from DCMTK's ``wlistdb``.

The expected answers are worked out from the matching rules (PS3.4 C.2.2.2, K.6.1.2), not
copied from a run. The ten items (file: patient, modality, station AE titles, start time):

    wklist1  VIVALDI    MR  AA32\\AA33             085607
    wklist2  VIVALDI    CT  AB45                  160700
    wklist3  VIVALDI    CR  CC56\\NN77             135558
    wklist4  HAYDN      US  AA32                  165709
    wklist5  HAYDN      CR  AB45\\DD56             094500
    wklist6  HAYDN      CT  FG56\\ER67\\JJ56\\TZ77   153600
    wklist7  BEETHOVEN  NM  AZ01                  140956
    wklist8  BEETHOVEN  CT  DS45\\NN77\\GH67       110856
    wklist9  MOZART     CT  AA67                  075644
    wklist10 MOZART     MR  TT67                  175609

None has a status, so all are SCHEDULED and every one is a worklist entry.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from devices.models import Device
from tests.conftest import configure_pacs, dcmtk_tool, reconfigure
from tests.worklist.conftest import make_procedure, running_worklist_scp
from worklist.choices import StepStatus
from worklist.importing import import_folder

PENDING, SUCCESS, NOT_AUTHORIZED = 0xFF00, 0x0000, 0x0124

VIVALDI, HAYDN = "VIVALDI^ANTONIO", "HAYDN^FRANZ^JOSEPH"
BEETHOVEN, MOZART = "BEETHOVEN^LUDWIG^VAN", "MOZART^WOLFGANG^AMADEUS"
EVERYONE = Counter({VIVALDI: 3, HAYDN: 3, BEETHOVEN: 2, MOZART: 2})

# Query file -> the patients of the answers (one answer per scheduled step).
EXPECTED = {
    # PatientName universal; RequestedProcedureCodeSequence is a return key: all ten.
    0: EVERYONE,
    # Every key zero length, the step item empty (universal sequence matching): all ten.
    1: EVERYONE,
    # ScheduledStationAETitle AA2 matches no item (single value matching: AA2 is no AE
    # title of any item, and AA32 is not AA2); ScheduledStationName A2 neither.
    2: Counter(),
    # Only PatientName and an empty step item: all ten.
    3: EVERYONE,
    # Modality DD: no item has it.
    4: Counter(),
    # ScheduledProcedureStepStartTime 120000- (range, from noon): wklist2, 3, 4, 6, 7, 10.
    5: Counter({VIVALDI: 2, HAYDN: 2, BEETHOVEN: 1, MOZART: 1}),
    # Station AE title AA2 again (6 to 9, with other keys beside it): none.
    6: Counter(),
    7: Counter(),
    8: Counter(),
    9: Counter(),
    # Return keys only, ScheduledProtocolCodeSequence with an empty item: all ten.
    10: EVERYONE,
    # Every key zero length, the step item with every key zero length: all ten.
    11: EVERYONE,
    # Station AE title AA4: none (the comments key "*" alone would match everything).
    12: Counter(),
}
# The step IDs of the afternoon steps of query 5.
AFTERNOON_STEP_IDS = {"SPD1342", "SPD4564", "SPD73843", "SPD9478", "SPD43645", "SPD4548"}


@pytest.fixture
def worklist_scp(transactional_db, tmp_path, wlistdb):
    """The worklist of DCMTK's wlistdb, and the MWL SCP on a free port."""
    configure_pacs(tmp_path, accept_any_ae=True)
    assert len(import_folder(wlistdb).imported) == 10
    with running_worklist_scp() as server:
        yield server
    reconfigure(accept_any_ae=False)


def findscu_worklist(port: int, query: Path, out: Path) -> list[Dataset]:
    """``findscu -W`` with a query file; the response identifiers it extracted."""
    out.mkdir(parents=True, exist_ok=True)
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
            "127.0.0.1",
            str(port),
            str(query),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return [dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


@pytest.mark.parametrize("number", sorted(EXPECTED))
def test_findscu_gets_what_the_matching_rules_give_for_each_dcmtk_query(
    worklist_scp, queries, tmp_path, number
):
    query = queries / f"wlistqry{number}.wl"
    answers = findscu_worklist(worklist_scp.port, query, tmp_path / "out")
    assert Counter(str(ds.PatientName) for ds in answers) == EXPECTED[number]
    asks_for_steps = "ScheduledProcedureStepSequence" in dcmread(query)
    for ds in answers:
        # One response per step, with the step's item when the query has the sequence.
        assert len(ds.get("ScheduledProcedureStepSequence", [])) == int(asks_for_steps)
    if number == 5:
        step_ids = {ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for ds in answers}
        assert step_ids == AFTERNOON_STEP_IDS
        assert all(
            ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime >= "12"
            for ds in answers
        )


def test_findscu_gets_every_requested_return_key_of_an_item(worklist_scp, queries, tmp_path):
    answers = findscu_worklist(worklist_scp.port, queries / "wlistqry11.wl", tmp_path / "out")
    vivaldi = next(ds for ds in answers if ds.StudyInstanceUID == "1.2.276.0.7230010.3.2.101")
    assert (vivaldi.AccessionNumber, vivaldi.PatientID, vivaldi.PatientBirthDate) == (
        "00000",
        "AV35674",
        "16780304",
    )
    assert (
        vivaldi.PatientSex,
        vivaldi.RequestedProcedureID,
        vivaldi.RequestedProcedurePriority,
    ) == (
        "M",
        "RP454G234",
        "LOW",
    )
    assert (vivaldi.MedicalAlerts, vivaldi.RequestingPhysician) == ("METASTASIS", "SMITH")
    step = vivaldi.ScheduledProcedureStepSequence[0]
    assert list(step.ScheduledStationAETitle) == ["AA32", "AA33"]
    assert (step.Modality, step.ScheduledProcedureStepStartDate) == ("MR", "19951015")
    assert (step.ScheduledProcedureStepID, step.ScheduledStationName) == ("SPD3445", "STN456")
    assert (step.ScheduledProcedureStepLocation, step.RequestedContrastAgent) == (
        "B34F56",
        "BARIUMSULFAT",
    )
    # Asked for and not known: returned zero length (PS3.4 C.2.2.1.2).
    assert "PreMedication" in step and not step.PreMedication


def mwl_find(
    port: int, query: Dataset, calling_ae: str = "MODALITY1"
) -> list[tuple[int, Dataset | None]]:
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="VESALIUS")
    assert assoc.is_established
    try:
        return [
            (int(rsp.Status), identifier)
            for rsp, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind)
        ]
    finally:
        assoc.release()


def _step_query(**step_keys) -> Dataset:
    query = Dataset()
    query.PatientName = ""
    query.AccessionNumber = ""
    item = Dataset()
    for keyword, value in step_keys.items():
        setattr(item, keyword, value)
    query.ScheduledProcedureStepSequence = [item]
    return query


def _accessions(results) -> list[str]:
    assert results[-1][0] == SUCCESS
    return sorted(identifier.AccessionNumber for status, identifier in results[:-1])


def test_a_station_ae_title_matches_any_value_of_a_multi_valued_item(worklist_scp):
    results = mwl_find(worklist_scp.port, _step_query(ScheduledStationAETitle="NN77"))
    assert _accessions(results) == ["00003", "00008"]
    results = mwl_find(worklist_scp.port, _step_query(ScheduledStationAETitle="J?56"))
    assert _accessions(results) == ["00006"]
    # A wildcard never runs across the backslash between two values.
    results = mwl_find(worklist_scp.port, _step_query(ScheduledStationAETitle="A*3"))
    assert _accessions(results) == ["00000"]
    results = mwl_find(worklist_scp.port, _step_query(ScheduledStationAETitle="AA3*7"))
    assert _accessions(results) == []


def test_it_matches_a_date_range_and_the_modality_together(worklist_scp):
    results = mwl_find(
        worklist_scp.port,
        _step_query(ScheduledProcedureStepStartDate="19960101-19960430", Modality="CT"),
    )
    assert _accessions(results) == ["00002", "00008"]


def test_it_returns_in_progress_steps_only_when_asked(worklist_scp):
    make_procedure(accession_number="BUSY", statuses=(StepStatus.IN_PROGRESS,))
    make_procedure(accession_number="DONE", statuses=(StepStatus.COMPLETED,))
    plain = _accessions(mwl_find(worklist_scp.port, _step_query(ScheduledStationAETitle="CT1")))
    assert plain == []
    asked = _step_query(ScheduledStationAETitle="CT1", ScheduledProcedureStepStatus="IN_PROGRESS")
    assert _accessions(mwl_find(worklist_scp.port, asked)) == ["BUSY"]
    both = _step_query(ScheduledProcedureStepStatus=["SCHEDULED", "IN PROGRESS"])
    assert len(_accessions(mwl_find(worklist_scp.port, both))) == 11


def test_it_refuses_a_device_without_the_mwl_permission(worklist_scp):
    reconfigure(accept_any_ae=False)
    Device.objects.create(ae_title="NOMWL", host="127.0.0.1", port=104, find=True, mwl=False)
    Device.objects.create(ae_title="WITHMWL", host="127.0.0.1", port=104, find=True, mwl=True)
    reconfigure(accept_any_ae=False)
    refused = mwl_find(worklist_scp.port, _step_query(), calling_ae="NOMWL")
    assert [status for status, _ in refused] == [NOT_AUTHORIZED]
    allowed = mwl_find(worklist_scp.port, _step_query(), calling_ae="WITHMWL")
    assert len(allowed) == 11


def test_it_answers_identifier_mismatch_for_a_bad_date(worklist_scp):
    results = mwl_find(worklist_scp.port, _step_query(ScheduledProcedureStepStartDate="2024XX01"))
    assert [status for status, _ in results] == [0xA900]
