"""STOW-RS, PS3.18 10.5: store instances sent as ``multipart/related;
type="application/dicom"`` [WEB-3], through the one ingest service.

Each part is streamed to a file in the temp folder as it arrives (never the whole request,
never a whole part in memory) and handed to :func:`studies.services.store_instance`, which
stores it byte for byte or refuses it with a reason. The response is the Store Instances
Response Module (PS3.18 10.5.3) as ``application/dicom+json``: ReferencedSOPSequence for the
instances stored, FailedSOPSequence with a FailureReason for the others, and one Warning
header per failure that says why in words.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.http import HttpResponse
from pydicom import dcmread
from pydicom.dataset import Dataset
from rest_framework import exceptions

from dicomweb.access import DicomwebView, MayUpload
from dicomweb.multipart import MultipartError, MultipartReader, boundary_of, parse_media_type
from dicomweb.qido import dicomweb_root, preferred_media_type, warning_header
from studies.models import Instance
from studies.services import Origin, Outcome, store_instance
from studies.services.ingest import temp_folder

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
DICOM = "application/dicom"

# FailureReason (0008,1197) values, PS3.18 10.5.3 (the C-STORE statuses of PS3.4 B.2.3).
PROCESSING_FAILURE = 0x0110
OUT_OF_RESOURCES = 0xA700
DATA_SET_DOES_NOT_MATCH = 0xA900  # also: the instance is not of the target study
CANNOT_UNDERSTAND = 0xC000
_FAILURE_REASONS = {
    Outcome.REJECTED: CANNOT_UNDERSTAND,
    Outcome.MISMATCH: DATA_SET_DOES_NOT_MATCH,
    Outcome.OUT_OF_RESOURCES: OUT_OF_RESOURCES,
}


@dataclass(frozen=True)
class PartResult:
    """What became of one part."""

    stored: bool
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    failure_reason: int = 0
    reason: str = ""
    retrieve_url: str = ""
    study_instance_uid: str = ""


def _spool(part) -> Path:
    """Copy one part to a new file in the temp folder; nothing is left behind on error."""
    with tempfile.NamedTemporaryFile(dir=temp_folder(), suffix=".dcm", delete=False) as handle:
        path = Path(handle.name)
        try:
            shutil.copyfileobj(part, handle, _CHUNK)
        except BaseException:
            handle.close()
            path.unlink(missing_ok=True)
            raise
    return path


def _uids_of(path: Path) -> tuple[str, str, str] | None:
    """(StudyInstanceUID, SOPClassUID, SOPInstanceUID) of a spooled part, None when it cannot
    be read (the ingest service then says why)."""
    keywords = ("StudyInstanceUID", "SOPClassUID", "SOPInstanceUID")
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=list(keywords), force=True)
        study, sop_class, sop_instance = (str(ds.get(kw, "") or "").strip() for kw in keywords)
    except Exception:  # pydicom raises many types on corrupt input
        return None
    return (study, sop_class, sop_instance) if study else None


def store_part(
    part, number: int, *, study_uid: str | None, origin: Origin, root: str
) -> PartResult:
    """Store one part; a part of another media type or (for ``/studies/{s}``) of another
    study fails without being stored (PS3.18 10.5.1.2)."""
    media_type, _params = parse_media_type(part.content_type or DICOM)
    if media_type != DICOM:
        part.drain()
        return PartResult(
            False,
            failure_reason=CANNOT_UNDERSTAND,
            reason=f"part {number} is {media_type}, not {DICOM}",
        )
    try:
        path = _spool(part)
    except OSError as exc:
        part.drain()
        return PartResult(False, failure_reason=OUT_OF_RESOURCES, reason=f"temp folder: {exc}")
    try:
        uids = _uids_of(path) if study_uid is not None else None
        if uids is not None and uids[0] != study_uid:
            return PartResult(
                False,
                sop_class_uid=uids[1],
                sop_instance_uid=uids[2],
                failure_reason=DATA_SET_DOES_NOT_MATCH,
                reason=f"part {number} belongs to another study than the target study",
            )
        result = store_instance(path, origin=origin)
    finally:
        path.unlink(missing_ok=True)
    if not result.ok:
        return PartResult(
            False,
            result.sop_class_uid,
            result.sop_instance_uid,
            failure_reason=_FAILURE_REASONS.get(result.outcome, PROCESSING_FAILURE),
            reason=f"part {number}: {result.reason}",
        )
    instance = Instance.objects.select_related("series__study").get(pk=result.instance_id)
    study = instance.series.study.study_instance_uid
    series = instance.series.series_instance_uid
    return PartResult(
        True,
        result.sop_class_uid,
        result.sop_instance_uid,
        retrieve_url=f"{root}studies/{study}/series/{series}/instances/{result.sop_instance_uid}",
        study_instance_uid=study,
    )


def response_dataset(results: list[PartResult], root: str, study_uid: str | None) -> Dataset:
    """The Store Instances Response Module, PS3.18 Table 10.5.3-2."""
    response = Dataset()
    studies = {result.study_instance_uid for result in results if result.stored}
    target = study_uid or (next(iter(studies)) if len(studies) == 1 else None)
    if target:
        response.RetrieveURL = f"{root}studies/{target}"
    referenced, failed = [], []
    for result in results:
        item = Dataset()
        item.ReferencedSOPClassUID = result.sop_class_uid
        item.ReferencedSOPInstanceUID = result.sop_instance_uid
        if result.stored:
            item.RetrieveURL = result.retrieve_url
            referenced.append(item)
        else:
            item.FailureReason = result.failure_reason
            failed.append(item)
    if referenced:
        response.ReferencedSOPSequence = referenced
    if failed:
        response.FailedSOPSequence = failed
    return response


def http_status(results: list[PartResult]) -> int:
    """PS3.18 Table 10.5.3-1: 200 all stored; 202 some stored; none stored: 400 when every
    part was unreadable (bad syntax), 503 when only resources were missing, else 409."""
    stored = sum(result.stored for result in results)
    if stored == len(results):
        return 200
    if stored:
        return 202
    reasons = {result.failure_reason for result in results}
    if reasons == {CANNOT_UNDERSTAND}:
        return 400
    if reasons == {OUT_OF_RESOURCES}:
        return 503
    return 409


def _body_stream(request):
    """The request body as a stream. A chunked body (dicomweb-client sends large bodies so)
    has no Content-Length: it is read from the WSGI input when the server decoded the
    chunks (``wsgi.input_terminated``: gunicorn does)."""
    meta = request._request.META
    if meta.get("CONTENT_LENGTH"):
        return request._request
    if (
        meta.get("wsgi.input_terminated")
        and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    ):
        return meta["wsgi.input"]
    raise exceptions.ParseError(
        "The request has no body (or a chunked one this server cannot read)."
    )


def store(request, study_uid: str | None = None) -> HttpResponse:
    """Answer a STOW-RS request (``POST /studies`` or ``/studies/{study}``)."""
    media_type, params = parse_media_type(request.META.get("CONTENT_TYPE", ""))
    part_type = params.get("type", "").lower()
    if media_type != "multipart/related" or part_type != DICOM:
        raise exceptions.UnsupportedMediaType(
            request.META.get("CONTENT_TYPE", ""),
            detail='STOW-RS accepts multipart/related; type="application/dicom" only.',
        )
    accepted = preferred_media_type(request.META.get("HTTP_ACCEPT", ""))
    if accepted is None:
        raise exceptions.NotAcceptable(
            "The STOW-RS response is application/dicom+json or application/json."
        )
    try:
        boundary = boundary_of(params)
    except MultipartError as exc:
        raise exceptions.ParseError(str(exc)) from None
    origin = Origin(
        "stow",
        user=getattr(request.user, "username", "") or "",
        address=request.META.get("REMOTE_ADDR", ""),
    )
    root = dicomweb_root(request)
    results: list[PartResult] = []
    try:
        for number, part in enumerate(MultipartReader(_body_stream(request), boundary), 1):
            results.append(store_part(part, number, study_uid=study_uid, origin=origin, root=root))
    except MultipartError as exc:
        stored = sum(result.stored for result in results)
        raise exceptions.ParseError(
            f"Malformed multipart body: {exc}. Instances stored before the error: {stored}."
        ) from None
    if not results:
        raise exceptions.ParseError("The multipart body has no parts.")
    response = HttpResponse(
        json.dumps(response_dataset(results, root, study_uid).to_json_dict()),
        status=http_status(results),
        content_type=accepted,
    )
    warnings = [result.reason for result in results if not result.stored]
    if warnings:
        response["Warning"] = warning_header(request, warnings)
    return response


class StowView(DicomwebView):
    """POST ``/studies/{study}``; needs UPLOAD [WADO-DEV]."""

    permission_classes = [MayUpload]

    def post(self, request, study: str) -> HttpResponse:
        return store(request, study)
