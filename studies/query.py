"""C-FIND responses from the index (PS3.4 C.4.1): the matches of an identifier, one response
identifier per match, with the requested return keys filled in.

The matching itself is :mod:`studies.matching`. Here: which model a level queries, how the
rows are read (keyset pages by primary key, every upper level joined, computed keys as
annotations or one batched query per page: never a query per match, never a file opened),
and how each response identifier is built, including Specific Character Set (PS3.4 C.4.1.1.3:
ISO_IR 192 when a value is not ASCII).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from django.db.models import IntegerField, Model, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from studies.matching import (
    KEYS,
    LEVEL_MODELS,
    MODEL_LEVELS,
    SEQUENCE_KEYS,
    UNIQUE_KEYS,
    Level,
    SequenceKey,
    matching_q,
    path_to,
    query_item,
    query_level,
    sequence_item_q,
)
from studies.models import Instance, Study

# Upper-level rows joined into each match (one query per page).
_SELECT_RELATED = {
    Level.PATIENT: (),
    Level.STUDY: ("patient",),
    Level.SERIES: ("study__patient",),
    Level.IMAGE: ("series__study__patient",),
}
# The first page is small so the first response leaves quickly; then larger pages.
FIRST_PAGE = 100
PAGE = 500


def pages_by_pk(queryset: QuerySet) -> Iterator[list]:
    """The rows of a queryset ordered by primary key, in pages of FIRST_PAGE then PAGE rows,
    each fetched after the last primary key of the page before (keyset pagination: no
    OFFSET, no long-held cursor while the answers go out)."""
    last_pk = None
    size = FIRST_PAGE
    while True:
        page = list((queryset if last_pk is None else queryset.filter(pk__gt=last_pk))[:size])
        if page:
            yield page
        if len(page) < size:
            return
        last_pk = page[-1].pk
        size = PAGE


UTF8 = "ISO_IR 192"
# Keys never copied from the request into the response as plain return keys.
_CONTROL_KEYS = frozenset({"QueryRetrieveLevel", "SpecificCharacterSet"})


class FindQuery:
    """A validated C-FIND request: ``FindQuery(identifier, "study")`` raises
    :class:`studies.matching.InvalidIdentifier` at once; iterating it yields the response
    identifiers."""

    def __init__(
        self,
        identifier: Dataset,
        query_model: str,
        *,
        retrieve_ae_title: str = "",
        combined_date_time: bool = False,
    ):
        self.model, self.level = query_level(identifier, query_model)
        self.condition = matching_q(
            identifier, self.model, self.level, combined_date_time=combined_date_time
        )
        self.retrieve_ae_title = retrieve_ae_title
        levels = MODEL_LEVELS[self.model]
        upper_levels = levels[: levels.index(self.level) + 1]
        requested = [kw for kw in identifier.dir() if kw not in _CONTROL_KEYS]
        # PS3.4 C.4.1.3.1.1: responses carry the unique keys of the query level and above.
        self.keywords = [UNIQUE_KEYS[lvl].keyword for lvl in upper_levels]
        self.keywords += [kw for kw in requested if kw not in self.keywords]
        self.template = identifier  # VRs of keys we do not index (returned zero length)
        # Sequence return keys (PS3.4 C.2.2.2.6): the matching items, with the attributes
        # the query's item asks for (all indexed ones for a zero-length item).
        self.sequences: dict[str, tuple[SequenceKey, Q, list[str]]] = {}
        for keyword in self.keywords:
            key = SEQUENCE_KEYS.get(keyword)
            if key is None or key.level not in upper_levels:
                continue
            item = query_item(identifier, keyword)
            wanted = item.dir() if item is not None else [k.keyword for k in key.items]
            self.sequences[keyword] = (key, sequence_item_q(key, item), wanted)

    def queryset(self) -> QuerySet:
        model: type[Model] = LEVEL_MODELS[self.level]
        queryset = model.objects.filter(self.condition).select_related(*_SELECT_RELATED[self.level])
        patient_path = path_to(self.level, Level.PATIENT)
        for keyword, column in (
            ("NumberOfPatientRelatedSeries", "number_of_series"),
            ("NumberOfPatientRelatedInstances", "number_of_instances"),
        ):
            if keyword in self.keywords:
                totals = (
                    Study.objects.filter(patient_id=OuterRef(f"{patient_path}pk"))
                    .order_by()
                    .values("patient_id")
                    .annotate(total=Sum(column))
                    .values("total")
                )
                queryset = queryset.annotate(
                    **{f"_{keyword}": Coalesce(Subquery(totals), 0, output_field=IntegerField())}
                )
        return queryset.order_by("pk")

    def __iter__(self) -> Iterator[Dataset]:
        for page in pages_by_pk(self.queryset()):
            sop_classes = self._sop_classes_in_study(page)
            sequences = self._sequence_items(page)
            for row in page:
                yield self.response(row, sop_classes, sequences)

    def page(self, offset: int, limit: int) -> list[Dataset]:
        """The response identifiers of matches ``offset`` to ``offset + limit`` in index
        order, in one query plus the batched computed keys (QIDO-RS ``offset`` / ``limit``,
        PS3.18 8.3.4.4)."""
        rows = list(self.queryset()[offset : offset + limit])
        sop_classes = self._sop_classes_in_study(rows)
        return [self.response(row, sop_classes) for row in rows]

    def _sop_classes_in_study(self, page: list[Model]) -> dict[int, list[str]]:
        """SOPClassesInStudy of the studies of a page, in one query."""
        if "SOPClassesInStudy" not in self.keywords or self.level is Level.PATIENT:
            return {}
        study_ids = {self._objects(row)[Level.STUDY].pk for row in page}
        found: dict[int, set[str]] = {}
        rows = (
            Instance.objects.filter(series__study_id__in=study_ids)
            .order_by()
            .values_list("series__study_id", "sop_class_uid")
            .distinct()
        )
        for study_id, sop_class_uid in rows:
            found.setdefault(study_id, set()).add(sop_class_uid)
        return {study_id: sorted(uids) for study_id, uids in found.items()}

    def _sequence_items(self, page: list[Model]) -> dict[str, dict[int, list[Dataset]]]:
        """The matching items of each sequence return key for the rows of a page: one
        query per key and page, on the index's item rows."""
        found: dict[str, dict[int, list[Dataset]]] = {}
        for keyword, (key, condition, wanted) in self.sequences.items():
            owners = {self._objects(row)[key.level].pk for row in page}
            rows = key.model.objects.filter(condition, **{f"{key.owner}_id__in": owners})
            by_owner = found.setdefault(keyword, {})
            for item_row in rows.order_by(f"{key.owner}_id", "position"):
                owner_pk = getattr(item_row, f"{key.owner}_id")
                by_owner.setdefault(owner_pk, []).append(_item(key, item_row, wanted))
        return found

    def _objects(self, row: Model) -> dict[Level, Model]:
        objects = {self.level: row}
        if self.level is Level.IMAGE:
            objects[Level.SERIES] = row.series
        if Level.SERIES in objects:
            objects[Level.STUDY] = objects[Level.SERIES].study
        if Level.STUDY in objects:
            objects[Level.PATIENT] = objects[Level.STUDY].patient
        return objects

    def response(
        self,
        row: Model,
        sop_classes: dict[int, list[str]],
        sequences: dict[str, dict[int, list[Dataset]]] | None = None,
    ) -> Dataset:
        """The response identifier of one match (PS3.4 C.4.1.1.3.2)."""
        objects = self._objects(row)
        rsp = Dataset()
        values: list[tuple[str, Any]] = []
        for keyword in self.keywords:
            if keyword in self.sequences:
                owner = objects[self.sequences[keyword][0].level]
                values.append((keyword, (sequences or {}).get(keyword, {}).get(owner.pk, [])))
                continue
            values.append((keyword, self._value(keyword, row, objects, sop_classes)))
        if any(_non_ascii(value) for _, value in values):
            rsp.SpecificCharacterSet = UTF8
        rsp.QueryRetrieveLevel = self.level.value
        for keyword, value in values:
            tag = tag_for_keyword(keyword)
            if tag is None:
                continue
            vr = self.template[keyword].VR if keyword in self.template else dictionary_VR(tag)
            # Values come from the index as they were received: not re-validated (a stored
            # out-of-range value is returned as is, without a warning per response).
            rsp.add(
                DataElement(
                    tag,
                    vr,
                    (value or []) if vr == "SQ" else value,
                    validation_mode=pydicom_config.IGNORE,
                )
            )
        return rsp

    def _value(
        self,
        keyword: str,
        row: Model,
        objects: dict[Level, Model],
        sop_classes: dict[int, list[str]],
    ) -> Any:
        if keyword == "RetrieveAETitle":
            return self.retrieve_ae_title or None
        if keyword == "InstanceAvailability":
            return "ONLINE"
        if keyword == "QueryRetrieveLevel":
            return self.level.value
        key = KEYS.get(keyword)
        if key is None or key.level not in objects:
            return None  # a key we do not index, or of a level below the query level
        obj = objects[key.level]
        if keyword in ("NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances"):
            return getattr(row, f"_{keyword}", None)
        if keyword == "ModalitiesInStudy":
            return [value for value in obj.modalities_in_study.split("\\") if value] or None
        if keyword == "SOPClassesInStudy":
            return sop_classes.get(obj.pk) or None
        value = getattr(obj, key.column) if key.column else None
        if isinstance(value, date):
            return value.strftime("%Y%m%d")
        if value == "":
            return None
        return value


