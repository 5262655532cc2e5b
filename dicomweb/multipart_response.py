"""Streamed ``multipart/related`` response bodies (RFC 2387, PS3.18 8.6.1.2).

A body is a sequence of parts, each a media type and either bytes in memory (a frame, a
rendered image) or a file on disk (a stored instance). Files are read in large chunks and
handed to the WSGI server as they are, so a study goes out at the speed of the socket with
one chunk in memory and no Python work per byte.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.http import StreamingHttpResponse

# Large reads: one system call per half-megabyte instance, few per multi-frame one.
CHUNK_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class Part:
    """One body part: its Content-Type and its content, bytes or a file to stream.

    `cleanup` is a file deleted once the part has been sent (a transcoded copy)."""

    content_type: str
    data: bytes | None = None
    path: Path | None = None
    location: str = ""
    cleanup: Path | None = None


def new_boundary() -> str:
    return f"vesalius-{uuid.uuid4().hex}"


def multipart_content_type(part_type: str, boundary: str, **parameters: str) -> str:
    """The response Content-Type: ``multipart/related; type="..."; boundary=...``."""
    extra = "".join(f"; {name.replace('_', '-')}={value}" for name, value in parameters.items())
    return f'multipart/related; type="{part_type}"{extra}; boundary={boundary}'


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def _part_head(part: Part, delimiter: bytes, first: bool) -> bytes:
    """The delimiter line and headers of a part (RFC 2046 5.1.1: the CRLF before a delimiter
    belongs to it)."""
    headers = [b"Content-Type: " + part.content_type.encode("ascii")]
    if part.location:
        headers.append(b"Content-Location: " + part.location.encode("ascii"))
    lead = b"" if first else b"\r\n"
    return lead + delimiter + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n"


def _closing(delimiter: bytes, first: bool) -> bytes:
    return (b"" if first else b"\r\n") + delimiter + b"--\r\n"


def multipart_body(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """Yield the encoded body: each part's delimiter and headers, then its content."""
    delimiter = b"--" + boundary.encode("ascii")
    first = True
    try:
        for part in parts:
            yield _part_head(part, delimiter, first)
            first = False
            try:
                if part.path is not None:
                    yield from _file_chunks(part.path)
                elif part.data:
                    yield part.data
            finally:
                if part.cleanup is not None:
                    part.cleanup.unlink(missing_ok=True)
        yield _closing(delimiter, first)
    finally:
        close = getattr(parts, "close", None)
        if close is not None:
            close()


def body_length(parts: list[Part], boundary: str) -> int:
    """The exact length of the body of `parts`: content in memory, or files as they are on
    disk now."""
    delimiter = b"--" + boundary.encode("ascii")
    total = len(_closing(delimiter, not parts))
    for index, part in enumerate(parts):
        total += len(_part_head(part, delimiter, index == 0))
        total += part.path.stat().st_size if part.path is not None else len(part.data or b"")
    return total


def multipart_response(
    parts: Iterable[Part], part_type: str, *, status: int = 200, **parameters: str
) -> StreamingHttpResponse:
    """A streamed multipart/related response whose root type is `part_type`.

    When `parts` is a list, the body's length is known up front and sent as Content-Length:
    the WSGI server then writes each chunk to the socket as it is, without the chunked
    framing that costs gunicorn a copy of every chunk. Parts from a generator (produced on
    the way, e.g. transcoded) go out chunked."""
    boundary = new_boundary()
    response = StreamingHttpResponse(
        multipart_body(parts, boundary),
        status=status,
        content_type=multipart_content_type(part_type, boundary, **parameters),
    )
    if isinstance(parts, list):
        response["Content-Length"] = str(body_length(parts, boundary))
    return response
