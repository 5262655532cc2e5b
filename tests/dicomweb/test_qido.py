"""QIDO-RS (PS3.18 10.6) over the dev corpus: the six search resources, the attributes OHIF
asks for, includefield / limit / offset / fuzzymatching, media types and bad input."""

from __future__ import annotations

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from studies.models import Instance, Series, Study

CT_SMALL_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
DICOM_JSON = "application/dicom+json"


def qido(client, path: str, **params):
    response = client.get(f"/dicomweb/{path}", params, HTTP_ACCEPT=DICOM_JSON)
    return response


def values(results: list[dict], tag: str) -> list:
    return [item[tag]["Value"][0] for item in results if "Value" in item.get(tag, {})]


def a_series_with_instances(count: int) -> Series:
    return Series.objects.filter(number_of_instances__gte=count).select_related("study").first()


def test_the_studies_search_returns_every_study_in_dicom_json(api, indexed_corpus):
    response = qido(api, "studies")
    assert response.status_code == 200
    assert response["Content-Type"] == DICOM_JSON
    results = response.json()
    assert set(values(results, "0020000D")) == set(
        Study.objects.values_list("study_instance_uid", flat=True)
    )
    for item in results:
        Dataset.from_json(item)  # valid PS3.18 F.2 JSON


def test_a_study_carries_the_attributes_ohif_shows(api, indexed_corpus):
    study = Study.objects.get(study_instance_uid=CT_SMALL_STUDY)
    response = qido(api, "studies", StudyInstanceUID=CT_SMALL_STUDY)
    [item] = response.json()
    assert item["00201208"] == {"vr": "IS", "Value": [study.number_of_instances]}
    assert item["00201206"] == {"vr": "IS", "Value": [study.number_of_series]}
    assert item["00080061"]["Value"] == ["CT"]
    assert item["00100010"]["Value"][0]["Alphabetic"] == "CompressedSamples^CT1"
    assert item["00081190"]["Value"] == [f"http://testserver/dicomweb/studies/{CT_SMALL_STUDY}"]
    assert "00080052" not in item  # QueryRetrieveLevel is a C-FIND key only


def test_a_series_carries_its_number_of_instances_and_retrieve_url(api, indexed_corpus):
    series = a_series_with_instances(2)
    study_uid = series.study.study_instance_uid
    response = qido(api, f"studies/{study_uid}/series")
    assert response.status_code == 200
    by_uid = {item["0020000E"]["Value"][0]: item for item in response.json()}
    item = by_uid[series.series_instance_uid]
    assert item["00201209"]["Value"] == [series.number_of_instances]
    assert item["00081190"]["Value"] == [
        f"http://testserver/dicomweb/studies/{study_uid}/series/{series.series_instance_uid}"
    ]
    assert set(by_uid) == set(series.study.series.values_list("series_instance_uid", flat=True))


def test_the_instances_of_a_series_are_listed_with_their_retrieve_urls(api, indexed_corpus):
    series = a_series_with_instances(2)
    study_uid = series.study.study_instance_uid
    response = qido(api, f"studies/{study_uid}/series/{series.series_instance_uid}/instances")
    results = response.json()
    expected = set(series.instances.values_list("sop_instance_uid", flat=True))
    assert set(values(results, "00080018")) == expected
    for item in results:
        sop_uid = item["00080018"]["Value"][0]
        assert item["00081190"]["Value"] == [
            f"http://testserver/dicomweb/studies/{study_uid}/series/"
            f"{series.series_instance_uid}/instances/{sop_uid}"
        ]
        assert "00080016" in item and "00200013" in item


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("series", lambda: Series.objects.values_list("series_instance_uid", flat=True)),
        ("instances", lambda: Instance.objects.values_list("sop_instance_uid", flat=True)),
    ],
)
def test_the_all_series_and_all_instances_resources_cover_the_index(
    api, indexed_corpus, path, expected
):
    response = qido(api, path, limit=1000)
    tag = "0020000E" if path == "series" else "00080018"
    results = response.json()
    assert set(values(results, tag)) == set(expected())
    # Outside a study the study attributes come along (PS3.18 10.6.3.3.1).
    assert all("0020000D" in item and "00100020" in item for item in results)


def test_the_instances_of_a_study_carry_series_attributes(api, indexed_corpus):
    series = a_series_with_instances(2)
    response = qido(api, f"studies/{series.study.study_instance_uid}/instances")
    results = response.json()
    assert set(values(results, "00080018")) == set(
        Instance.objects.filter(series__study=series.study).values_list(
            "sop_instance_uid", flat=True
        )
    )
    assert all("0020000E" in item and "00080060" in item for item in results)


@pytest.mark.parametrize("separator", ["\\", ","])
def test_a_list_of_study_uids_matches_each(api, indexed_corpus, separator):
    uids = sorted(Study.objects.values_list("study_instance_uid", flat=True))[:3]
    response = qido(api, "studies", StudyInstanceUID=separator.join(uids))
    assert sorted(values(response.json(), "0020000D")) == uids


def test_attributes_are_named_by_keyword_or_by_tag(api, indexed_corpus):
    by_keyword = qido(api, "studies", PatientID="4MR1").json()
    by_tag = qido(api, "studies", **{"00100020": "4MR1"}).json()
    assert by_keyword == by_tag
    assert by_keyword and set(values(by_keyword, "00100020")) == {"4MR1"}


