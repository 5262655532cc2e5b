"""WADO-RS rendered and thumbnail resources (PS3.18 8.3.5, 10.4.1.1.3-4): output pixels
checked against the Modality LUT and the windowing formula of PS3.3 C.11.2.1.2, windows from
the query or the dataset, viewport and quality, colour, and bad parameters."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.dicomweb import wado_fixtures
from tests.dicomweb.wado_fixtures import (
    multipart_parts,
    part10,
    store_bytes,
    store_corpus,
    store_file,
    store_series,
    windowed,
)

pytestmark = pytest.mark.django_db(transaction=True)
web = wado_fixtures.web


def image(response) -> np.ndarray:
    assert response.status_code == 200, response.text[:300]
    return np.asarray(Image.open(io.BytesIO(response.content)))


def instance_url(root: str, item) -> str:
    return f"{root}/studies/{item.study}/series/{item.series}/instances/{item.sop}"


@pytest.fixture
def ct(live_pacs, corpus_dir):
    return store_file(corpus_dir / "dev" / "pydicom__CT_small.dcm")  # rescale -1024, no window


def test_a_window_from_the_query_is_applied_after_the_modality_lut(web, ct):
    response = web.get(
        f"{instance_url(web.root, ct)}/rendered",
        params={"window": "40,400,linear"},
        headers={"Accept": "image/png"},
    )
    assert response.headers["Content-Type"] == "image/png"
    ds = pydicom.dcmread(ct.path)
    hounsfield = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = windowed(hounsfield, 40, 400)
    shown = image(response)
    assert shown.shape == (128, 128)
    assert np.abs(shown.astype(int) - expected).max() <= 1
    assert len(np.unique(shown)) > 50  # not saturated: the window really falls inside


@pytest.mark.parametrize(
    ("function", "formula"),
    [
        # PS3.3 C.11.2.1.3.2 and C.11.2.1.3.1, to 8 bits.
        ("linear_exact", lambda x, c, w: np.clip(((x - c) / w + 0.5) * 255, 0, 255)),
        ("sigmoid", lambda x, c, w: 255 / (1 + np.exp(-4 * (x - c) / w))),
    ],
)
def test_the_linear_exact_and_sigmoid_functions(web, ct, function, formula):
    response = web.get(
        f"{instance_url(web.root, ct)}/rendered",
        params={"window": f"40,400,{function}"},
        headers={"Accept": "image/png"},
    )
    ds = pydicom.dcmread(ct.path)
    hounsfield = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.abs(image(response).astype(int) - formula(hounsfield, 40, 400)).max() <= 1


def test_the_window_of_the_dataset_is_used_when_the_query_has_none(web, live_pacs, corpus_dir):
    item = store_file(corpus_dir / "dev" / "pydicom__MR_small.dcm")  # WC 600, WW 1600
    response = web.get(f"{instance_url(web.root, item)}/rendered", headers={"Accept": "image/png"})
    expected = windowed(pydicom.dcmread(item.path).pixel_array, 600, 1600)
    assert np.abs(image(response).astype(int) - expected).max() <= 1


def test_without_any_window_the_data_range_is_shown(web, ct):
    response = web.get(f"{instance_url(web.root, ct)}/rendered", headers={"Accept": "image/png"})
    shown = image(response)
    assert (shown.min(), shown.max()) == (0, 255)


def test_a_compressed_instance_renders_like_its_native_twin(web, live_pacs, corpus_dir):
    native = store_file(corpus_dir / "dev" / "pydicom__MR_small.dcm")
    params, accept = {"window": "500,1000"}, {"Accept": "image/png"}
    expected = image(
        web.get(f"{instance_url(web.root, native)}/rendered", params=params, headers=accept)
    )
    # The compressed variant shares the SOP Instance UID: store it under a new one.
    ds = pydicom.dcmread(corpus_dir / "dev" / "pydicom__MR_small_jpeg_ls_lossless.dcm")
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    compressed = store_bytes(part10(ds))
    shown = image(
        web.get(f"{instance_url(web.root, compressed)}/rendered", params=params, headers=accept)
    )
    assert np.array_equal(shown, expected)


def test_monochrome1_is_inverted(web, live_pacs, corpus_dir):
    item = store_file(corpus_dir / "dev" / "dicomdir_fileset" / "77654033" / "CR1" / "6154")
    ds = pydicom.dcmread(item.path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    response = web.get(
        f"{instance_url(web.root, item)}/rendered",
        params={"window": "2000,4000"},
        headers={"Accept": "image/png"},
    )
    values = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(
        ds.get("RescaleIntercept", 0)
    )
    assert np.abs(image(response).astype(int) - (255 - windowed(values, 2000, 4000))).max() <= 1


def test_colour_images_keep_their_colours(web, live_pacs, corpus_dir):
    item = store_file(corpus_dir / "dev" / "pydicom__examples_rgb_color.dcm")
    response = web.get(f"{instance_url(web.root, item)}/rendered", headers={"Accept": "image/png"})
    assert np.array_equal(image(response), pydicom.dcmread(item.path).pixel_array)


def test_a_frame_of_a_multi_frame_instance_is_rendered(web, live_pacs, corpus_dir):
    item = store_file(corpus_dir / "dev" / "pydicom-data__emri_small.dcm")
    frames = pydicom.dcmread(item.path).pixel_array
    response = web.get(
        f"{instance_url(web.root, item)}/frames/4/rendered",
        params={"window": "300,600"},
        headers={"Accept": "image/png"},
    )
    assert np.abs(image(response).astype(int) - windowed(frames[3], 300, 600)).max() <= 1
    several = web.get(
        f"{instance_url(web.root, item)}/frames/1,2/rendered", headers={"Accept": "image/jpeg"}
    )
    assert [headers["content-type"] for headers, _ in multipart_parts(several)] == [
        "image/jpeg",
        "image/jpeg",
    ]


def test_viewport_scales_to_fit_and_quality_changes_the_jpeg(dicomweb, web, ct):
    small = dicomweb.retrieve_instance_rendered(
        ct.study, ct.series, ct.sop, media_types=("image/jpeg",), params={"viewport": "64,32"}
    )
    assert Image.open(io.BytesIO(small)).size == (32, 32)  # aspect ratio kept
    rough = web.get(f"{instance_url(web.root, ct)}/rendered", params={"quality": "5"})
    fine = web.get(f"{instance_url(web.root, ct)}/rendered", params={"quality": "100"})
    assert rough.headers["Content-Type"] == "image/jpeg"
    assert len(rough.content) < len(fine.content)
    cropped = web.get(
        f"{instance_url(web.root, ct)}/rendered",
        params={"viewport": "32,32,0,0,64,64"},
        headers={"Accept": "image/png"},
    )
    whole = image(
        web.get(f"{instance_url(web.root, ct)}/rendered", headers={"Accept": "image/png"})
    )
    assert image(cropped).shape == (32, 32)
    assert abs(float(image(cropped).mean()) - float(whole[:64, :64].mean())) < 8


def test_series_and_study_rendered_are_one_image_per_instance(web, live_pacs):
    series = store_series(3)
    response = web.get(f"{web.root}/studies/{series[0].study}/series/{series[0].series}/rendered")
    parts = multipart_parts(response)
    assert len(parts) == 3
    assert all(Image.open(io.BytesIO(content)).format == "JPEG" for _, content in parts)
    study = web.get(f"{web.root}/studies/{series[0].study}/rendered")
    assert len(multipart_parts(study)) == 3


def test_a_thumbnail_is_a_small_jpeg_of_the_middle_instance(web, live_pacs):
    series = store_series(5, pixels=256)
    base = f"{web.root}/studies/{series[0].study}/series/{series[0].series}"
    thumbnail = web.get(f"{base}/thumbnail")
    assert thumbnail.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumbnail.content)).size == (128, 128)
    middle = web.get(f"{instance_url(web.root, series[2])}/thumbnail")
    assert thumbnail.content == middle.content
    assert thumbnail.content != web.get(f"{instance_url(web.root, series[0])}/thumbnail").content
    study = web.get(f"{web.root}/studies/{series[0].study}/thumbnail", params={"viewport": "64,64"})
    assert Image.open(io.BytesIO(study.content)).size == (64, 64)


def test_the_thumbnail_of_a_multi_frame_instance_is_its_middle_frame(web, live_pacs, corpus_dir):
    item = store_file(corpus_dir / "dev" / "pydicom-data__emri_small.dcm")  # 10 frames
    base = instance_url(web.root, item)
    thumbnail = web.get(f"{base}/thumbnail").content
    assert thumbnail == web.get(f"{base}/frames/5/thumbnail").content
    assert thumbnail != web.get(f"{base}/frames/1/thumbnail").content


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("window", "40"),
        ("window", "40,0"),
        ("window", "a,b"),
        ("window", "40,400,cubic"),
        ("window", "nan,400"),
        ("window", "40,0.5"),
        ("window", "40,0,linear_exact"),
        ("viewport", "0,10"),
        ("viewport", "10"),
        ("viewport", "10,x"),
        ("viewport", "10,10,0,0,0,5"),
        ("viewport", "100000,10"),
        ("quality", "0"),
        ("quality", "101"),
        ("quality", "high"),
    ],
)
def test_bad_rendering_parameters_are_400_with_a_json_reason(web, ct, parameter, value):
    response = web.get(f"{instance_url(web.root, ct)}/rendered", params={parameter: value})
    assert response.status_code == 400, (parameter, value)
    assert list(response.json()["errors"]) == [parameter]


def test_rendering_errors_are_json(web, ct, live_pacs, corpus_dir):
    gif = web.get(f"{instance_url(web.root, ct)}/rendered", headers={"Accept": "image/gif"})
    assert gif.status_code == 406
    assert "image/jpeg" in gif.json()["message"]
    frame = web.get(f"{instance_url(web.root, ct)}/frames/2/rendered")
    assert frame.status_code == 404
    assert "Frame 2 does not exist" in frame.json()["message"]
    report = store_file(corpus_dir / "dev" / "pydicom__test-SR.dcm")
    no_image = web.get(f"{instance_url(web.root, report)}/rendered")
    assert no_image.status_code == 404
    assert no_image.json()["message"] == "No image to render here."
    unknown = web.get(f"{web.root}/studies/1.2.3/thumbnail")
    assert unknown.status_code == 404


def test_every_stored_corpus_image_renders(web, live_pacs, corpus_dir):
    stored = store_corpus(corpus_dir)
    images = [item for item in stored if item.instance.rows]
    assert len(images) > 35
    for item in images:
        response = web.get(f"{instance_url(web.root, item)}/rendered")
        assert response.status_code == 200, (item.path, response.text[:200])
        rendered = Image.open(io.BytesIO(response.content))
        assert rendered.format == "JPEG"
        assert rendered.size == (item.instance.columns, item.instance.rows), item.path
