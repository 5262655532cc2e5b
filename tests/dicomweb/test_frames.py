"""WADO-RS frames and pixel bulk data (PS3.18 10.4.1.1.5, 8.7.4): single frames and lists,
native octet-stream and compressed media types, as stored or converted; bad frame numbers."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_frames

from tests.dicomweb import wado_fixtures
from tests.dicomweb.wado_fixtures import multipart_parts, store_corpus, store_file

pytestmark = pytest.mark.django_db(transaction=True)
web = wado_fixtures.web

EXPLICIT = "1.2.840.10008.1.2.1"
RLE = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LS = "1.2.840.10008.1.2.4.80"


def frames_url(root: str, item, frames: str) -> str:
    return f"{root}/studies/{item.study}/series/{item.series}/instances/{item.sop}/frames/{frames}"


def native_frames(path) -> list[bytes]:
    """The frames of a file as native little endian bytes (decoded with pydicom)."""
    ds = pydicom.dcmread(path)
    array = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    array = array.reshape(frames, *array.shape[-2:]) if frames > 1 else array[None]
    return [frame.astype(array.dtype.newbyteorder("<")).tobytes() for frame in array]


@pytest.fixture
def multi_frame(live_pacs, corpus_dir):
    return store_file(corpus_dir / "dev" / "pydicom-data__emri_small.dcm")  # 10 frames, ELE


@pytest.fixture
def multi_frame_rle(live_pacs, corpus_dir):
    return store_file(corpus_dir / "dev" / "pydicom-data__emri_small_RLE.dcm")


def test_a_single_native_frame_and_a_list_come_back_in_the_order_asked(dicomweb, multi_frame):
    expected = native_frames(multi_frame.path)
    [third] = dicomweb.retrieve_instance_frames(
        multi_frame.study, multi_frame.series, multi_frame.sop, frame_numbers=[3]
    )
    assert third == expected[2]
    frames = dicomweb.retrieve_instance_frames(
        multi_frame.study,
        multi_frame.series,
        multi_frame.sop,
        frame_numbers=[5, 1, 10],
        media_types=(("application/octet-stream", "*"),),
    )
    assert frames == [expected[4], expected[0], expected[9]]


def test_encapsulated_frames_come_back_as_stored_in_their_media_type(web, multi_frame_rle):
    stored = pydicom.dcmread(multi_frame_rle.path)
    encoded = list(generate_frames(stored.PixelData, number_of_frames=10))
    response = web.get(
        frames_url(web.root, multi_frame_rle, "2,4"),
        headers={"Accept": f'multipart/related; type="image/dicom-rle"; transfer-syntax={RLE}'},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith('multipart/related; type="image/dicom-rle"')
    parts = multipart_parts(response)
    assert [content for _, content in parts] == [encoded[1], encoded[3]]
    assert parts[0][0]["content-type"] == f"image/dicom-rle; transfer-syntax={RLE}"


def test_any_transfer_syntax_keeps_encapsulated_frames_as_they_are(web, multi_frame_rle):
    stored = pydicom.dcmread(multi_frame_rle.path)
    encoded = list(generate_frames(stored.PixelData, number_of_frames=10))
    response = web.get(
        frames_url(web.root, multi_frame_rle, "7"),
        headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'},
    )
    [(headers, content)] = multipart_parts(response)
    assert content == encoded[6]
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={RLE}"


def test_compressed_frames_are_decoded_to_native_when_asked(dicomweb, multi_frame_rle):
    # application/octet-stream without a transfer syntax: Explicit VR Little Endian.
    frames = dicomweb.retrieve_instance_frames(
        multi_frame_rle.study,
        multi_frame_rle.series,
        multi_frame_rle.sop,
        frame_numbers=[1, 9],
        media_types=("application/octet-stream",),
    )
    expected = native_frames(multi_frame_rle.path)
    assert frames == [expected[0], expected[8]]


def test_native_frames_are_encoded_to_a_compressed_media_type_when_asked(web, multi_frame):
    response = web.get(
        frames_url(web.root, multi_frame, "2"),
        headers={"Accept": f'multipart/related; type="image/jls"; transfer-syntax={JPEG_LS}'},
    )
    assert response.status_code == 200, response.text
    [(headers, content)] = multipart_parts(response)
    assert headers["content-type"] == f"image/jls; transfer-syntax={JPEG_LS}"
    from pydicom.pixels import get_decoder

    # Decode the JPEG-LS codestream with the frame's own description.
    ds = pydicom.dcmread(multi_frame.path)
    ds.NumberOfFrames = 1
    ds.PixelData = pydicom.encaps.encapsulate([content])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG_LS
    array, _ = get_decoder(JPEG_LS).as_array(ds)
    assert array.astype("<u2").tobytes() == native_frames(multi_frame.path)[1]


def test_native_pixel_data_bulk_data_is_the_whole_value(dicomweb, multi_frame):
    document = dicomweb.retrieve_instance_metadata(
        multi_frame.study, multi_frame.series, multi_frame.sop
    )
    [value] = dicomweb.retrieve_bulkdata(document["7FE00010"]["BulkDataURI"])
    assert value == pydicom.dcmread(multi_frame.path).PixelData


def test_bad_frame_numbers_are_400_and_missing_frames_404(web, multi_frame):
    for frames in ("0", "1,x", "-1", "1,,2", "1.5"):
        response = web.get(frames_url(web.root, multi_frame, frames))
        assert response.status_code == 400, frames
        assert "frames" in response.json()["errors"], frames
    response = web.get(frames_url(web.root, multi_frame, "3,11"))
    assert response.status_code == 404
    assert response.json()["message"] == "Frame 11 does not exist: the instance has 10 frame(s)."


def test_frames_of_an_instance_without_pixels_are_404(web, live_pacs, corpus_dir):
    report = store_file(corpus_dir / "dev" / "pydicom__test-SR.dcm")
    response = web.get(frames_url(web.root, report, "1"))
    assert response.status_code == 404
    assert response.json()["message"] == "This instance has no pixel data."


def test_an_unacceptable_frame_media_type_is_406(web, multi_frame):
    for accept in ("image/gif", 'multipart/related; type="image/jpeg"; transfer-syntax=1.2.3'):
        response = web.get(frames_url(web.root, multi_frame, "1"), headers={"Accept": accept})
        assert response.status_code == 406, accept
        assert "message" in response.json()


def test_a_jpeg_baseline_frame_comes_back_as_image_jpeg(web, live_pacs, corpus_dir):
    item = store_file(corpus_dir / "dev" / "pydicom__examples_ybr_color.dcm")  # 30 frames
    response = web.get(
        frames_url(web.root, item, "30"),
        headers={"Accept": 'multipart/related; type="image/jpeg"'},
    )
    [(headers, content)] = multipart_parts(response)
    assert headers["content-type"] == f"image/jpeg; transfer-syntax={JPEG_BASELINE}"
    stored = pydicom.dcmread(item.path)
    assert content == list(generate_frames(stored.PixelData, number_of_frames=30))[29]
    from PIL import Image

    assert Image.open(io.BytesIO(content)).size == (320, 240)
    assert np.asarray(Image.open(io.BytesIO(content))).shape == (240, 320, 3)


def test_every_frame_of_every_stored_corpus_image_comes_back_native(web, live_pacs, corpus_dir):
    stored = store_corpus(corpus_dir)
    images = [item for item in stored if item.instance.rows]
    assert len(images) > 35
    for item in images:
        count = item.instance.number_of_frames
        response = web.get(
            frames_url(web.root, item, ",".join(str(n) for n in range(1, count + 1))),
            headers={"Accept": 'multipart/related; type="application/octet-stream"'},
        )
        assert response.status_code == 200, (item.path, response.text[:200])
        parts = multipart_parts(response)
        ds = pydicom.dcmread(item.path)
        samples = 2 if ds.PhotometricInterpretation == "YBR_FULL_422" else ds.SamplesPerPixel
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            samples = ds.SamplesPerPixel  # decoded: YBR 4:2:2 becomes RGB
        bits = ds.Rows * ds.Columns * samples * ds.BitsAllocated
        assert len(parts) == count, item.path
        assert all(len(content) == -(-bits // 8) for _, content in parts), item.path
        if ds.file_meta.TransferSyntaxUID in (EXPLICIT, "1.2.840.10008.1.2") and bits % 8 == 0:
            assert b"".join(content for _, content in parts) == ds.PixelData[: count * bits // 8]
