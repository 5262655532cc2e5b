"""A streaming reader of ``multipart/related`` request bodies (RFC 2387, RFC 2046 5.1), as
STOW-RS sends them (PS3.18 8.6.1.2).

The body is read in chunks from the request stream and each part is handed out as a
file-like object that reads up to the next boundary, so a part can be spooled to a file as it
arrives: no part and no request is ever held in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import Message

_CHUNK = 256 * 1024
_MAX_HEADER_BYTES = 16 * 1024
_MAX_PREAMBLE_BYTES = 64 * 1024
_BOUNDARY_CHARS = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
)


class MultipartError(ValueError):
    """The body is not a well-formed multipart entity (missing or bad boundary, truncated,
    headers too long). STOW-RS answers 400."""


def parse_media_type(header: str) -> tuple[str, dict[str, str]]:
    """``'multipart/related; type="application/dicom"; boundary=x'`` →
    ``("multipart/related", {"type": "application/dicom", "boundary": "x"})``; the media type
    lower case, parameter names lower case, quoted values unquoted (RFC 9110 8.3.1)."""
    message = Message()
    message["Content-Type"] = header
    params = message.get_params(header="Content-Type", unquote=True) or []
    media_type = header.split(";", 1)[0].strip().lower()
    return media_type, {str(name).lower(): str(value) for name, value in params[1:]}


def boundary_of(params: dict[str, str]) -> bytes:
    """The boundary parameter, validated against RFC 2046 5.1.1 (1 to 70 characters of a
    restricted set, not ending in a space)."""
    boundary = params.get("boundary", "")
    if not boundary:
        raise MultipartError("the Content-Type has no boundary parameter")
    if len(boundary) > 70 or boundary.endswith(" ") or not set(boundary) <= _BOUNDARY_CHARS:
        raise MultipartError("the boundary parameter is not a valid RFC 2046 boundary")
    return boundary.encode("ascii")


class Part:
    """One body part: its headers (names lower case) and a ``read(size)`` over its content,
    which stops at the next boundary."""

    def __init__(self, reader: MultipartReader, headers: dict[str, str]) -> None:
        self._reader = reader
        self.headers = headers
        self._done = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        if size is None or size < 0:
            chunks = []
            while chunk := self._reader._read_part_data(_CHUNK):
                chunks.append(chunk)
            self._done = True
            return b"".join(chunks)
        chunk = self._reader._read_part_data(size)
        if not chunk:
            self._done = True
        return chunk

    def drain(self) -> None:
        """Skip what is left of the part, reading it in chunks."""
        while self.read(_CHUNK):
            pass


class MultipartReader:
    """Iterate the parts of a multipart body read from ``stream`` (anything with
    ``read(n)``). Each part must be read or drained before the next one is asked for; the
    iterator does it for parts left unread. Raises :class:`MultipartError` on a malformed or
    truncated body."""

    def __init__(self, stream, boundary: bytes) -> None:
        self._stream = stream
        self._delimiter = b"\r\n--" + boundary
        self._buffer = b""
        self._eof = False
        self._in_part = False

    def _fill(self, at_least: int) -> bool:
        """Read until the buffer holds ``at_least`` bytes; False at the end of the stream."""
        while len(self._buffer) < at_least and not self._eof:
            chunk = self._stream.read(_CHUNK)
            if not chunk:
                self._eof = True
                break
            self._buffer += chunk
        return len(self._buffer) >= at_least

    def __iter__(self) -> Iterator[Part]:
        self._skip_preamble()
        while True:
            if self._at_close_delimiter():
                return
            part = Part(self, self._read_headers())
            self._in_part = True
            yield part
            part.drain()

    def _skip_preamble(self) -> None:
        """Skip up to the first delimiter; the body may start with it without the CRLF."""
        self._buffer = b"\r\n"
        while True:
            index = self._buffer.find(self._delimiter)
            if index >= 0:
                self._buffer = self._buffer[index + len(self._delimiter) :]
                return
            if len(self._buffer) > _MAX_PREAMBLE_BYTES or not self._fill(len(self._buffer) + 1):
                raise MultipartError("the body has no part with the declared boundary")

    def _at_close_delimiter(self) -> bool:
        """After a delimiter: ``--`` ends the body; else padding then CRLF start a part."""
        self._fill(2)
        if self._buffer.startswith(b"--"):
            return True
        while True:
            line_end = self._buffer.find(b"\r\n")
            if line_end >= 0:
                if self._buffer[:line_end].strip(b" \t"):
                    raise MultipartError("garbage after a boundary delimiter")
                self._buffer = self._buffer[line_end + 2 :]
                return False
            if len(self._buffer) > 1024 or not self._fill(len(self._buffer) + 1):
                raise MultipartError("the body ends inside a boundary line")

    def _read_headers(self) -> dict[str, str]:
        while True:
            if self._buffer.startswith(b"\r\n"):  # a part with no headers
                self._buffer = self._buffer[2:]
                return {}
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self._buffer) > _MAX_HEADER_BYTES:
                raise MultipartError("the headers of a part are too long")
            if not self._fill(len(self._buffer) + 1):
                raise MultipartError("the body ends inside the headers of a part")
        raw, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        headers: dict[str, str] = {}
        for line in raw.decode("latin-1").split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise MultipartError(f"a part has a malformed header line: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        return headers

    def _read_part_data(self, size: int) -> bytes:
        """Up to ``size`` bytes of the current part; b"" at its end (the delimiter is then
        consumed)."""
        if not self._in_part:
            return b""
        size = max(size, 1)
        keep = len(self._delimiter)
        while True:
            index = self._buffer.find(self._delimiter)
            if index >= 0:
                if index == 0:
                    self._buffer = self._buffer[keep:]
                    self._in_part = False
                    return b""
                take = min(index, size)
                data, self._buffer = self._buffer[:take], self._buffer[take:]
                return data
            # No delimiter yet: what cannot be the start of one can be handed out.
            safe = len(self._buffer) - keep + 1
            if safe > 0:
                take = min(safe, size)
                data, self._buffer = self._buffer[:take], self._buffer[take:]
                return data
            if not self._fill(len(self._buffer) + 1):
                raise MultipartError("the body ends inside a part (no closing boundary)")
