"""WADO-RS metadata (PS3.18 10.4.1.1.2, Annex F.2): the DICOM JSON of every instance of a
study, series or instance, with BulkDataURIs for pixel data and other large binary values.

Each instance's JSON is computed once from its file and kept in ``InstanceMetadata``; a
``/metadata`` request reads the cached documents in one query and joins them as text, so it
never parses JSON nor opens a file it has already seen. Instances not cached yet (added to
the series since) are read and cached on the way; rows of deleted or replaced instances go
with them by the cascade, so the cache is always in step with the index.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.db.models import QuerySet
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

from dicomweb.models import InstanceMetadata
from studies.models import Instance

logger = logging.getLogger(__name__)

# Binary values longer than this go out as a BulkDataURI (PS3.18 F.2.7), as pixel data always
# does; shorter ones are InlineBinary.
BULK_DATA_THRESHOLD = 1024
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_UNDEFINED_LENGTH = 0xFFFFFFFF
_BULK_KEY = '"BulkDataURI":"'
# Available Transfer Syntax UID (0008,3002): the stored syntax, what "as stored" gives.
_AVAILABLE_TRANSFER_SYNTAX = "00083002"


def _implicit_vr(tag: int) -> str:
    """The VR of an element read with Implicit VR (PS3.5 A.1): from the dictionary, OW for
    the ambiguous OB/OW values (pixel data in Implicit VR is OW), UN when unknown."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return "OW" if " or " in vr and "OW" in vr else vr.split(" or ")[0]


def _element_json(dataset: Dataset, tag: int, bulk_path: str) -> dict[str, Any] | None:
    raw = dataset.get_item(tag)
    vr = raw.VR or _implicit_vr(tag)
    length = getattr(raw, "length", None)
    if length is None:
        value = raw.value
        length = len(value) if isinstance(value, bytes | bytearray) else 0
    if vr in _BINARY_VRS and length and (tag in _PIXEL_DATA_TAGS or length > BULK_DATA_THRESHOLD):
        # Also undefined-length (encapsulated) values: never read here.
        return {"vr": vr, "BulkDataURI": bulk_path}
    try:
        element = dataset[tag]
    except Exception as exc:  # a value the reader cannot convert: keep its bytes
        logger.debug("Metadata: element %08X kept as UN: %s", tag, exc)
        value = getattr(raw, "value", b"") or b""
        return {"vr": "UN", "InlineBinary": base64.b64encode(value).decode("ascii")}
    if element.VR == "SQ":
        items = [
            dataset_json(item, f"{bulk_path}/{index}/") for index, item in enumerate(element.value)
        ]
        return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
    try:
        return element.to_json_dict(None, BULK_DATA_THRESHOLD)
    except Exception as exc:
        logger.debug("Metadata: element %08X left without value: %s", tag, exc)
        return {"vr": element.VR}


def dataset_json(dataset: Dataset, bulk_prefix: str) -> dict[str, Any]:
    """The DICOM JSON (PS3.18 F.2) of a dataset; a bulk value's URI is `bulk_prefix` and its
    tag path (``7FE00010``, ``00540016/0/00181072``). Group lengths are left out (F.2.1)."""
    result: dict[str, Any] = {}
    for tag in sorted(dataset.keys()):
        if tag.element == 0 or tag.group == 0x0002 or tag == 0xFFFCFFFC:
            continue
        key = f"{int(tag):08X}"
        element = _element_json(dataset, tag, f"{bulk_prefix}{key}")
        if element is not None:
            result[key] = element
    return result


def instance_document(instance: Instance) -> str:
    """The JSON text of one instance, read from its file. BulkDataURIs are relative to the
    DICOMweb root (``studies/.../bulkdata/7FE00010``)."""
    import pydicom

    series = instance.series
    bulk_prefix = (
        f"studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}/bulkdata/"
    )
    path = Path(instance.storage.path) / instance.relative_path
    # Values above the threshold are not read at all (defer_size), so neither is pixel data.
    dataset = pydicom.dcmread(path, defer_size=BULK_DATA_THRESHOLD, force=True)
    document = dataset_json(dataset, bulk_prefix)
    if document.get("00080018", {}).get("Value") != [instance.sop_instance_uid]:
        # pydicom reads what it can of a damaged file: never cache a partial document.
        raise ValueError("the file does not hold the indexed SOP Instance UID")
    document[_AVAILABLE_TRANSFER_SYNTAX] = {"vr": "UI", "Value": [instance.transfer_syntax_uid]}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _compute_missing(instance_ids: list[int]) -> dict[int, str]:
    """Read and cache the documents of instances not cached yet."""
    documents: dict[int, str] = {}
    rows = []
    instances = Instance.objects.filter(pk__in=instance_ids).select_related(
        "storage", "series__study"
    )
    for instance in instances:
        try:
            document = instance_document(instance)
        except Exception as exc:  # an unreadable file must not fail the whole series
            logger.error("Metadata of instance %s not available: %s", instance.pk, exc)
            continue
        documents[instance.pk] = document
        rows.append(InstanceMetadata(instance_id=instance.pk, document=document))
    # Two requests may compute the same instance at once: the first row wins.
    InstanceMetadata.objects.bulk_create(rows, ignore_conflicts=True)
    return documents


def cached_documents(instances: QuerySet[Instance]) -> list[str]:
    """The JSON texts of `instances`, in their order: cached ones in one query, the rest
    computed (only those files are read) and cached."""
    rows = list(instances.values_list("pk", "dicomweb_metadata__document"))
    missing = [pk for pk, document in rows if document is None]
    computed = _compute_missing(missing) if missing else {}
    return [document or computed[pk] for pk, document in rows if document or pk in computed]


def metadata_body(documents: Iterable[str], dicomweb_root: str) -> str:
    """The response body: a JSON array of the documents with absolute BulkDataURIs.

    The key text cannot occur inside a JSON string value (its quotes would be escaped), so
    one replacement over the joined text rewrites exactly the BulkDataURI members."""
    body = "[" + ",".join(documents) + "]"
    return body.replace(_BULK_KEY, _BULK_KEY + dicomweb_root)