def test_includefield_adds_attributes_by_list_repeat_and_all(api, indexed_corpus):
    plain = qido(api, "studies", StudyInstanceUID=CT_SMALL_STUDY).json()[0]
    assert "00080062" not in plain  # SOPClassesInStudy is not a default attribute
    response = api.get(
        "/dicomweb/studies",
        {"StudyInstanceUID": CT_SMALL_STUDY, "includefield": ["00080062,00101010", "00081030"]},
        HTTP_ACCEPT=DICOM_JSON,
    )
    [item] = response.json()
    assert item["00080062"]["Value"] == ["1.2.840.10008.5.1.4.1.1.2"]
    assert item["00101010"] == {"vr": "AS"}  # not indexed: returned empty, as C-FIND does
    assert "00081030" in item
    [every] = qido(api, "studies", StudyInstanceUID=CT_SMALL_STUDY, includefield="all").json()
    assert {"00080062", "00201206", "00201208", "00080061", "00100030"} <= set(every)


def test_limit_and_offset_page_through_the_matches(api, indexed_corpus):
    everything = values(qido(api, "studies").json(), "0020000D")
    assert len(everything) > 5
    pages = []
    for offset in range(0, len(everything), 4):
        page = qido(api, "studies", limit=4, offset=offset)
        assert "Warning" not in page
        pages += values(page.json(), "0020000D")
    assert pages == everything
    assert qido(api, "studies", offset=len(everything)).json() == []


def test_a_limit_over_the_servers_maximum_is_capped_with_a_warning(
    api, indexed_corpus, monkeypatch
):
    monkeypatch.setattr("dicomweb.qido.MAX_RESULTS", 3)
    response = qido(api, "studies")
    assert len(response.json()) == 3
    assert response["Warning"].startswith("299 ")
    assert "exceeded the maximum" in response["Warning"]


def test_fuzzymatching_is_accepted_and_answered_with_a_warning(api, indexed_corpus):
    response = qido(api, "studies", PatientID="4MR1", fuzzymatching="true")
    assert response.status_code == 200
    assert response.json()
    assert "fuzzymatching parameter is not supported" in response["Warning"]
    assert "Warning" not in qido(api, "studies", PatientID="4MR1", fuzzymatching="false")


def test_no_match_is_an_empty_array(api, indexed_corpus):
    response = qido(api, "studies", PatientID="NOBODY-AT-ALL")
    assert response.status_code == 200
    assert response.json() == []


def test_plain_json_is_served_when_asked_for(api, indexed_corpus):
    response = api.get("/dicomweb/studies", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()


def test_an_accept_without_a_json_type_is_406_with_a_json_reason(api, indexed_corpus):
    response = api.get(
        "/dicomweb/studies", HTTP_ACCEPT='multipart/related; type="application/dicom+xml"'
    )
    assert response.status_code == 406
    assert response.json()["message"]


@pytest.mark.parametrize(
    "path",
    [
        "studies/1.2.3.999/series",
        "studies/1.2.3.999/instances",
        f"studies/{CT_SMALL_STUDY}/series/1.2.3.999/instances",
    ],
)
def test_an_unknown_target_study_or_series_is_404(api, indexed_corpus, path):
    response = qido(api, path)
    assert response.status_code == 404
    assert response.json() == {"message": response.json()["message"], "errors": {}}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"NoSuchKeyword": "x"}, "NoSuchKeyword"),
        ({"00091001": "x"}, "00091001"),
        ({"limit": "-1"}, "limit"),
        ({"offset": "many"}, "offset"),
        ({"fuzzymatching": "perhaps"}, "fuzzymatching"),
        ({"includefield": "NotAnAttribute"}, "NotAnAttribute"),
        ({"00101002.00100020": "x"}, "00101002.00100020"),
        ({"QueryRetrieveLevel": "PATIENT"}, "QueryRetrieveLevel"),
        ({"ReferencedStudySequence": "x"}, "ReferencedStudySequence"),
    ],
)
def test_bad_query_parameters_are_400_with_the_field_named(api, indexed_corpus, params, field):
    response = qido(api, "studies", **params)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_a_value_its_vr_does_not_allow_is_400(api, indexed_corpus):
    response = qido(api, "studies", StudyDate="yesterday")
    assert response.status_code == 400
    assert "DA" in response.json()["message"]


def test_the_response_values_round_trip_to_what_the_files_hold(api, indexed_corpus, corpus_dir):
    path = corpus_dir / "dev" / "pydicom__CT_small.dcm"
    source = dcmread(path, stop_before_pixels=True)
    [item] = qido(api, "studies", StudyInstanceUID=CT_SMALL_STUDY).json()
    ds = Dataset.from_json(item)
    assert ds.PatientID == source.PatientID
    assert ds.StudyDate == source.StudyDate
    assert ds.PatientName == source.PatientName


def test_names_in_other_scripts_are_matched_and_returned_as_unicode(api, pacs_runtime):
    import io

    from studies.services import Origin, store_stream
    from tests.dicom_helpers import make_dataset
    from tests.dicomweb.conftest import part10_bytes

    ds = make_dataset(patient_name="Иванов^Пётр", charset="ISO_IR 144", patient_id="CYR-1")
    store_stream(io.BytesIO(part10_bytes(ds)), origin=Origin("import"))
    [item] = qido(api, "studies", PatientName="иванов*").json()
    assert item["00100010"]["Value"] == [{"Alphabetic": "Иванов^Пётр"}]
    assert Dataset.from_json(item).PatientName == "Иванов^Пётр"
