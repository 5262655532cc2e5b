"""Every file of corpus/dev through STOW-RS with dicomweb-client against the live server:
stored byte for byte (or refused with the ingest service's reason, as a C-STORE or an import
would be), found again by QIDO-RS and retrieved back by WADO-RS, byte-identical "as stored"."""

from __future__ import annotations

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicomweb.stow import CANNOT_UNDERSTAND
from studies.models import Instance
from tests.dicom_helpers import make_dataset
from tests.ingest.test_store_instance import EXPECTED_REFUSED, files_under, stored_path

AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def stow_file_bytes(client: DICOMwebClient, data: bytes) -> tuple[int, Dataset]:
    """POST one file's own bytes with the client's multipart encoder (its public
    store_instances re-encodes a pydicom Dataset, which would not be the file's bytes)."""
    url = f"{client.base_url}/studies"
    try:
        return 200, client._http_post_multipart_application_dicom(url, [data])
    except requests.HTTPError as error:
        return error.response.status_code, Dataset.from_json(error.response.json())


def retrieve_as_stored(client: DICOMwebClient, study: str, series: str, sop: str) -> bytes:
    url = f"{client.base_url}/studies/{study}/series/{series}/instances/{sop}"
    response = client._http_get(url, headers={"Accept": AS_STORED})
    [part] = list(client._decode_multipart_message(response, stream=False))
    return part


def test_every_corpus_file_goes_through_stow_qido_and_wado_unchanged(dicomweb, corpus_dir):
    first_file: dict[str, bytes] = {}
    refused: dict[str, int] = {}
    for path in files_under(corpus_dir / "dev"):
        data = path.read_bytes()
        status, result = stow_file_bytes(dicomweb, data)
        if path.name in EXPECTED_REFUSED:
            assert status == 400, path.name
            refused[path.name] = result.FailedSOPSequence[0].FailureReason
            continue
        assert status == 200, (path.name, status)
        [item] = result.ReferencedSOPSequence
        first_file.setdefault(item.ReferencedSOPInstanceUID, data)  # duplicates: kept as is
    assert refused == dict.fromkeys(EXPECTED_REFUSED, CANNOT_UNDERSTAND)
    assert Instance.objects.count() == len(first_file)

    for sop_uid, data in first_file.items():
        instance = Instance.objects.select_related("storage").get(sop_instance_uid=sop_uid)
        assert stored_path(instance).read_bytes() == data, sop_uid
        [found] = dicomweb.search_for_instances(search_filters={"SOPInstanceUID": sop_uid})
        study = found["0020000D"]["Value"][0]
        series = found["0020000E"]["Value"][0]
        assert retrieve_as_stored(dicomweb, study, series, sop_uid) == data, sop_uid


def test_store_instances_into_a_study_with_the_public_client_api(dicomweb):
    study_uid = generate_uid()
    datasets = [make_dataset(study_uid=study_uid, patient_id="STOW-1") for _ in range(2)]
    for ds in datasets:
        ds.preamble = b"\0" * 128  # the client writes as is; its reader wants a Part 10 file
    result = dicomweb.store_instances(datasets, study_instance_uid=study_uid)
    assert {item.ReferencedSOPInstanceUID for item in result.ReferencedSOPSequence} == {
        ds.SOPInstanceUID for ds in datasets
    }
    [study] = dicomweb.search_for_studies(search_filters={"PatientID": "STOW-1"})
    assert study["00201208"]["Value"] == [2]
    retrieved = dicomweb.retrieve_instance(
        study_uid, datasets[0].SeriesInstanceUID, datasets[0].SOPInstanceUID
    )
    assert retrieved.SOPInstanceUID == datasets[0].SOPInstanceUID
    assert retrieved.PixelData == datasets[0].PixelData
    # GET /studies/{study} (the route STOW-RS shares) is the WADO-RS study retrieval.
    whole_study = dicomweb.retrieve_study(study_uid)
    assert {ds.SOPInstanceUID for ds in whole_study} == {ds.SOPInstanceUID for ds in datasets}
