"""WADO-RS retrieval (PS3.18 10.4): which instances, in which transfer syntax, and their
frames and bulk data.

Media type negotiation follows PS3.18 8.7: the Accept header lists media ranges with
optional ``transfer-syntax`` parameters and q values. An instance whose stored transfer
syntax is acceptable goes out as the stored file, byte for byte; otherwise it is transcoded
by the isolated worker pool of ``studies/transcoding.py`` (never decoded in the web
process). Nothing acceptable answers 406 before any byte of the body is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.db.models import QuerySet
from rest_framework import exceptions

from dicomweb.multipart_response import Part
from studies.models import Instance
from studies.rendering import transcoded_copy
from studies.services.ingest import temp_folder
from studies.transcoding import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    NATIVE_TRANSFER_SYNTAXES,
    TranscodeError,
    can_decode,
    can_encode,
)

logger = logging.getLogger(__name__)

ANY_TRANSFER_SYNTAX = "*"
DICOM = "application/dicom"
OCTET_STREAM = "application/octet-stream"
# Syntaxes whose native pixel bytes are the bytes of an octet-stream frame (PS3.18 8.7.3.3.2:
# little endian, uncompressed).
LITTLE_ENDIAN_NATIVE = frozenset({IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN})

# PS3.18 Table 8.7.3-5 (single and multi-frame image media types): the transfer syntaxes of
# each media type, the default (no transfer-syntax parameter) first.
IMAGE_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    OCTET_STREAM: (EXPLICIT_VR_LITTLE_ENDIAN,),
    "image/jpeg": (
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
    ),
    "image/jls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "image/jp2": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
    "image/jpx": ("1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"),
    "image/dicom-rle": ("1.2.840.10008.1.2.5",),
}
MEDIA_TYPE_OF_SYNTAX: dict[str, str] = {
    syntax: media_type for media_type, syntaxes in IMAGE_MEDIA_TYPES.items() for syntax in syntaxes
}


# --- The Accept header ---------------------------------------------------------------------


@dataclass(frozen=True)
class MediaRange:
    """One media range of an Accept header: ``multipart/related; type="..."; ...; q=0.5``."""

    media_type: str
    parameters: dict[str, str] = field(default_factory=dict)
    quality: float = 1.0

    @property
    def part_type(self) -> str:
        """The media type of the parts: the ``type`` parameter of a multipart range, else the
        range itself (a single-part range is accepted as the type of every part)."""
        if self.media_type.startswith("multipart/"):
            return self.parameters.get("type", "*/*").lower()
        return self.media_type

    @property
    def transfer_syntax(self) -> str | None:
        return self.parameters.get("transfer-syntax")

    def accepts(self, part_type: str) -> bool:
        """True if parts of `part_type` fit this range (``*/*``, ``image/*`` or equal)."""
        wanted = self.part_type
        if wanted == "*/*" or wanted == part_type:
            return True
        return wanted.endswith("/*") and part_type.startswith(wanted[:-1])


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    pieces, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def parse_accept(header: str) -> list[MediaRange]:
    """The media ranges of an Accept header, best first (q, then order); q=0 ranges and
    malformed ones are dropped. An empty header is ``*/*`` (RFC 9110 12.5.1)."""
    ranges: list[tuple[float, int, MediaRange]] = []
    for position, item in enumerate(_split_outside_quotes(header or "*/*", ",")):
        media_type, *raw_parameters = _split_outside_quotes(item, ";")
        media_type = media_type.strip().lower()
        if "/" not in media_type:
            continue
        parameters: dict[str, str] = {}
        for raw in raw_parameters:
            name, _, value = raw.partition("=")
            parameters[name.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(parameters.pop("q", "1"))
        except ValueError:
            continue
        if quality <= 0:
            continue
        ranges.append((-quality, position, MediaRange(media_type, parameters, quality)))
    return [media_range for _, _, media_range in sorted(ranges, key=lambda r: r[:2])]


def not_acceptable(message: str) -> exceptions.NotAcceptable:
    return exceptions.NotAcceptable(message)


# --- Which instances -----------------------------------------------------------------------


def instances_of(
    study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None
) -> QuerySet[Instance]:
    """The stored instances of a study, series or instance (the UIDs of the path must belong
    together), in series and instance order."""
    queryset = Instance.objects.filter(series__study__study_instance_uid=study_uid)
    if series_uid is not None:
        queryset = queryset.filter(series__series_instance_uid=series_uid)
    if sop_instance_uid is not None:
        queryset = queryset.filter(sop_instance_uid=sop_instance_uid)
    return queryset.order_by("series__series_number", "series_id", "instance_number", "id")


def not_found(series_uid: str | None, sop_instance_uid: str | None) -> exceptions.NotFound:
    level = "instance" if sop_instance_uid else "series" if series_uid is not None else "study"
    return exceptions.NotFound(f"No such {level}.")


@dataclass(frozen=True)
class StoredInstance:
    """What retrieval needs of an instance: read as plain values, not model objects, so that
    a study of thousands of instances costs one light query."""

    pk: int
    sop_instance_uid: str
    transfer_syntax_uid: str
    number_of_frames: int
    rows: int | None
    path: Path


def select_instances(
    study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None
) -> list[StoredInstance]:
    """The instances of a study, series or instance and their files; 404 (JSON) when there
    are none."""
    rows = instances_of(study_uid, series_uid, sop_instance_uid).values_list(
        "pk",
        "sop_instance_uid",
        "transfer_syntax_uid",
        "number_of_frames",
        "rows",
        "storage__path",
        "relative_path",
    )
    instances = [
        StoredInstance(pk, uid, syntax, frames, n_rows, Path(folder, relative))
        for pk, uid, syntax, frames, n_rows, folder, relative in rows
    ]
    if not instances:
        raise not_found(series_uid, sop_instance_uid)
    return instances


# --- Transfer syntax of DICOM instances (PS3.18 8.7.3.5) -----------------------------------


def accepted_dicom_syntaxes(ranges: list[MediaRange]) -> list[str]:
    """The transfer syntaxes acceptable for ``application/dicom`` parts, best first;
    ``*`` for "as stored". A range without the parameter means Explicit VR Little Endian
    (PS3.18 8.7.3.5.2, Table 8.7.3-2); ``*/*`` accepts anything as stored."""
    syntaxes: list[str] = []
    for media_range in ranges:
        if media_range.media_type == "*/*":
            syntaxes.append(ANY_TRANSFER_SYNTAX)
        elif media_range.accepts(DICOM) and media_range.part_type in (DICOM, "*/*"):
            syntaxes.append(media_range.transfer_syntax or EXPLICIT_VR_LITTLE_ENDIAN)
    return syntaxes


def can_transcode(stored: str, target: str) -> bool:
    if stored == target:
        return True
    return can_decode(stored) and can_encode(target)


def syntax_candidates(stored: str, accepted: list[str]) -> list[str]:
    """The syntaxes an instance stored in `stored` may go out in, best first: only the
    stored one when it is acceptable (no transcoding), else the accepted ones we can
    transcode to (a later one is tried when an earlier one fails for this image)."""
    if ANY_TRANSFER_SYNTAX in accepted or stored in accepted:
        return [stored]
    return list(dict.fromkeys(target for target in accepted if can_transcode(stored, target)))


def choose_syntax(stored: str, accepted: list[str]) -> str | None:
    """The first of :func:`syntax_candidates`, or None."""
    return next(iter(syntax_candidates(stored, accepted)), None)


def negotiate_dicom(
    instances: list[StoredInstance], accept: str
) -> list[tuple[StoredInstance, list[str]]]:
    """Each instance with its candidate syntaxes; 406 when one of them has none."""
    accepted = accepted_dicom_syntaxes(parse_accept(accept))
    if not accepted:
        raise not_acceptable(
            'Retrieve answers multipart/related; type="application/dicom" '
            "(with an optional transfer-syntax parameter)."
        )
    chosen = []
    for instance in instances:
        candidates = syntax_candidates(instance.transfer_syntax_uid, accepted)
        if not candidates:
            raise not_acceptable(
                f"None of the accepted transfer syntaxes ({', '.join(accepted)}) can be "
                f"produced from an instance stored in {instance.transfer_syntax_uid}; "
                "use transfer-syntax=* to receive it as stored."
            )
        chosen.append((instance, candidates))
    return chosen


def dicom_parts(chosen: list[tuple[StoredInstance, list[str]]]) -> list[Part] | Iterator[Part]:
    """The body parts of a retrieve.

    Nothing to transcode: a list of the stored files (so the response length is known;
    missing files are logged and left out now). Otherwise a generator that transcodes each
    instance just before it is sent; the first instance is prepared now, so that a single
    instance that cannot be produced in any accepted syntax is still a 406."""
    if all(candidates == [instance.transfer_syntax_uid] for instance, candidates in chosen):
        parts = []
        for instance, [syntax] in chosen:
            if instance.path.is_file():
                parts.append(Part(f"{DICOM}; transfer-syntax={syntax}", path=instance.path))
            else:
                logger.error(
                    "WADO-RS: file of instance %s is missing: %s", instance.pk, instance.path
                )
        return parts
    try:
        first = _dicom_part(*chosen[0])
    except (TranscodeError, OSError) as exc:
        raise not_acceptable(f"The instance cannot be sent in an accepted syntax: {exc}") from exc
    return _parts_on_the_way(first, chosen[1:])


def _dicom_part(instance: StoredInstance, candidates: list[str]) -> Part:
    """The part of one instance: the stored file, or a transcoded copy in the first
    candidate syntax the transcoder manages. Raises the last TranscodeError, or OSError
    for a missing file."""
    error: Exception = TranscodeError("no candidate syntax")
    for syntax in candidates:
        content_type = f"{DICOM}; transfer-syntax={syntax}"
        if syntax == instance.transfer_syntax_uid:
            if not instance.path.is_file():
                raise FileNotFoundError(f"the file of instance {instance.pk} is missing")
            return Part(content_type, path=instance.path)
        try:
            copy = transcoded_copy(instance.path, syntax, temp_folder())
        except TranscodeError as exc:
            error = exc
            continue
        return Part(content_type, path=copy, cleanup=copy)
    raise error


def _parts_on_the_way(first: Part, rest: list[tuple[StoredInstance, list[str]]]) -> Iterator[Part]:
    """`first`, then the other instances one at a time. The response headers are gone by
    then, so an instance that cannot be produced or whose file is missing is logged and
    left out."""
    yield first
    for instance, candidates in rest:
        try:
            yield _dicom_part(instance, candidates)
        except (TranscodeError, OSError) as exc:
            logger.error("WADO-RS: instance %s left out: %s", instance.pk, exc)


# --- Frames (PS3.18 8.7.4, 10.4.1.1.5) -----------------------------------------------------


def parse_frame_list(text: str) -> list[int]:
    """``1,3,5`` -> [1, 3, 5]; 400 for anything but positive integers."""
    numbers = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise exceptions.ValidationError(
                {"frames": [f"{item!r} is not a frame number (1, 2, ...)."]}
            )
        numbers.append(int(item))
    return numbers


@dataclass(frozen=True)
class PixelChoice:
    """How pixel data goes out: the part media type, the transfer syntax its bytes are in,
    and the syntax the file must be transcoded to first (None: read the stored file)."""

    media_type: str
    transfer_syntax: str
    transcode_to: str | None


def _as_stored(stored: str, wanted: str) -> PixelChoice:
    """Frames in their stored encoding; native big endian or deflated files are converted to
    little endian (an octet-stream frame is little endian, PS3.18 8.7.3.3.2)."""
    if stored in LITTLE_ENDIAN_NATIVE:
        return PixelChoice(OCTET_STREAM, EXPLICIT_VR_LITTLE_ENDIAN, None)
    if stored in NATIVE_TRANSFER_SYNTAXES:
        return PixelChoice(OCTET_STREAM, EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN)
    media_type = MEDIA_TYPE_OF_SYNTAX.get(stored, OCTET_STREAM)
    return PixelChoice(OCTET_STREAM if wanted == OCTET_STREAM else media_type, stored, None)


def negotiate_pixels(stored: str, accept: str) -> PixelChoice:
    """The best acceptable form of an instance's frames (PS3.18 8.7.3.3, Table 8.7.3-5).

    ``transfer-syntax=*`` (and ``*/*``) take the stored encoding as it is; a named syntax or
    a media type's default is sent as stored when it is the stored one (all little endian
    native syntaxes are the same bytes), else produced by the transcoding workers."""
    for media_range in parse_accept(accept):
        wanted = media_range.part_type
        requested = media_range.transfer_syntax
        if (wanted == "*/*" and requested in (None, ANY_TRANSFER_SYNTAX)) or (
            wanted == OCTET_STREAM and requested == ANY_TRANSFER_SYNTAX
        ):
            return _as_stored(stored, wanted)
        for candidate, syntaxes in IMAGE_MEDIA_TYPES.items():
            if not media_range.accepts(candidate):
                continue
            if requested in (None, ANY_TRANSFER_SYNTAX):
                target = stored if stored in syntaxes else syntaxes[0]
            elif requested in syntaxes:
                target = requested
            else:
                continue
            if target == stored or (candidate == OCTET_STREAM and stored in LITTLE_ENDIAN_NATIVE):
                return PixelChoice(candidate, target, None)
            if can_transcode(stored, target):
                return PixelChoice(candidate, target, target)
    raise not_acceptable(
        "None of the accepted media types can be produced from pixel data stored in "
        f"{stored}; accepted: application/octet-stream, image/jpeg, image/jls, image/jp2, "
        "image/jpx, image/dicom-rle (with transfer-syntax parameters), or transfer-syntax=*."
    )


class FrameReader:
    """Frames of one instance file in a given syntax, read without loading the whole pixel
    data of a native multi-frame file (the frame's bytes are read at their offset)."""

    def __init__(self, path: Path) -> None:
        import pydicom

        self.path = path
        self.dataset = pydicom.dcmread(path, defer_size=1024, force=True)
        self.syntax = str(self.dataset.file_meta.get("TransferSyntaxUID", ""))
        raw = self.dataset.get_item(0x7FE00010)
        if raw is None:
            raise exceptions.NotFound("This instance has no pixel data.")
        # Where the value starts in the file, while it is still a deferred raw element.
        self._value_offset: int | None = getattr(raw, "value_tell", None)
        self.number_of_frames = int(self.dataset.get("NumberOfFrames", 1) or 1)

    def frame(self, number: int) -> bytes:
        """Frame `number` (1-based), encapsulated or native little endian bytes."""
        ds = self.dataset
        index = number - 1
        if self.syntax not in NATIVE_TRANSFER_SYNTAXES:
            from pydicom.encaps import get_frame

            extended = None
            if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
                extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
            return get_frame(
                ds.PixelData,
                index,
                number_of_frames=self.number_of_frames,
                extended_offsets=extended,
            )
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        if samples == 3 and ds.get("PhotometricInterpretation") == "YBR_FULL_422":
            samples = 2  # native 4:2:2 holds two values per pixel (PS3.3 C.7.6.3.1.2)
        bits = int(ds.Rows) * int(ds.Columns) * samples * int(ds.BitsAllocated)
        if bits % 8 == 0:
            size = bits // 8
            if self._value_offset is None:
                return ds.PixelData[index * size : (index + 1) * size]
            with self.path.open("rb") as handle:
                handle.seek(self._value_offset + index * size)
                return handle.read(size)
        # 1-bit data: frames are packed end to end and need not start on a byte (PS3.5 8.1.1).
        import numpy as np

        packed = np.frombuffer(ds.PixelData, dtype=np.uint8)
        unpacked = np.unpackbits(packed, bitorder="little")[index * bits : (index + 1) * bits]
        return np.packbits(unpacked, bitorder="little").tobytes()


def _pixel_parts(
    instance: StoredInstance, numbers: list[int] | None, choice: PixelChoice
) -> list[Part]:
    """Frames `numbers` as parts, or the whole pixel data when `numbers` is None (one part
    if native, one per frame if encapsulated). Read now, before the response starts, so
    that a bad frame number or a failed transcoding is still an error status."""
    source = instance.path
    copy = None
    if choice.transcode_to is not None:
        try:
            copy = transcoded_copy(source, choice.transcode_to, temp_folder())
        except TranscodeError as exc:
            raise exceptions.APIException(f"The pixel data cannot be converted: {exc}") from exc
    try:
        reader = FrameReader(copy or source)
        content_type = f"{choice.media_type}; transfer-syntax={choice.transfer_syntax}"
        if numbers is None:
            if reader.syntax in NATIVE_TRANSFER_SYNTAXES:
                return [Part(content_type, data=reader.dataset.PixelData)]
            numbers = list(range(1, reader.number_of_frames + 1))
        missing = [n for n in numbers if n > reader.number_of_frames]
        if missing:
            raise exceptions.NotFound(
                f"Frame {missing[0]} does not exist: the instance has "
                f"{reader.number_of_frames} frame(s)."
            )
        return [Part(content_type, data=reader.frame(n)) for n in numbers]
    except exceptions.APIException:
        raise
    except Exception as exc:  # a stored file pydicom cannot take apart
        raise exceptions.APIException(f"The pixel data cannot be read: {exc}") from exc
    finally:
        if copy is not None:
            copy.unlink(missing_ok=True)


def frame_parts(instance: StoredInstance, numbers: list[int], choice: PixelChoice) -> list[Part]:
    """The frames `numbers` (1-based) of an instance, one part each, in the order asked."""
    return _pixel_parts(instance, numbers, choice)


def pixel_data_parts(instance: StoredInstance, choice: PixelChoice) -> list[Part]:
    """The Pixel Data bulk data: the whole native value, or every encapsulated frame."""
    return _pixel_parts(instance, None, choice)


# --- Bulk data (PS3.18 10.4.1.1.6) ---------------------------------------------------------

PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


def parse_bulkdata_path(text: str) -> list[int | str]:
    """``00540016/0/00181072`` -> [0x00540016, 0, 0x00181072]: tags (8 hex digits) with
    item indexes between them; 404 for anything else."""
    segments = text.strip("/").split("/")
    path: list[int | str] = []
    for position, segment in enumerate(segments):
        if position % 2 == 0:
            if len(segment) != 8:
                raise exceptions.NotFound(f"No such bulk data: {text!r}.")
            try:
                path.append(int(segment, 16))
            except ValueError as exc:
                raise exceptions.NotFound(f"No such bulk data: {text!r}.") from exc
        elif segment.isdigit():
            path.append(segment)
        else:
            raise exceptions.NotFound(f"No such bulk data: {text!r}.")
    if len(path) % 2 == 0:
        raise exceptions.NotFound(f"No such bulk data: {text!r}.")
    return path


def bulkdata_value(instance: StoredInstance, tag_path: list[int | str]) -> bytes:
    """The value bytes of the element at `tag_path`, little endian (a big endian file is
    converted by the transcoding workers first, PS3.18 8.7.3.3.2)."""
    source = instance.path
    copy = None
    if instance.transfer_syntax_uid == EXPLICIT_VR_BIG_ENDIAN:
        try:
            copy = transcoded_copy(source, EXPLICIT_VR_LITTLE_ENDIAN, temp_folder())
        except TranscodeError as exc:
            raise exceptions.APIException(f"The value cannot be converted: {exc}") from exc
    try:
        return _element_value(copy or source, tag_path)
    finally:
        if copy is not None:
            copy.unlink(missing_ok=True)


def _element_value(path: Path, tag_path: list[int | str]) -> bytes:
    import pydicom

    dataset = pydicom.dcmread(path, force=True)
    for position in range(0, len(tag_path) - 1, 2):
        tag, index = tag_path[position], int(tag_path[position + 1])
        element = dataset.get(tag)
        if element is None or element.VR != "SQ" or index >= len(element.value):
            raise exceptions.NotFound("No such bulk data.")
        dataset = element.value[index]
    element = dataset.get(tag_path[-1])
    if element is None or not isinstance(element.value, bytes | bytearray):
        raise exceptions.NotFound("No such bulk data.")
    return bytes(element.value)


def accepts_octet_stream(accept: str) -> bool:
    return any(media_range.accepts(OCTET_STREAM) for media_range in parse_accept(accept))
