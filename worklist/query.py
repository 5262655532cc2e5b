"""MWL C-FIND responses (PS3.4 K.6.1.2): one response per matching scheduled procedure
step, with the requested return keys of the procedure, the step's item of the Scheduled
Procedure Step Sequence and the code sequences filled in.

Rows are read in keyset pages with their procedure joined (never a query per match), and
each response says ISO_IR 192 when a value is not ASCII (PS3.4 C.4.1.1.3)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from django.db.models import QuerySet
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from worklist.matching import (
    CODE_ITEM_KEYS,
    CODE_SEQUENCES,
    PROCEDURE_KEYS,
    STEP_CODE_SEQUENCES,
    STEP_KEYS,
    STEP_SEQUENCE,
    STEP_STATUS_KEYWORD,
    TOP_LEVEL_CODE_SEQUENCES,
    worklist_q,
)
from worklist.models import ScheduledProcedureStep

FIRST_PAGE = 100
PAGE = 500
UTF8 = "ISO_IR 192"
_ALL_STEP_KEYWORDS = [*STEP_KEYS, STEP_STATUS_KEYWORD, *STEP_CODE_SEQUENCES]
_ALL_CODE_KEYWORDS = list(CODE_ITEM_KEYS)


def _resolve(obj: Any, column: str) -> Any:
    for part in column.split("__"):
        obj = getattr(obj, part)
    return obj


def _dicom_value(value: Any, keyword: str) -> Any:
    """A column value as the element value (None for zero length)."""
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    if isinstance(value, float):
        return f"{value:.10g}"
    if keyword == "ScheduledStationAETitle":
        return [item for item in value.split("\\") if item]
    return value


def _element(keyword: str, value: Any, template: Dataset | None) -> DataElement | None:
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    vr = template[keyword].VR if template is not None and keyword in template else None
    vr = vr or dictionary_VR(tag)
    return DataElement(tag, vr, value, validation_mode=pydicom_config.IGNORE)


def _requested(item: Dataset | None, every: list[str]) -> list[str]:
    """The keywords asked for in a sequence item; an empty item asks for all of them
    (universal matching of a sequence, PS3.4 C.2.2.2.3)."""
    if item is None or not len(item):
        return every
    return [keyword for keyword in item.dir() if keyword != "SpecificCharacterSet"]


def _first_item(identifier: Dataset, keyword: str) -> Dataset | None:
    items = identifier[keyword].value if keyword in identifier else None
    return items[0] if items else None


class WorklistFind:
    """A validated MWL C-FIND request (raises InvalidIdentifier at once); iterating it
    yields the response identifiers."""

    def __init__(self, identifier: Dataset) -> None:
        self.identifier = identifier
        self.condition = worklist_q(identifier)
        self.keywords = [kw for kw in identifier.dir() if kw != "SpecificCharacterSet"]
        self.step_item = _first_item(identifier, STEP_SEQUENCE)

    def queryset(self) -> QuerySet[ScheduledProcedureStep]:
        return (
            ScheduledProcedureStep.objects.filter(self.condition)
            .select_related("procedure")
            .order_by("pk")
        )

    def __iter__(self) -> Iterator[Dataset]:
        queryset = self.queryset()
        last_pk = None
        size = FIRST_PAGE
        while True:
            page_qs = queryset if last_pk is None else queryset.filter(pk__gt=last_pk)
            page = list(page_qs[:size])
            for step in page:
                yield self.response(step)
            if len(page) < size:
                return
            last_pk = page[-1].pk
            size = PAGE

    def response(self, step: ScheduledProcedureStep) -> Dataset:
        rsp = Dataset()
        for keyword in self.keywords:
            if keyword == STEP_SEQUENCE:
                value: Any = Sequence([self._step_item(step)])
            elif keyword in TOP_LEVEL_CODE_SEQUENCES:
                value = self._code_sequence(step, keyword, self.identifier)
            elif keyword in PROCEDURE_KEYS:
                value = _dicom_value(_resolve(step, PROCEDURE_KEYS[keyword].column), keyword)
            else:
                value = None  # a key we do not keep: returned zero length
            element = _element(keyword, value, self.identifier)
            if element is not None:
                rsp.add(element)
        if _has_non_ascii(rsp):
            rsp.SpecificCharacterSet = UTF8
        return rsp

    def _step_item(self, step: ScheduledProcedureStep) -> Dataset:
        item = Dataset()
        for keyword in _requested(self.step_item, _ALL_STEP_KEYWORDS):
            if keyword == STEP_STATUS_KEYWORD:
                value: Any = step.status
            elif keyword in STEP_CODE_SEQUENCES:
                value = self._code_sequence(step, keyword, self.step_item)
            elif keyword in STEP_KEYS:
                value = _dicom_value(_resolve(step, STEP_KEYS[keyword].column), keyword)
            else:
                value = None
            element = _element(keyword, value, self.step_item)
            if element is not None:
                item.add(element)
        return item

    @staticmethod
    def _code_sequence(step: ScheduledProcedureStep, keyword: str, parent: Dataset | None):
        prefix = CODE_SEQUENCES[keyword]
        values = {
            code_keyword: _resolve(step, prefix + column)
            for code_keyword, (_vr, column) in CODE_ITEM_KEYS.items()
        }
        if not any(values.values()):
            return Sequence([])
        requested_item = _first_item(parent, keyword) if parent is not None else None
        item = Dataset()
        for code_keyword in _requested(requested_item, _ALL_CODE_KEYWORDS):
            if code_keyword in values:
                item.add(_element(code_keyword, values[code_keyword] or None, requested_item))
        return Sequence([item])


def _has_non_ascii(ds: Dataset) -> bool:
    for element in ds:
        if element.VR == "SQ":
            if any(_has_non_ascii(item) for item in element.value):
                return True
        elif (isinstance(element.value, str) and not element.value.isascii()) or (
            isinstance(element.value, list)
            and any(isinstance(v, str) and not v.isascii() for v in element.value)
        ):
            return True
    return False


def find_worklist(identifier: Dataset) -> WorklistFind:
    """The worklist entries matching an MWL C-FIND identifier [MWL-2]."""
    return WorklistFind(identifier)
