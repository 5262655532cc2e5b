"""The streaming multipart/related reader of STOW-RS (RFC 2046 5.1, RFC 2387): parts come out
whole and exact whatever the read sizes, bodies are never held in memory, malformed bodies
raise."""

from __future__ import annotations

import io
import tracemalloc

import pytest

from dicomweb.multipart import MultipartError, MultipartReader, boundary_of, parse_media_type


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read (a slow network)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1) -> bytes:
        return self._data.read(self._step if size < 0 else min(size, self._step))


class Generated(io.RawIOBase):
    """A body of ``size`` bytes of one part, produced as it is read (never all in memory)."""

    def __init__(self, boundary: bytes, size: int) -> None:
        self._head = b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n"
        self._tail = b"\r\n--" + boundary + b"--\r\n"
        self._left = size
        self._stage = 0

    def read(self, size: int = -1) -> bytes:
        if self._stage == 0:
            self._stage = 1
            return self._head
        if self._left > 0:
            take = min(size if size > 0 else 65536, self._left, 65536)
            self._left -= take
            return b"\x5a" * take
        if self._stage == 1:
            self._stage = 2
            return self._tail
        return b""


def body(boundary: bytes, *parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    out = preamble
    for part in parts:
        out += b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n"
    return out + b"--" + boundary + b"--" + epilogue


def read_all(stream, boundary: bytes, size: int = 1000) -> list[bytes]:
    out = []
    for part in MultipartReader(stream, boundary):
        chunks = []
        while chunk := part.read(size):
            assert len(chunk) <= size
            chunks.append(chunk)
        out.append(b"".join(chunks))
    return out


# Part contents that end in a piece of the delimiter or look like a boundary (a part never
# holds the whole delimiter CRLF "--" boundary: RFC 2046 5.1.1).
TRICKY = [
    b"",
    b"\r\n",
    b"\r\n--",
    b"a--B",
    b"x\r\n-Bx",
    b"\r\n-" * 50,
    b"ends in CR LF dash dash\r\n--",
    bytes(range(256)),
]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 100_000])
def test_parts_come_out_exact_whatever_the_network_hands_over(step):
    data = body(b"B", *TRICKY, preamble=b"ignored preamble\r\n", epilogue=b"\r\nepilogue")
    assert read_all(Trickle(data, step), b"B", size=5) == TRICKY


def test_transport_padding_after_a_boundary_is_allowed():
    data = b"--B  \t\r\n\r\none\r\n--B \r\nContent-Type: application/dicom\r\n\r\ntwo\r\n--B--"
    parts = list(MultipartReader(io.BytesIO(data), b"B"))
    assert [part.headers for part in parts] == [{}, {"content-type": "application/dicom"}]


def test_unread_parts_are_skipped():
    data = body(b"B", b"first" * 1000, b"second")
    parts = MultipartReader(io.BytesIO(data), b"B")
    iterator = iter(parts)
    next(iterator)  # not read
    assert next(iterator).read() == b"second"


def test_a_large_part_streams_through_in_bounded_memory():
    size = 64 * 1024 * 1024
    tracemalloc.start()
    try:
        total = 0
        for part in MultipartReader(Generated(b"B", size), b"B"):
            while chunk := part.read(1024 * 1024):
                total += len(chunk)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < 8 * 1024 * 1024  # a few buffers, never the part


@pytest.mark.parametrize(
    "data",
    [
        b"no delimiter at all",
        b"--B\r\nContent-Type: application/dicom\r\n\r\ntruncated",
        b"--B\r\nContent-Type: application/dicom",  # ends in the headers
        b"--B\r\nbroken header line\r\n\r\nx\r\n--B--",
        b"--Bgarbage\r\n\r\nx\r\n--B--",
        b"--B",  # ends in a boundary line
    ],
)
def test_a_malformed_body_raises(data):
    with pytest.raises(MultipartError):
        read_all(io.BytesIO(data), b"B")


def test_media_types_and_boundaries_are_parsed_as_rfc_2046_says():
    media, params = parse_media_type(
        'Multipart/Related; Type="application/dicom"; boundary="a b:c"'
    )
    assert media == "multipart/related"
    assert params == {"type": "application/dicom", "boundary": "a b:c"}
    assert boundary_of(params) == b"a b:c"
    for bad in ({}, {"boundary": "x" * 71}, {"boundary": "ends with space "}, {"boundary": "é"}):
        with pytest.raises(MultipartError):
            boundary_of(bad)
