"""WADO-URI (PS3.18 9) at /dicomweb/wado: the instance as application/dicom (as stored or
transcoded), or rendered as JPEG/PNG with window and size; bad requests as JSON."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.dicomweb import wado_fixtures
from tests.dicomweb.wado_fixtures import store_file, windowed

pytestmark = pytest.mark.django_db(transaction=True)
web = wado_fixtures.web

EXPLICIT = "1.2.840.10008.1.2.1"


def wado(web, item, **params):
    query = {
        "requestType": "WADO",
        "studyUID": item.study,
        "seriesUID": item.series,
        "objectUID": item.sop,
        **params,
    }
    return web.get(f"{web.root}/wado", params=query)


@pytest.fixture
def rle(live_pacs, corpus_dir):
    return store_file(corpus_dir / "dev" / "pydicom__MR_small_RLE.dcm")


def test_the_dicom_object_comes_back_as_stored_or_in_explicit_little_endian(web, rle):
    as_stored = wado(web, rle, contentType="application/dicom", transferSyntax="*")
    assert as_stored.status_code == 200
    assert as_stored.content == rle.data
    default = wado(web, rle, contentType="application/dicom")
    assert default.headers["Content-Type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
    ds = pydicom.dcmread(io.BytesIO(default.content))
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(rle.path).pixel_array)
    explicit_rle = wado(
        web, rle, contentType="application/dicom", transferSyntax="1.2.840.10008.1.2.5"
    )
    assert explicit_rle.content == rle.data


def test_an_image_defaults_to_jpeg_and_takes_window_and_size(web, rle):
    default = wado(web, rle)
    assert default.status_code == 200
    assert default.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(default.content)).format == "JPEG"
    png = wado(web, rle, contentType="image/png", windowCenter="600", windowWidth="800")
    expected = windowed(pydicom.dcmread(rle.path).pixel_array, 600, 800)
    shown = np.asarray(Image.open(io.BytesIO(png.content)))
    assert np.abs(shown.astype(int) - expected).max() <= 1
    sized = wado(web, rle, rows="32", columns="16")
    assert Image.open(io.BytesIO(sized.content)).size == (16, 16)


def test_a_frame_of_a_multi_frame_image(web, live_pacs, corpus_dir):
    item = store_file(corpus_dir / "dev" / "pydicom-data__emri_small.dcm")
    frames = pydicom.dcmread(item.path).pixel_array
    response = wado(
        web, item, contentType="image/png", frameNumber="6", windowCenter="300", windowWidth="600"
    )
    shown = np.asarray(Image.open(io.BytesIO(response.content)))
    assert np.abs(shown.astype(int) - windowed(frames[5], 300, 600)).max() <= 1


def test_a_non_image_object_defaults_to_application_dicom(web, live_pacs, corpus_dir):
    report = store_file(corpus_dir / "dev" / "pydicom__test-SR.dcm")
    response = wado(web, report, transferSyntax="*")
    assert response.headers["Content-Type"].startswith("application/dicom")
    assert response.content == report.data


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"requestType": "QIDO"}, "requestType"),
        ({"objectUID": ""}, "objectUID"),
        ({"windowCenter": "40"}, "windowCenter"),
        ({"windowCenter": "40", "windowWidth": "0"}, "window"),
        ({"rows": "0"}, "viewport"),
        ({"imageQuality": "500"}, "quality"),
        ({"frameNumber": "first"}, "frames"),
    ],
)
def test_bad_requests_are_400_with_a_json_reason(web, rle, params, field):
    response = wado(web, rle, **params)
    assert response.status_code == 400, params
    assert list(response.json()["errors"]) == [field]


def test_unknown_objects_and_unsupported_types_are_json_errors(web, rle):
    unknown = wado(web, rle, objectUID="1.2.3.4")
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "No such instance."
    missing_frame = wado(web, rle, frameNumber="2")
    assert missing_frame.status_code == 404
    wrong_type = wado(web, rle, contentType="image/gif")
    assert wrong_type.status_code == 406
    assert "contentType" in wrong_type.json()["message"]
    bad_syntax = wado(web, rle, contentType="application/dicom", transferSyntax="1.2.3")
    assert bad_syntax.status_code == 406
    assert "1.2.3" in bad_syntax.json()["message"]
