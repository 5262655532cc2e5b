"""QIDO-RS, PS3.18 10.6: search for studies, series and instances [WEB-3].

A QIDO-RS query becomes a C-FIND identifier (Study Root, PS3.4 C.6.2) and runs through the
one query engine (:mod:`studies.matching`, :mod:`studies.query`), so QIDO-RS and C-FIND match
alike. Each response identifier is returned as PS3.18 F.2 JSON (``application/dicom+json``),
with the RetrieveURL (0008,1190) of its WADO-RS resource.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from django.http import HttpResponse
from django.urls import reverse
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from rest_framework import exceptions

from dicomweb.access import DicomwebView, MayFind, absolute_url
from studies.matching import KEYS, InvalidIdentifier, Level
from studies.models import Series, Study
from studies.query import find

# The most matches one response holds; more can be asked for with offset (PS3.18 8.3.4.4).
MAX_RESULTS = 1000
MEDIA_TYPES = ("application/dicom+json", "application/json")
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")

# Attributes returned by default, PS3.18 10.6.3.3.1 (Tables 10.6.3-3 to -5), as far as the
# index holds them; StudyDescription too, which every viewer shows.
STUDY_ATTRIBUTES = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_ATTRIBUTES = (
    "Modality",
    "SeriesDescription",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDate",
    "SeriesTime",
    "BodyPartExamined",
    "NumberOfSeriesRelatedInstances",
)
INSTANCE_ATTRIBUTES = (
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
)


@dataclass(frozen=True)
class Resource:
    """One QIDO-RS search resource (PS3.18 Table 10.6.1-2): its query level and the
    attributes it returns by default. Outside a study the study attributes are returned
    too, outside a series the series ones (PS3.18 10.6.3.3.1)."""

    level: Level
    defaults: tuple[str, ...]


STUDIES = Resource(Level.STUDY, STUDY_ATTRIBUTES)
STUDY_SERIES = Resource(Level.SERIES, SERIES_ATTRIBUTES)
ALL_SERIES = Resource(Level.SERIES, STUDY_ATTRIBUTES + SERIES_ATTRIBUTES)
SERIES_INSTANCES = Resource(Level.IMAGE, INSTANCE_ATTRIBUTES)
STUDY_INSTANCES = Resource(Level.IMAGE, SERIES_ATTRIBUTES + INSTANCE_ATTRIBUTES)
ALL_INSTANCES = Resource(Level.IMAGE, STUDY_ATTRIBUTES + SERIES_ATTRIBUTES + INSTANCE_ATTRIBUTES)

_LEVELS_AT_OR_ABOVE = {
    Level.STUDY: (Level.PATIENT, Level.STUDY),
    Level.SERIES: (Level.PATIENT, Level.STUDY, Level.SERIES),
    Level.IMAGE: (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE),
}


@dataclass
class Search:
    """A parsed QIDO-RS request: the C-FIND identifier and the paging options."""

    identifier: Dataset
    offset: int = 0
    limit: int = MAX_RESULTS
    fuzzy: bool = False
    capped: bool = True  # the limit is the server's maximum, not the client's


def keyword_of(attribute_id: str) -> str:
    """The keyword of a QIDO-RS ``{attributeID}``: a keyword or eight hex digits
    (PS3.18 8.3.4.1). Sequence paths (``00101002.00100020``) are not supported."""
    text = attribute_id.strip()
    if _TAG.match(text):
        keyword = keyword_for_tag(int(text, 16))
        if keyword:
            return keyword
        raise exceptions.ValidationError({attribute_id: ["Unknown or private attribute tag."]})
    if "." in text:
        raise exceptions.ValidationError(
            {attribute_id: ["Sequence attribute paths are not supported."]}
        )
    if tag_for_keyword(text) is None:
        raise exceptions.ValidationError({attribute_id: ["Unknown attribute keyword."]})
    return text


def _non_negative(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise exceptions.ValidationError({name: ["Must be a non-negative integer."]})
    return number


def _element(keyword: str, values: list[str]) -> DataElement:
    """A matching key with the given values (empty: universal matching / return key)."""
    tag = tag_for_keyword(keyword)
    vr = dictionary_VR(tag).split(" or ")[0]
    if vr == "SQ":
        if any(values):
            raise exceptions.ValidationError({keyword: ["Sequence matching is not supported."]})
        return DataElement(tag, vr, [])
    items: list[str] = []
    for value in values:
        # UID lists: backslash or comma separated (PS3.18 8.3.4.1); other multiple values
        # with a backslash, as in C-FIND.
        separators = r"[\\,]" if vr == "UI" else r"\\"
        items += [item for item in re.split(separators, value) if item != ""]
    value = items[0] if len(items) == 1 else (items or None)
    return DataElement(tag, vr, value, validation_mode=pydicom_config.IGNORE)


def parse_search(params, resource: Resource, path_uids: dict[str, str]) -> Search:
    """The C-FIND identifier of a QIDO-RS query string (a Django QueryDict).

    ``path_uids`` are the UIDs of the target resource (StudyInstanceUID of
    ``/studies/{s}/series``...), which the query string cannot override."""
    search = Search(Dataset(), limit=MAX_RESULTS)
    matching: dict[str, list[str]] = {}
    returned = list(resource.defaults)
    include_all = False
    for name in params:
        values = params.getlist(name)
        control = name.lower()
        if control == "includefield":
            for value in values:
                for field in (item.strip() for item in value.split(",")):
                    if field.lower() == "all":
                        include_all = True
                    elif field:
                        returned.append(keyword_of(field))
        elif control == "limit":
            requested = _non_negative(name, values[-1])
            search.limit = min(requested, MAX_RESULTS)
            search.capped = requested > MAX_RESULTS
        elif control == "offset":
            search.offset = _non_negative(name, values[-1])
        elif control == "fuzzymatching":
            if values[-1].lower() not in ("true", "false"):
                raise exceptions.ValidationError({name: ["Must be true or false."]})
            search.fuzzy = values[-1].lower() == "true"
        else:
            keyword = keyword_of(name)
            if keyword == "QueryRetrieveLevel":  # the resource sets the level
                raise exceptions.ValidationError({name: ["Not a QIDO-RS matching key."]})
            matching.setdefault(keyword, []).extend(values)
    if include_all:
        levels = _LEVELS_AT_OR_ABOVE[resource.level]
        returned += [key.keyword for key in KEYS.values() if key.level in levels]
    for keyword, uid in path_uids.items():
        matching[keyword] = [uid]
    identifier = search.identifier
    identifier.QueryRetrieveLevel = resource.level.value
    for keyword, values in matching.items():
        identifier.add(_element(keyword, values))
    for keyword in dict.fromkeys(returned):
        if keyword not in identifier:
            identifier.add(_element(keyword, []))
    return search


def preferred_media_type(accept: str) -> str | None:
    """The QIDO-RS media type an Accept header allows (PS3.18 10.6.1.3), or None: only the
    JSON forms are served (no ``multipart/related; type="application/dicom+xml"``)."""
    if not accept.strip():
        return MEDIA_TYPES[0]
    best: tuple[float, int, str] | None = None
    for position, media_range in enumerate(accept.split(",")):
        media, *params = (item.strip() for item in media_range.split(";"))
        media = media.lower()
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if media in MEDIA_TYPES:
            chosen = media
        elif media in ("*/*", "application/*"):
            chosen = MEDIA_TYPES[0]
        else:
            continue
        candidate = (-quality, position, chosen)
        if best is None or candidate < best:
            best = candidate
    return best[2] if best else None


def warning_header(request, texts: list[str]) -> str:
    """A Warning header value (RFC 7234 5.5, used by PS3.18 8.4.3): per text, code 299, the
    agent and the quoted text (ASCII, without quotes or backslashes)."""
    agent = request.get_host()
    quoted = (
        text.encode("ascii", "replace").decode("ascii").replace('"', "'").replace("\\", "/")
        for text in texts
    )
    return ", ".join(f'299 {agent} "{text}"' for text in quoted)


def _check_target_exists(path_uids: dict[str, str]) -> None:
    """The study (and series) of a ``/studies/{s}/...`` resource must exist: 404."""
    study_uid = path_uids.get("StudyInstanceUID")
    series_uid = path_uids.get("SeriesInstanceUID")
    if series_uid is not None:
        if not Series.objects.filter(
            series_instance_uid=series_uid, study__study_instance_uid=study_uid
        ).exists():
            raise exceptions.NotFound("No such series in this study.")
    elif study_uid is not None and not Study.objects.filter(study_instance_uid=study_uid).exists():
        raise exceptions.NotFound("No such study.")


def dicomweb_root(request) -> str:
    """The absolute URL of the DICOMweb root this request came in on (``/dicomweb/`` on
    the web port, ``/`` on the DICOMweb port), ending in a slash."""
    studies = reverse("dicomweb-studies")
    return absolute_url(request, studies[: -len("studies")])


def retrieve_url(root: str, response: Dataset, level: Level) -> str:
    """The WADO-RS URL of a match (PS3.18 10.4.1): study, series or instance resource."""
    url = f"{root}studies/{response.StudyInstanceUID}"
    if level in (Level.SERIES, Level.IMAGE):
        url += f"/series/{response.SeriesInstanceUID}"
    if level is Level.IMAGE:
        url += f"/instances/{response.SOPInstanceUID}"
    return url


def search(request, resource: Resource, **path_uids: str) -> HttpResponse:
    """Answer a QIDO-RS request: 200 with a JSON array of matches (empty when none match),
    400 for a bad query, 404 for an unknown target study or series, 406 for an Accept
    without a JSON media type."""
    media_type = preferred_media_type(request.META.get("HTTP_ACCEPT", ""))
    if media_type is None:
        raise exceptions.NotAcceptable(
            "QIDO-RS answers application/dicom+json or application/json only."
        )
    parsed = parse_search(request.GET, resource, path_uids)
    try:
        query = find(parsed.identifier, "study")
    except InvalidIdentifier as exc:
        raise exceptions.ValidationError(str(exc)) from None
    _check_target_exists(path_uids)
    try:
        matches = query.page(parsed.offset, parsed.limit + 1)
    except InvalidIdentifier as exc:
        raise exceptions.ValidationError(str(exc)) from None
    warnings = []
    more = len(matches) > parsed.limit
    matches = matches[: parsed.limit]
    if more and parsed.capped:
        warnings.append(
            "The number of results exceeded the maximum supported by the server. "
            "Additional results can be requested."
        )
    if parsed.fuzzy:
        warnings.append(
            "The fuzzymatching parameter is not supported. "
            "Only literal matching has been performed."
        )
    root = dicomweb_root(request)
    body = []
    for match in matches:
        del match.QueryRetrieveLevel
        match.RetrieveURL = retrieve_url(root, match, resource.level)
        body.append(match.to_json_dict())
    response = HttpResponse(json.dumps(body), content_type=media_type)
    if warnings:
        response["Warning"] = warning_header(request, warnings)
    return response


class QidoView(DicomwebView):
    """GET on one QIDO-RS resource; needs FIND [WADO-DEV]."""

    permission_classes = [MayFind]
    resource: Resource

    def get(self, request, **path_uids: str) -> HttpResponse:
        return search(request, self.resource, **_path_uids(path_uids))


def _path_uids(kwargs: dict[str, str]) -> dict[str, str]:
    names = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID"}
    return {names[name]: value for name, value in kwargs.items()}


class StudySeriesView(QidoView):
    resource = STUDY_SERIES


class AllSeriesView(QidoView):
    resource = ALL_SERIES


class SeriesInstancesView(QidoView):
    resource = SERIES_INSTANCES


class StudyInstancesView(QidoView):
    resource = STUDY_INSTANCES


class AllInstancesView(QidoView):
    resource = ALL_INSTANCES
