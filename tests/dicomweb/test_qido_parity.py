"""QIDO-RS and C-FIND run the same query engine [QR-1], [WEB-3]: for a table of queries over
the dev corpus, dicomweb-client against the live server and pynetdicom against the SCP
return the same UIDs."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from devices.models import Device
from studies.models import Series, Study
from tests.conftest import reconfigure, running_scp
from tests.query.conftest import ingest_corpus
from tests.query.test_find_scp import c_find

CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
MR_STUDY = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
UNIQUE = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
TAGS = {"STUDY": "0020000D", "SERIES": "0020000E", "IMAGE": "00080018"}

# (QIDO resource, its path UIDs, query parameters = C-FIND matching keys)
QUERIES = [
    ("studies", {}, {}),
    ("studies", {}, {"PatientName": "compressed*"}),  # case-insensitive PN prefix
    ("studies", {}, {"PatientName": "*^CT?"}),
    ("studies", {}, {"PatientID": "4MR1"}),
    ("studies", {}, {"StudyDate": "20040101-20041231"}),
    ("studies", {}, {"StudyDate": "-20000101"}),
    ("studies", {}, {"StudyTime": "070000-"}),
    ("studies", {}, {"ModalitiesInStudy": "MR"}),
    ("studies", {}, {"ModalitiesInStudy": "CT\\US"}),
    ("studies", {}, {"StudyInstanceUID": f"{CT_STUDY}\\{MR_STUDY}"}),
    ("studies", {}, {"PatientSex": "F"}),
    ("studies", {}, {"AccessionNumber": "*1*"}),
    ("series", {}, {"Modality": "CT"}),
    ("series", {}, {"Modality": "MR", "PatientID": "4MR1"}),
    ("series", {}, {"SeriesNumber": "1"}),
    ("series", {"study_instance_uid": CT_STUDY}, {}),
    ("instances", {}, {"SOPClassUID": CT_IMAGE_STORAGE}),
    ("instances", {}, {"InstanceNumber": "1", "Modality": "MR"}),
    ("instances", {"study_instance_uid": MR_STUDY}, {}),
]
LEVELS = {"studies": "STUDY", "series": "SERIES", "instances": "IMAGE"}


@pytest.fixture
def searched(live_pacs, corpus_dir, dicomweb):
    """The corpus indexed and committed, the live DICOMweb server and the C-FIND SCP."""
    assert ingest_corpus(corpus_dir) > 50
    Device.objects.create(ae_title="FINDSCU", host="127.0.0.1", port=11112, find=True)
    reconfigure()
    with running_scp() as scp:
        yield dicomweb, scp.port


def qido_uids(client, resource: str, path_uids: dict, params: dict) -> set[str]:
    search = {
        "studies": client.search_for_studies,
        "series": client.search_for_series,
        "instances": client.search_for_instances,
    }[resource]
    results = search(search_filters=params, **path_uids)
    tag = TAGS[LEVELS[resource]]
    return {item[tag]["Value"][0] for item in results}


def c_find_uids(port: int, resource: str, path_uids: dict, params: dict) -> set[str]:
    level = LEVELS[resource]
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword, value in params.items():
        setattr(query, keyword, value)
    if "study_instance_uid" in path_uids:
        query.StudyInstanceUID = path_uids["study_instance_uid"]
    setattr(query, UNIQUE[level], getattr(query, UNIQUE[level], ""))
    answers = c_find(port, query)
    assert answers[-1][0] == 0x0000
    return {str(getattr(identifier, UNIQUE[level])) for _status, identifier in answers[:-1]}


def test_qido_rs_and_c_find_return_the_same_uids_for_each_query(searched):
    client, port = searched
    non_empty = 0
    for resource, path_uids, params in QUERIES:
        over_qido = qido_uids(client, resource, path_uids, params)
        over_c_find = c_find_uids(port, resource, path_uids, params)
        assert over_qido == over_c_find, (resource, path_uids, params)
        non_empty += bool(over_qido)
    assert non_empty >= len(QUERIES) - 3  # the table exercises real matches
    assert qido_uids(client, "studies", {}, {}) == set(
        Study.objects.values_list("study_instance_uid", flat=True)
    )
    assert qido_uids(client, "series", {}, {}) == set(
        Series.objects.values_list("series_instance_uid", flat=True)
    )
