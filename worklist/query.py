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

from studies.query import pages_by_pk
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

UTF8 = "ISO_IR 192"
_ALL_STEP_KEYWORDS = [*STEP_KEYS, STEP_STATUS_KEYWORD, *STEP_CODE_SEQUENCES]
_ALL_CODE_KEYWORDS = list(CODE_ITEM_KEYS)


def _resolve(obj: Any, path: list[str]) -> Any:
    for part in path:
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


def _tag_and_vr(keyword: str, template: Dataset | None) -> tuple[int, str] | None:
    """The tag of a keyword and its VR (the request's, else the dictionary's)."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    vr = template[keyword].VR if template is not None and keyword in template else None
    return tag, vr or dictionary_VR(tag)


def _requested(item: Dataset | None, every: list[str]) -> list[str]:
    """The keywords asked for in a sequence item; an empty item asks for all of them
    (universal matching of a sequence, PS3.4 C.2.2.2.3)."""
    if item is None or not len(item):
        return every
    return [keyword for keyword in item.dir() if keyword != "SpecificCharacterSet"]


def _first_item(identifier: Dataset | None, keyword: str) -> Dataset | None:
    if identifier is None or keyword not in identifier:
        return None
    items = identifier[keyword].value
    return items[0] if items else None


def _non_ascii(value: Any) -> bool:
    if isinstance(value, str):
        return not value.isascii()
    if isinstance(value, list):
        return any(isinstance(item, str) and not item.isascii() for item in value)
    return False


# A planned element: keyword, tag, VR, and what fills it (a column path, a code sequence
# plan, the step item plan, or None for a key we do not keep).
_Plan = list[tuple[str, int, str, Any]]


class WorklistFind:
    """A validated MWL C-FIND request (raises InvalidIdentifier at once); iterating it
    yields the response identifiers. What each response holds is planned once per request
    (tags, VRs, columns), so a response costs only its values."""

    def __init__(self, identifier: Dataset) -> None:
        self.identifier = identifier
        self.condition = worklist_q(identifier)
        step_item = _first_item(identifier, STEP_SEQUENCE)
        self.plan = self._plan(
            identifier,
            [kw for kw in identifier.dir() if kw != "SpecificCharacterSet"],
            step_item,
        )

    def _plan(self, template: Dataset, keywords: list[str], step_item: Dataset | None) -> _Plan:
        plan: _Plan = []
        for keyword in keywords:
            tag_vr = _tag_and_vr(keyword, template)
            if tag_vr is None:
                continue
            if keyword == STEP_SEQUENCE:
                source: Any = ("step", self._step_plan(step_item))
            elif keyword in TOP_LEVEL_CODE_SEQUENCES:
                source = ("code", self._code_plan(template, keyword))
            elif keyword in PROCEDURE_KEYS:
                source = ("column", PROCEDURE_KEYS[keyword].column.split("__"))
            else:
                source = None
            plan.append((keyword, *tag_vr, source))
        return plan

    def _step_plan(self, step_item: Dataset | None) -> _Plan:
        plan: _Plan = []
        for keyword in _requested(step_item, _ALL_STEP_KEYWORDS):
            tag_vr = _tag_and_vr(keyword, step_item)
            if tag_vr is None:
                continue
            if keyword == STEP_STATUS_KEYWORD:
                source: Any = ("column", ["status"])
            elif keyword in STEP_CODE_SEQUENCES:
                source = ("code", self._code_plan(step_item, keyword))
            elif keyword in STEP_KEYS:
                source = ("column", STEP_KEYS[keyword].column.split("__"))
            else:
                source = None
            plan.append((keyword, *tag_vr, source))
        return plan

    @staticmethod
    def _code_plan(parent: Dataset | None, keyword: str) -> _Plan:
        requested_item = _first_item(parent, keyword)
        prefix = CODE_SEQUENCES[keyword]
        plan: _Plan = []
        for code_keyword in _requested(requested_item, _ALL_CODE_KEYWORDS):
            if code_keyword in CODE_ITEM_KEYS:
                tag_vr = _tag_and_vr(code_keyword, requested_item)
                if tag_vr is not None:
                    column = (prefix + CODE_ITEM_KEYS[code_keyword][1]).split("__")
                    plan.append((code_keyword, *tag_vr, ("column", column)))
        return plan

    def queryset(self) -> QuerySet[ScheduledProcedureStep]:
        return (
            ScheduledProcedureStep.objects.filter(self.condition)
            .select_related("procedure")
            .order_by("pk")
        )

    def __iter__(self) -> Iterator[Dataset]:
        for page in pages_by_pk(self.queryset()):
            for step in page:
                yield self.response(step)

    def response(self, step: ScheduledProcedureStep) -> Dataset:
        """The response identifier of one step (PS3.4 K.6.1.2.3)."""
        flags = {"non_ascii": False}
        rsp = self._build(self.plan, step, flags)
        if flags["non_ascii"]:
            rsp.SpecificCharacterSet = UTF8
        return rsp

    def _build(self, plan: _Plan, step: ScheduledProcedureStep, flags: dict) -> Dataset:
        ds = Dataset()
        for keyword, tag, vr, source in plan:
            value: Any = None
            if source is not None:
                kind, detail = source
                if kind == "step":
                    value = Sequence([self._build(detail, step, flags)])
                elif kind == "code":
                    value = self._code_sequence(detail, step, flags)
                else:
                    value = _dicom_value(_resolve(step, detail), keyword)
                    if _non_ascii(value):
                        flags["non_ascii"] = True
            # Values come from the worklist as they were saved: not re-validated.
            ds.add(DataElement(tag, vr, value, validation_mode=pydicom_config.IGNORE))
        return ds

    def _code_sequence(self, plan: _Plan, step: ScheduledProcedureStep, flags: dict) -> Sequence:
        if not any(_resolve(step, detail[1]) for _kw, _tag, _vr, detail in plan):
            return Sequence([])
        return Sequence([self._build(plan, step, flags)])


def find_worklist(identifier: Dataset) -> WorklistFind:
    """The worklist entries matching an MWL C-FIND identifier [MWL-2]."""
    return WorklistFind(identifier)
