"""Accept header negotiation of WADO-RS (PS3.18 8.7): media ranges, q values, the
transfer-syntax parameter and its defaults, as plain functions."""

from __future__ import annotations

import pytest
from rest_framework import exceptions

from dicomweb.wado import (
    PixelChoice,
    accepted_dicom_syntaxes,
    choose_syntax,
    negotiate_pixels,
    parse_accept,
)

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LS = "1.2.840.10008.1.2.4.80"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
RLE = "1.2.840.10008.1.2.5"


def test_media_ranges_are_ordered_by_q_then_position_and_q_zero_is_dropped():
    ranges = parse_accept(
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.3; q=0.2, '
        "multipart/related; type=application/dicom; q=0.9, image/jpeg; q=0, "
        'multipart/related; type="application/dicom"; transfer-syntax=*'
    )
    assert [(r.part_type, r.transfer_syntax, r.quality) for r in ranges] == [
        ("application/dicom", "*", 1.0),
        ("application/dicom", None, 0.9),
        ("application/dicom", "1.2.3", 0.2),
    ]


def test_quoted_parameters_may_hold_separators():
    [media_range] = parse_accept('multipart/related; type="application/dicom;x=1,y"')
    assert media_range.part_type == "application/dicom;x=1,y"


def test_malformed_ranges_are_ignored_and_no_header_is_anything():
    assert [r.media_type for r in parse_accept("garbage, image/png; q=high, image/jpeg")] == [
        "image/jpeg"
    ]
    assert [r.media_type for r in parse_accept("")] == ["*/*"]


def test_a_dicom_range_without_transfer_syntax_means_explicit_little_endian():
    assert accepted_dicom_syntaxes(parse_accept('multipart/related; type="application/dicom"')) == [
        EXPLICIT
    ]
    assert accepted_dicom_syntaxes(parse_accept("*/*")) == ["*"]
    assert accepted_dicom_syntaxes(parse_accept("image/jpeg, text/html")) == []


def test_the_stored_syntax_is_kept_when_accepted_else_the_best_producible():
    assert choose_syntax(RLE, ["*"]) == RLE
    assert choose_syntax(RLE, [JPEG_LS, RLE]) == RLE
    assert choose_syntax(EXPLICIT, [JPEG_LS, RLE]) == JPEG_LS
    assert choose_syntax(EXPLICIT, ["1.2.3.4", RLE]) == RLE
    assert choose_syntax(EXPLICIT, ["1.2.3.4"]) is None


@pytest.mark.parametrize(
    ("stored", "accept", "expected"),
    [
        # As stored: native little endian frames are octet-stream ELE, nothing to do.
        (IMPLICIT, "*/*", PixelChoice("application/octet-stream", EXPLICIT, None)),
        (
            JPEG_LS,
            'multipart/related; type="application/octet-stream"; transfer-syntax=*',
            PixelChoice("application/octet-stream", JPEG_LS, None),
        ),
        (JPEG_LS, "*/*", PixelChoice("image/jls", JPEG_LS, None)),
        # Big endian frames are converted (an octet-stream frame is little endian).
        (BIG_ENDIAN, "*/*", PixelChoice("application/octet-stream", EXPLICIT, EXPLICIT)),
        # Defaults of each media type (PS3.18 Table 8.7.3-5).
        (
            RLE,
            'multipart/related; type="application/octet-stream"',
            PixelChoice("application/octet-stream", EXPLICIT, EXPLICIT),
        ),
        (EXPLICIT, "multipart/related; type=image/jls", PixelChoice("image/jls", JPEG_LS, JPEG_LS)),
        (
            EXPLICIT,
            f"multipart/related; type=image/jp2; transfer-syntax={J2K_LOSSLESS}",
            PixelChoice("image/jp2", J2K_LOSSLESS, J2K_LOSSLESS),
        ),
        # The stored syntax wins inside a media type, and among q-ordered ranges.
        (
            JPEG_BASELINE,
            "multipart/related; type=image/jpeg",
            PixelChoice("image/jpeg", JPEG_BASELINE, None),
        ),
        (
            RLE,
            "multipart/related; type=image/jls; q=0.5, multipart/related; type=image/dicom-rle",
            PixelChoice("image/dicom-rle", RLE, None),
        ),
    ],
)
def test_pixel_data_negotiation(stored, accept, expected):
    assert negotiate_pixels(stored, accept) == expected


@pytest.mark.parametrize(
    "accept",
    [
        "image/gif",
        f"multipart/related; type=image/jls; transfer-syntax={RLE}",  # not a JPEG-LS syntax
        "multipart/related; type=image/jpx",  # no JPEG 2000 Part 2 encoder
    ],
)
def test_pixel_data_that_cannot_be_produced_is_406(accept):
    with pytest.raises(exceptions.NotAcceptable):
        negotiate_pixels(EXPLICIT, accept)
