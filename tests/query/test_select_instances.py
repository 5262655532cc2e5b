"""select_instances: what a C-MOVE / C-GET identifier names (PS3.4 C.4.2.2.1), on the dev
corpus."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from studies.matching import InvalidIdentifier, select_instances
from studies.models import Instance

BOOST_STUDY = "2.16.840.1.113662.2.12.0.3057.1241703565.35"  # CT + RTPLAN + RTSTRUCT, 3 series
BOOST_CT_SERIES = "2.16.840.1.113662.2.12.0.3057.1241703565.43"
NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"  # 3 instances, one series
NM_SERIES = "1.3.6.1.4.1.5962.1.3.8.1.20040826185059.5457"


def identifier(level: str | None, **keys) -> Dataset:
    ds = Dataset()
    if level is not None:
        ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def sop_uids(queryset) -> set[str]:
    return {instance.sop_instance_uid for instance in queryset}


def test_patient_level_selects_every_instance_of_the_patient(corpus_index):
    selected = select_instances(identifier("PATIENT", PatientID="1CT1"), "patient")
    assert len(selected) == 3
    assert {i.series.study.patient.patient_id for i in selected} == {"1CT1"}


def test_study_level_takes_a_list_of_study_uids(corpus_index):
    """PS3.4 C.2.2.2.2: StudyInstanceUID may be a list of UIDs at STUDY level."""
    selected = select_instances(
        identifier("STUDY", StudyInstanceUID=[BOOST_STUDY, NM_STUDY]), "study"
    )
    assert len(selected) == 6
    assert {i.series.study.study_instance_uid for i in selected} == {BOOST_STUDY, NM_STUDY}


def test_patient_root_study_level_matches_patient_id_when_present(corpus_index):
    matching = identifier("STUDY", PatientID="123456", StudyInstanceUID=BOOST_STUDY)
    assert len(select_instances(matching, "patient")) == 3
    other = identifier("STUDY", PatientID="1CT1", StudyInstanceUID=BOOST_STUDY)
    assert len(select_instances(other, "patient")) == 0
    assert len(select_instances(identifier("STUDY", StudyInstanceUID=BOOST_STUDY), "patient")) == 3


def test_series_level_selects_the_series(corpus_index):
    query = identifier("SERIES", StudyInstanceUID=BOOST_STUDY, SeriesInstanceUID=BOOST_CT_SERIES)
    selected = select_instances(query, "study")
    assert [i.series.series_instance_uid for i in selected] == [BOOST_CT_SERIES]


def test_image_level_selects_the_listed_instances(corpus_index):
    wanted = list(
        Instance.objects.filter(series__series_instance_uid=NM_SERIES).values_list(
            "sop_instance_uid", flat=True
        )[:2]
    )
    query = identifier(
        "IMAGE", StudyInstanceUID=NM_STUDY, SeriesInstanceUID=NM_SERIES, SOPInstanceUID=wanted
    )
    assert sop_uids(select_instances(query, "study")) == set(wanted)


def test_the_queryset_reaches_storage_and_study_without_more_queries(
    corpus_index, django_assert_num_queries
):
    query = identifier("STUDY", StudyInstanceUID=BOOST_STUDY)
    with django_assert_num_queries(1):
        paths = [
            (i.storage.path, i.series.study.study_instance_uid)
            for i in select_instances(query, "study")
        ]
    assert len(paths) == 3


@pytest.mark.parametrize(
    ("query", "model", "message"),
    [
        (identifier(None, StudyInstanceUID=BOOST_STUDY), "study", "no QueryRetrieveLevel"),
        (identifier("FRAME", StudyInstanceUID=BOOST_STUDY), "study", "unknown QueryRetrieveLevel"),
        (identifier("PATIENT", PatientID="1CT1"), "study", "not in the study root"),
        (identifier("PATIENT", PatientID=""), "patient", "PatientID is required"),
        (identifier("STUDY"), "study", "StudyInstanceUID is required"),
        (identifier("SERIES", SeriesInstanceUID=BOOST_CT_SERIES), "study", "StudyInstanceUID"),
        (
            identifier("IMAGE", StudyInstanceUID=NM_STUDY, SeriesInstanceUID=NM_SERIES),
            "study",
            "SOPInstanceUID",
        ),
        (identifier("STUDY", StudyInstanceUID=NM_STUDY), "worklist", "information model"),
    ],
)
def test_a_bad_identifier_raises_invalid_identifier(db, query, model, message):
    with pytest.raises(InvalidIdentifier, match=message):
        select_instances(query, model)
