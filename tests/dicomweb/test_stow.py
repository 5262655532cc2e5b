"""STOW-RS (PS3.18 10.5) through the one ingest service: responses, statuses and bad input.
The round trip of the whole corpus with dicomweb-client is in test_stow_roundtrip.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicomweb.stow import CANNOT_UNDERSTAND, DATA_SET_DOES_NOT_MATCH
from studies.models import Instance
from tests.dicom_helpers import make_dataset
from tests.dicomweb.conftest import MULTIPART_DICOM, multipart_body, part10_bytes, stored_files

DICOM_JSON = "application/dicom+json"


def stow(client, body: bytes, *, path: str = "studies", content_type: str = MULTIPART_DICOM):
    return client.post(
        f"/dicomweb/{path}", data=body, content_type=content_type, HTTP_ACCEPT=DICOM_JSON
    )


def answer(response) -> Dataset:
    assert response["Content-Type"] == DICOM_JSON
    return Dataset.from_json(response.json())


def temp_files(tmp_path: Path) -> list[Path]:
    return [path for path in (tmp_path / "temp").rglob("*") if path.is_file()]


def test_instances_are_stored_and_referenced_with_their_retrieve_urls(api, pacs_runtime, tmp_path):
    study_uid = generate_uid()
    datasets = [make_dataset(study_uid=study_uid) for _ in range(3)]
    response = stow(api, multipart_body([part10_bytes(ds) for ds in datasets]))
    assert response.status_code == 200
    result = answer(response)
    assert result.RetrieveURL == f"http://testserver/dicomweb/studies/{study_uid}"
    assert "FailedSOPSequence" not in result
    referenced = {item.ReferencedSOPInstanceUID: item for item in result.ReferencedSOPSequence}
    assert set(referenced) == {ds.SOPInstanceUID for ds in datasets}
    for ds in datasets:
        item = referenced[ds.SOPInstanceUID]
        assert item.ReferencedSOPClassUID == ds.SOPClassUID
        assert item.RetrieveURL == (
            f"http://testserver/dicomweb/studies/{study_uid}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}"
        )
    assert Instance.objects.count() == 3
    stored = {path.read_bytes() for path in stored_files(tmp_path)}
    assert stored == {part10_bytes(ds) for ds in datasets}  # byte for byte
    assert temp_files(tmp_path) == []


def test_a_second_copy_of_an_instance_is_referenced_and_kept_as_is(api, pacs_runtime):
    body = multipart_body([part10_bytes(make_dataset())])
    assert stow(api, body).status_code == 200
    again = stow(api, body)
    assert again.status_code == 200
    assert len(answer(again).ReferencedSOPSequence) == 1
    assert Instance.objects.count() == 1


def test_storing_into_a_study_refuses_instances_of_another_study(api, pacs_runtime, tmp_path):
    study_uid = generate_uid()
    ours, theirs = make_dataset(study_uid=study_uid), make_dataset()
    response = stow(
        api, multipart_body([part10_bytes(ours), part10_bytes(theirs)]), path=f"studies/{study_uid}"
    )
    assert response.status_code == 202
    result = answer(response)
    assert result.RetrieveURL == f"http://testserver/dicomweb/studies/{study_uid}"
    assert [item.ReferencedSOPInstanceUID for item in result.ReferencedSOPSequence] == [
        ours.SOPInstanceUID
    ]
    [failed] = result.FailedSOPSequence
    assert failed.FailureReason == DATA_SET_DOES_NOT_MATCH
    assert failed.ReferencedSOPInstanceUID == theirs.SOPInstanceUID
    assert failed.ReferencedSOPClassUID == theirs.SOPClassUID
    assert "another study" in response["Warning"]
    assert list(Instance.objects.values_list("sop_instance_uid", flat=True)) == [
        ours.SOPInstanceUID
    ]
    assert temp_files(tmp_path) == []


def test_a_request_with_only_instances_of_another_study_is_409(api, pacs_runtime):
    response = stow(
        api, multipart_body([part10_bytes(make_dataset())]), path=f"studies/{generate_uid()}"
    )
    assert response.status_code == 409
    assert answer(response).FailedSOPSequence[0].FailureReason == DATA_SET_DOES_NOT_MATCH
    assert not Instance.objects.exists()


def test_a_part_that_is_not_dicom_fails_with_a_reason_and_nothing_is_stored(
    api, pacs_runtime, tmp_path
):
    response = stow(api, multipart_body([b"this is not a DICOM file" * 20]))
    assert response.status_code == 400
    [failed] = answer(response).FailedSOPSequence
    assert failed.FailureReason == CANNOT_UNDERSTAND
    assert response["Warning"].startswith("299 ")
    assert '"part 1: ' in response["Warning"]  # the ingest service's reason
    assert not Instance.objects.exists()
    assert stored_files(tmp_path) == []
    assert temp_files(tmp_path) == []


def test_a_good_and_a_bad_part_store_the_good_one_with_202(api, pacs_runtime, tmp_path):
    good = make_dataset()
    response = stow(api, multipart_body([part10_bytes(good), b"\x00" * 300]))
    assert response.status_code == 202
    result = answer(response)
    assert result.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == good.SOPInstanceUID
    assert result.FailedSOPSequence[0].FailureReason == CANNOT_UNDERSTAND
    assert len(stored_files(tmp_path)) == 1


def test_a_part_of_another_media_type_fails_without_being_read_as_dicom(api, pacs_runtime):
    ds = make_dataset()
    response = stow(api, multipart_body([("text/plain", part10_bytes(ds))]))
    assert response.status_code == 400
    assert answer(response).FailedSOPSequence[0].FailureReason == CANNOT_UNDERSTAND
    assert "text/plain" in response["Warning"]
    assert not Instance.objects.exists()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        'multipart/related; type="application/dicom+json"; boundary=x',
        "multipart/form-data; boundary=x",
        "application/json",
    ],
)
def test_a_wrong_media_type_is_415_with_a_json_reason(api, pacs_runtime, content_type):
    body = multipart_body([part10_bytes(make_dataset())], boundary="x")
    response = stow(api, body, content_type=content_type)
    assert response.status_code == 415
    assert response.json()["message"]
    assert not Instance.objects.exists()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"--other\r\n\r\nabc\r\n--other--\r\n", MULTIPART_DICOM),  # not our boundary
        (multipart_body([part10_bytes(make_dataset())])[:-40], MULTIPART_DICOM),  # truncated
        (multipart_body([]), MULTIPART_DICOM),  # no part at all
        (b"", MULTIPART_DICOM),  # no body
        (b"--x\r\n\r\nabc\r\n--x--\r\n", 'multipart/related; type="application/dicom"'),
        (
            b"--x\r\nno colon here\r\n\r\nabc\r\n--x--",
            MULTIPART_DICOM.replace("vesalius-test-boundary", "x"),
        ),
    ],
    ids=["foreign-boundary", "truncated", "no-parts", "empty", "no-boundary", "bad-header"],
)
def test_a_malformed_multipart_body_is_400_and_stores_nothing(
    api, pacs_runtime, tmp_path, body, content_type
):
    response = stow(api, body, content_type=content_type)
    assert response.status_code == 400
    assert set(response.json()) == {"message", "errors"}
    assert not Instance.objects.exists()
    assert stored_files(tmp_path) == []
    assert temp_files(tmp_path) == []


def test_an_accept_the_response_cannot_have_is_406(api, pacs_runtime):
    response = api.post(
        "/dicomweb/studies",
        data=multipart_body([part10_bytes(make_dataset())]),
        content_type=MULTIPART_DICOM,
        HTTP_ACCEPT="application/dicom+xml",
    )
    assert response.status_code == 406
    assert not Instance.objects.exists()


def test_the_session_login_needs_its_csrf_token_to_store(pacs_runtime, user, client):
    client.force_login(user)
    client.handler.enforce_csrf_checks = True
    response = client.post(
        "/dicomweb/studies",
        data=multipart_body([part10_bytes(make_dataset())]),
        content_type=MULTIPART_DICOM,
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["message"]
    assert not Instance.objects.exists()
