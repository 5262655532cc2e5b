"""The query engine on the dev corpus: one test per PS3.4 C.2.2.2 matching type and per
level, through :func:`studies.query.find` (what the C-FIND SCP answers)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from studies.matching import InvalidIdentifier, wildcard_q
from studies.query import find
from studies.selectors import StudySearch, search_studies

BOOST_STUDY = "2.16.840.1.113662.2.12.0.3057.1241703565.35"  # CT + RTPLAN + RTSTRUCT
BOOST_CT_SERIES = "2.16.840.1.113662.2.12.0.3057.1241703565.43"
NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"  # 3 NM instances
NM_SERIES = "1.3.6.1.4.1.5962.1.3.8.1.20040826185059.5457"
CT1_STUDIES = {  # patient 1CT1: three CT studies
    "1.3.6.1.4.1.5962.1.2.1.20040826185059.5457",
    "1.3.6.1.4.1.5962.1.2.1.20031208063649.855",
    "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
}


def identifier(level: str, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def results(query: Dataset, model: str = "study") -> list[Dataset]:
    return list(find(query, model))


def studies(model: str = "study", **keys) -> set[str]:
    keys.setdefault("StudyInstanceUID", "")
    return {rsp.StudyInstanceUID for rsp in results(identifier("STUDY", **keys), model)}


# --- PS3.4 C.2.2.2.1 single value matching -------------------------------------------------


def test_single_value_matching_c_2_2_2_1(corpus_index):
    assert studies(PatientID="1CT1") == CT1_STUDIES
    assert studies(AccessionNumber="104111149") == {
        "1.2.840.113696.376376.500.37977461.20170302142445"
    }
    assert studies(StudyDate="20010316") == {"0.0.0.0.2.8811.20010413115754.12432"}
    assert studies(PatientID="1ct1") == set()  # LO: case-sensitive


def test_single_value_matching_of_person_names_ignores_case_c_2_2_2_1(corpus_index):
    assert studies(PatientName="compressedsamples^ct1") == CT1_STUDIES
    assert studies(PatientName="BUC^JÉRÔME") == {"1.3.6.1.4.1.5962.1.2.0.1175775772.5720.0"}


# --- PS3.4 C.2.2.2.2 list of UID matching ---------------------------------------------------


def test_list_of_uid_matching_c_2_2_2_2(corpus_index):
    assert studies(StudyInstanceUID=[BOOST_STUDY, NM_STUDY, "1.2.3.404"]) == {
        BOOST_STUDY,
        NM_STUDY,
    }
    assert studies(StudyInstanceUID=NM_STUDY) == {NM_STUDY}


# --- PS3.4 C.2.2.2.3 universal matching -----------------------------------------------------


def test_universal_matching_returns_every_study_and_the_key_c_2_2_2_3(corpus_index):
    from studies.models import Study

    answers = results(identifier("STUDY", StudyInstanceUID="", PatientName="", StudyDate=""))
    assert len(answers) == Study.objects.count()
    assert all("PatientName" in rsp and "StudyDate" in rsp for rsp in answers)


# --- PS3.4 C.2.2.2.4 wild card matching -----------------------------------------------------


def test_wild_card_matching_c_2_2_2_4(corpus_index):
    assert studies(PatientName="CompressedSamples^CT*") == CT1_STUDIES
    assert studies(PatientName="*samples^ct?") == CT1_STUDIES  # PN: case-insensitive
    assert studies(PatientName="*山田*") == {"1.3.6.1.4.1.5962.1.2.0.1175775771.5702.0"}
    assert studies(PatientID="1C?1") == CT1_STUDIES
    assert studies(PatientID="1c?1") == set()  # LO stays case-sensitive
    assert studies(StudyDescription="*Structured Reporting*") == {
        "1.2.276.0.7230010.3.1.4.2139363186.8948.974458936.5",
        "1.2.276.0.7230010.3.1.2.1787205428.166.1117461927.5",
        "1.2.276.0.7230010.3.1.4.2139363186.7819.982086466.2",
    }
    assert studies(PatientName="CompressedSamples") == set()  # no wildcard: whole value


def test_a_lone_star_is_universal_matching_c_2_2_2_4(corpus_index):
    assert studies(PatientName="*") == studies()


def test_wildcard_translation_uses_index_friendly_lookups():
    assert "startswith" in str(wildcard_q("f", "abc*"))
    assert "contains" in str(wildcard_q("f", "*abc*"))
    assert "endswith" in str(wildcard_q("f", "*abc"))
    assert "regex" in str(wildcard_q("f", "a?c"))
    assert "'^a\\\\.c.*$'" in str(wildcard_q("f", "a.c*?")) or "regex" in str(
        wildcard_q("f", "a.c*?")
    )


# --- PS3.4 C.2.2.2.5 range matching ---------------------------------------------------------


def test_range_matching_of_dates_with_both_and_open_ends_c_2_2_2_5(corpus_index):
    assert studies(StudyDate="20040101-20040131") == {"1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"}
    before = studies(StudyDate="-19960101")
    assert before == {
        "999.999.2.19960619.163000",
        "1.3.12.2.1107.5.4.3.123456789012345.19950922.121803.6",
        BOOST_STUDY,
    }
    after = studies(StudyDate="20180101-")
    assert after == {
        "1.2.840.113696.376376.500.43158802.99999999999999",
        "1.3.12.2.1107.5.2.43.67060.30000018121013085126000000053",
        "1.2.826.0.1.3680043.2.1143.536994375713558855009808807549617714",
        "1.3.12.2.1107.5.2.43.166018.30000018091013193045400000010",
    }


def test_range_matching_of_times_c_2_2_2_5(corpus_index):
    found = studies(StudyDate="20040826", StudyTime="1850-1851")
    assert NM_STUDY in found and len(found) == 6
    assert studies(StudyDate="20040826", StudyTime="-1200") == set()
    assert studies(PatientID="1CT1", StudyTime="07-") == {
        "1.3.6.1.4.1.5962.1.2.1.20040826185059.5457",
        "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
    }


def test_a_patient_birth_date_range_at_patient_level_c_2_2_2_5(corpus_index):
    found = results(
        identifier("PATIENT", PatientID="", PatientBirthDate="19500101-19501231"), "patient"
    )
    assert {rsp.PatientID for rsp in found} == {"5MR2", "0010"}


# --- Levels and hierarchical matching (PS3.4 C.4.1.3.1.1, C.6.1, C.6.2) ---------------------


def test_patient_level_returns_patients_with_their_counts_c_6_1_1_2(corpus_index):
    query = identifier(
        "PATIENT",
        PatientID="1CT1",
        PatientName="",
        NumberOfPatientRelatedStudies="",
        NumberOfPatientRelatedSeries="",
        NumberOfPatientRelatedInstances="",
    )
    (rsp,) = results(query, "patient")
    assert rsp.PatientName == "CompressedSamples^CT1"
    assert (
        rsp.NumberOfPatientRelatedStudies,
        rsp.NumberOfPatientRelatedSeries,
        rsp.NumberOfPatientRelatedInstances,
    ) == (3, 3, 3)


def test_study_level_returns_the_computed_study_keys_c_6_2_1_2(corpus_index):
    query = identifier(
        "STUDY",
        StudyInstanceUID=BOOST_STUDY,
        ModalitiesInStudy="",
        SOPClassesInStudy="",
        NumberOfStudyRelatedSeries="",
        NumberOfStudyRelatedInstances="",
    )
    (rsp,) = results(query)
    assert list(rsp.ModalitiesInStudy) == ["CT", "RTPLAN", "RTSTRUCT"]
    assert list(rsp.SOPClassesInStudy) == [
        "1.2.840.10008.5.1.4.1.1.2",
        "1.2.840.10008.5.1.4.1.1.481.3",
        "1.2.840.10008.5.1.4.1.1.481.5",
    ]
    assert (rsp.NumberOfStudyRelatedSeries, rsp.NumberOfStudyRelatedInstances) == (3, 3)


def test_modalities_in_study_matches_a_study_holding_any_listed_modality(corpus_index):
    assert BOOST_STUDY in studies(ModalitiesInStudy="RTPLAN")
    assert studies(ModalitiesInStudy=["RTSTRUCT", "NM"]) == {BOOST_STUDY, NM_STUDY}
    assert studies(SOPClassesInStudy="1.2.840.10008.5.1.4.1.1.481.3") == {BOOST_STUDY}


def test_series_level_within_a_study_c_6_2_1_3(corpus_index):
    query = identifier(
        "SERIES",
        StudyInstanceUID=BOOST_STUDY,
        SeriesInstanceUID="",
        Modality="CT",
        NumberOfSeriesRelatedInstances="",
    )
    (rsp,) = results(query)
    assert rsp.SeriesInstanceUID == BOOST_CT_SERIES
    assert rsp.StudyInstanceUID == BOOST_STUDY  # unique keys above the level come back
    assert rsp.NumberOfSeriesRelatedInstances == 1


def test_image_level_within_a_series_c_6_2_1_4(corpus_index):
    query = identifier(
        "IMAGE",
        StudyInstanceUID=NM_STUDY,
        SeriesInstanceUID=NM_SERIES,
        SOPInstanceUID="",
        InstanceNumber="",
        SOPClassUID="",
    )
    answers = results(query)
    assert sorted(rsp.InstanceNumber for rsp in answers) == [3, 4, 5]
    assert {rsp.SOPClassUID for rsp in answers} == {"1.2.840.10008.5.1.4.1.1.7"}
    assert (
        results(
            identifier(
                "IMAGE", StudyInstanceUID=NM_STUDY, SeriesInstanceUID=NM_SERIES, InstanceNumber="4"
            )
        )[0].InstanceNumber
        == 4
    )


def test_unique_keys_above_the_level_restrict_the_matches_c_4_1_3_1_1(corpus_index):
    """Hierarchical search: the unique keys of the upper levels select the parent."""
    query = identifier("SERIES", StudyInstanceUID=BOOST_STUDY, SeriesInstanceUID="")
    assert len(results(query)) == 3
    query = identifier("SERIES", StudyInstanceUID=NM_STUDY, SeriesInstanceUID="")
    assert [rsp.SeriesInstanceUID for rsp in results(query)] == [NM_SERIES]
    query = identifier("STUDY", PatientID="1CT1", StudyInstanceUID="")
    assert {rsp.StudyInstanceUID for rsp in results(query, "patient")} == CT1_STUDIES


def test_valued_keys_of_upper_levels_match_too_as_an_extension(corpus_index):
    """Not required by C.4.1.3.1.1; lets both models agree on the same query."""
    query = identifier("SERIES", StudyInstanceUID=BOOST_STUDY, SeriesInstanceUID="", PatientName="")
    assert len(results(query)) == 3
    query["PatientName"].value = "NOBODY"
    assert results(query) == []


def test_patient_root_and_study_root_agree_at_study_level(corpus_index):
    keys = {"PatientID": "1CT1", "StudyDate": "20040101-"}
    assert (
        studies("patient", **keys)
        == studies("study", **keys)
        == {
            "1.3.6.1.4.1.5962.1.2.1.20040826185059.5457",
            "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
        }
    )


# --- Character sets and return keys ---------------------------------------------------------


def test_non_ascii_answers_say_utf8_and_ascii_ones_carry_no_character_set(corpus_index):
    (rsp,) = results(identifier("STUDY", PatientID="SCSGREEK", PatientName="", StudyInstanceUID=""))
    assert rsp.SpecificCharacterSet == "ISO_IR 192"
    assert rsp.PatientName == "Διονυσιος"
    (rsp,) = results(identifier("STUDY", StudyInstanceUID=NM_STUDY, PatientName=""))
    assert "SpecificCharacterSet" not in rsp


def test_unknown_return_keys_come_back_empty(corpus_index):
    (rsp,) = results(
        identifier(
            "STUDY", StudyInstanceUID=NM_STUDY, OtherPatientIDs="", ReferencedStudySequence=[]
        )
    )
    assert "OtherPatientIDs" in rsp and not rsp.OtherPatientIDs
    assert len(rsp.ReferencedStudySequence) == 0


def test_a_study_query_costs_a_fixed_number_of_queries(corpus_index, django_assert_max_num_queries):
    query = identifier(
        "STUDY",
        StudyInstanceUID="",
        PatientName="",
        SOPClassesInStudy="",
        ModalitiesInStudy="",
        NumberOfPatientRelatedInstances="",
    )
    with django_assert_max_num_queries(2):
        assert len(results(query)) > 40


# --- Bad identifiers --------------------------------------------------------------------------


def raw_identifier(level: str, tag: int, vr: str, value: bytes) -> Dataset:
    """An identifier as received: the bad value stays raw until it is read."""
    from pydicom.dataelem import RawDataElement

    ds = identifier(level)
    ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
    return ds


@pytest.mark.parametrize(
    "make_query",
    [
        Dataset,
        lambda: identifier("FRAME"),
        lambda: raw_identifier("STUDY", 0x00080020, "DA", b"2004-01 "),
        lambda: raw_identifier("STUDY", 0x00080020, "DA", b"- "),
        lambda: raw_identifier("IMAGE", 0x00200013, "IS", b"four"),
    ],
)
def test_a_bad_identifier_raises_before_any_answer(db, make_query):
    with pytest.raises(InvalidIdentifier):
        find(make_query(), "study")


def test_patient_level_is_not_in_the_study_root_model(db):
    with pytest.raises(InvalidIdentifier, match="not in the study root"):
        find(identifier("PATIENT", PatientID=""), "study")


# --- The console search is on the same engine [QR-5] -----------------------------------------


def test_the_console_search_finds_what_c_find_finds(corpus_index):
    console = {
        s.study_instance_uid for s in search_studies(StudySearch(search="compressedsamples^c"))
    }
    assert console == studies(PatientName="compressedsamples^c*") and console >= CT1_STUDIES