def _non_ascii(value: Any) -> bool:
    if isinstance(value, str):
        return not value.isascii()
    if isinstance(value, list):
        return any(_non_ascii(item) for item in value)
    if isinstance(value, Dataset):
        return any(_non_ascii(element.value) for element in value)
    return False


def _item(key: SequenceKey, row: Model, wanted: list[str]) -> Dataset:
    """A sequence item of a response from an indexed item row: the ``wanted`` attributes,
    zero length when not indexed or empty."""
    item = Dataset()
    for keyword in wanted:
        tag = tag_for_keyword(keyword)
        if tag is None:
            continue
        item_key = key.item_key(keyword)
        value = getattr(row, item_key.column) if item_key is not None else None
        vr = item_key.vr if item_key is not None else dictionary_VR(tag)
        item.add(
            DataElement(
                tag,
                vr,
                [] if vr == "SQ" else (value or None),
                validation_mode=pydicom_config.IGNORE,
            )
        )
    return item


def find(
    identifier: Dataset,
    query_model: str,
    *,
    retrieve_ae_title: str = "",
    combined_date_time: bool = False,
) -> FindQuery:
    """The matches of a C-FIND identifier (``query_model`` "patient" or "study"), validated
    now (raises InvalidIdentifier), read lazily page by page when iterated.
    ``combined_date_time``: see :func:`studies.matching.matching_q`."""
    return FindQuery(
        identifier,
        query_model,
        retrieve_ae_title=retrieve_ae_title,
        combined_date_time=combined_date_time,
    )
