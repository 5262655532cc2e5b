"""Sequence matching (PS3.4 C.2.2.2.6) of the indexed sequence keys on the dev corpus:
ProcedureCodeSequence at STUDY level, RequestAttributesSequence at SERIES level. The items
are indexed at ingest, so no query opens a file."""

from __future__ import annotations

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from devices.models import Device
from studies.matching import InvalidIdentifier
from studies.models import SeriesRequestAttributes, StudyProcedureCode
from studies.query import find
from tests.conftest import reconfigure, running_scp
from tests.query.test_find_scp import findscu

US_KIDNEY_STUDY = "1.2.840.113696.376376.500.37977461.20170302142445"  # TOU0065
CT_BRAIN_STUDY = "1.2.840.113696.376376.500.43158802.99999999999999"  # CT0001
ECHO_STUDY = "1.2.826.0.1.3680043.2.1143.536994375713558855009808807549617714"  # 2501
CT_BRAIN_SERIES = "1.3.12.2.1107.5.1.4.65515.30000011111222233334444488888"
MR_OVERLAY_SERIES = "1.3.12.2.1107.5.2.30.25641.30010005113009191059300000190"


def item(**keys) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def query(level: str, sequence: str, items: list[Dataset], **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.StudyInstanceUID = ""
    if level == "SERIES":
        ds.SeriesInstanceUID = ""
    setattr(ds, sequence, Sequence(items))
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def answers(identifier: Dataset) -> dict[str, Dataset]:
    series = identifier.QueryRetrieveLevel == "SERIES"
    unique = "SeriesInstanceUID" if series else "StudyInstanceUID"
    return {rsp[unique].value: rsp for rsp in find(identifier, "study")}


def test_the_items_are_indexed_at_ingest(corpus_index):
    assert StudyProcedureCode.objects.filter(
        study__study_instance_uid=CT_BRAIN_STUDY,
        code_value="CT0001",
        coding_scheme_designator="SIEMENS_RIS",
        code_meaning="CT BRAIN WO IVCON",
    ).exists()
    assert SeriesRequestAttributes.objects.filter(
        series__series_instance_uid=CT_BRAIN_SERIES,
        requested_procedure_id="999887722",
        scheduled_procedure_step_id="999887722",
        accession_number="999887722",
    ).exists()


def test_a_study_matches_when_one_item_matches_the_key_item_c_2_2_2_6(corpus_index):
    found = answers(query("STUDY", "ProcedureCodeSequence", [item(CodeValue="CT0001")]))
    assert set(found) == {CT_BRAIN_STUDY}
    # The matching items come back with only the attributes asked for.
    returned = found[CT_BRAIN_STUDY].ProcedureCodeSequence
    assert len(returned) == 1
    assert returned[0].CodeValue == "CT0001"
    assert "CodeMeaning" not in returned[0]


def test_each_item_key_uses_its_own_matching_type_c_2_2_2_6(corpus_index):
    # Wild card (C.2.2.2.4) on CodeValue, single value on the designator, universal on the
    # meaning, which is returned.
    key = item(CodeValue="TOU*", CodingSchemeDesignator="SIEMENS_RIS", CodeMeaning="")
    found = answers(query("STUDY", "ProcedureCodeSequence", [key]))
    assert set(found) == {US_KIDNEY_STUDY}
    assert found[US_KIDNEY_STUDY].ProcedureCodeSequence[0].CodeMeaning == "US KIDNEY"


def test_every_item_key_must_match_the_same_item_c_2_2_2_6(corpus_index):
    key = item(CodeValue="CT0001", CodeMeaning="US KIDNEY")
    assert answers(query("STUDY", "ProcedureCodeSequence", [key])) == {}


def test_a_zero_length_item_is_universal_and_returns_the_whole_sequence_c_2_2_2_6(
    corpus_index,
):
    found = answers(query("STUDY", "ProcedureCodeSequence", [Dataset()]))
    assert {US_KIDNEY_STUDY, CT_BRAIN_STUDY, ECHO_STUDY} <= set(found)
    assert len(found) > 3  # studies without procedure codes match too
    echo = found[ECHO_STUDY].ProcedureCodeSequence[0]
    assert (echo.CodeValue, echo.CodingSchemeDesignator, echo.CodeMeaning) == (
        "2501",
        "SIEMENS_RIS",
        "ECHOCARDIOGRAM",
    )
    coded = {US_KIDNEY_STUDY, CT_BRAIN_STUDY, ECHO_STUDY}
    without = next(rsp for uid, rsp in found.items() if uid not in coded)
    assert len(without.ProcedureCodeSequence) == 0


def test_series_match_on_the_order_they_were_acquired_for_c_2_2_2_6(corpus_index):
    by_procedure = query(
        "SERIES", "RequestAttributesSequence", [item(RequestedProcedureID="8000000000330109")]
    )
    assert set(answers(by_procedure)) == {MR_OVERLAY_SERIES}
    by_step = query(
        "SERIES",
        "RequestAttributesSequence",
        [item(ScheduledProcedureStepID="999887722", AccessionNumber="")],
    )
    found = answers(by_step)
    assert set(found) == {CT_BRAIN_SERIES}
    assert found[CT_BRAIN_SERIES].RequestAttributesSequence[0].AccessionNumber == "999887722"


def test_a_study_sequence_key_matches_at_series_level_as_an_upper_level_key(corpus_index):
    found = answers(query("SERIES", "ProcedureCodeSequence", [item(CodeValue="CT0001")]))
    assert set(found) == {CT_BRAIN_SERIES}


def test_a_sequence_key_with_two_items_is_an_invalid_identifier(corpus_index):
    two = [item(CodeValue="CT0001"), item(CodeValue="2501")]
    with pytest.raises(InvalidIdentifier):
        find(query("STUDY", "ProcedureCodeSequence", two), "study")


def test_a_sequence_query_costs_a_fixed_number_of_queries(
    corpus_index, django_assert_max_num_queries
):
    # The page of matches, SOP classes aside, plus one query for the page's items.
    with django_assert_max_num_queries(2):
        list(find(query("STUDY", "ProcedureCodeSequence", [Dataset()]), "study"))


def test_findscu_matches_a_sequence_key_over_the_network(corpus_index_tx, tmp_path):
    Device.objects.create(ae_title="FINDSCU", host="127.0.0.1", port=11112, find=True)
    reconfigure()
    with running_scp() as server:
        found = findscu(
            server.port,
            "-S",
            ["(0008,1032)[0].(0008,0100)=CT0001", "(0008,1032)[0].(0008,0104)"],
            tmp_path / "out",
        )
    assert found == {CT_BRAIN_STUDY}
    response = dcmread(next((tmp_path / "out").glob("rsp*.dcm")))
    assert response.ProcedureCodeSequence[0].CodeMeaning == "CT BRAIN WO IVCON"
