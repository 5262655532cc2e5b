"""Import of DICOM worklist files (``.wl``, one worklist item each) [MWL-7].

An item is read with the same key tables MWL C-FIND answers from
(:mod:`worklist.matching`), so what a file holds is what a modality gets back."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from studies.matching import InvalidIdentifier, parse_da
from worklist import services
from worklist.choices import StepStatus
from worklist.exceptions import InvalidWorklistItem
from worklist.matching import (
    CODE_ITEM_KEYS,
    CODE_SEQUENCES,
    PROCEDURE_KEYS,
    STEP_KEYS,
    STEP_SEQUENCE,
    STEP_STATUS_KEYWORD,
)
from worklist.models import RequestedProcedure

logger = logging.getLogger(__name__)

_PROCEDURE_PREFIX = "procedure__"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(item).strip() for item in value)
    return str(value).strip()


def _field_value(keyword: str, vr: str, element_value: Any) -> Any:
    text = _text(element_value)
    if vr == "DA":
        try:
            return parse_da(text) if text else None
        except InvalidIdentifier as exc:
            raise InvalidWorklistItem(f"{keyword}: {exc}") from None
    if vr == "TM":
        return text.replace(":", "")
    if vr == "DS":
        try:
            return float(text) if text else None
        except ValueError:
            raise InvalidWorklistItem(f"{keyword}: not a number: {text!r}") from None
    if vr == "US":
        try:
            return int(text) if text else None
        except ValueError:
            raise InvalidWorklistItem(f"{keyword}: not a number: {text!r}") from None
    return text


def _code_values(ds: Dataset, keyword: str, prefix: str) -> dict[str, Any]:
    items = ds.get(keyword)
    if not items:
        return {}
    return {
        prefix + column: _text(items[0].get(code_keyword, ""))
        for code_keyword, (_vr, column) in CODE_ITEM_KEYS.items()
    }


def procedure_from_dataset(ds: Dataset) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The procedure and step field values of one worklist item."""
    values: dict[str, Any] = {}
    for keyword, key in PROCEDURE_KEYS.items():
        if keyword in ds:
            column = key.column.removeprefix(_PROCEDURE_PREFIX)
            values[column] = _field_value(keyword, key.vr, ds[keyword].value)
    code_prefix = CODE_SEQUENCES["RequestedProcedureCodeSequence"]
    for column, value in _code_values(ds, "RequestedProcedureCodeSequence", code_prefix).items():
        values[column.removeprefix(_PROCEDURE_PREFIX)] = value
    if "SpecificCharacterSet" in ds:
        values["specific_character_set"] = _text(ds.SpecificCharacterSet)
    for name in ("patient_name", "requesting_physician", "referring_physician_name"):
        if name in values:
            values[name] = str(values[name])
    steps = []
    for item in ds.get(STEP_SEQUENCE) or []:
        step: dict[str, Any] = {}
        for keyword, key in STEP_KEYS.items():
            if keyword in item:
                step[key.column] = _field_value(keyword, key.vr, item[keyword].value)
        step.update(
            _code_values(
                item,
                "ScheduledProtocolCodeSequence",
                CODE_SEQUENCES["ScheduledProtocolCodeSequence"],
            )
        )
        status = _text(item.get(STEP_STATUS_KEYWORD, "")).upper().replace(" ", "_")
        step["status"] = status if status in StepStatus.values else StepStatus.SCHEDULED
        steps.append(step)
    if not steps:
        raise InvalidWorklistItem("no Scheduled Procedure Step Sequence item")
    return values, steps


@dataclass
class ImportedFile:
    name: str
    procedure_id: int | None = None
    accession_number: str = ""
    steps: int = 0
    error: str = ""


@dataclass
class ImportResult:
    imported: list[ImportedFile] = field(default_factory=list)
    failed: list[ImportedFile] = field(default_factory=list)


def import_item(name: str, source: str | Path | BinaryIO) -> ImportedFile:
    """One worklist file as a procedure; an item whose Study Instance UID is already in
    the worklist is not imported twice."""
    try:
        ds = dcmread(source, force=True)
        values, steps = procedure_from_dataset(ds)
    except (InvalidDicomError, InvalidWorklistItem, OSError, ValueError, EOFError) as exc:
        return ImportedFile(name, error=f"not a worklist item: {exc}")
    except Exception as exc:  # pydicom raises many kinds on a damaged file
        return ImportedFile(name, error=f"not a worklist item: {exc}")
    uid = values.get("study_instance_uid", "")
    if uid and RequestedProcedure.objects.filter(study_instance_uid=uid).exists():
        return ImportedFile(name, error=f"already in the worklist (StudyInstanceUID {uid})")
    procedure = services.create_procedure(values, steps)
    return ImportedFile(name, procedure.pk, procedure.accession_number, len(steps))


def import_files(files: Iterable[tuple[str, str | Path | BinaryIO]]) -> ImportResult:
    result = ImportResult()
    for name, source in files:
        outcome = import_item(name, source)
        (result.failed if outcome.error else result.imported).append(outcome)
    logger.info(
        "Worklist import: %d item(s) imported, %d not", len(result.imported), len(result.failed)
    )
    return result


def import_folder(folder: Path) -> ImportResult:
    """Every ``.wl`` file under ``folder`` (any depth) is tried as a worklist item."""
    if not folder.is_dir():
        raise InvalidWorklistItem(f"{folder} is not a folder")
    paths = sorted(
        path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() == ".wl"
    )
    return import_files((str(path.relative_to(folder)), path) for path in paths)
