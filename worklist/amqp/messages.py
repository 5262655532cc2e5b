"""The XML messages exchanged with the RIS over RabbitMQ [AMQP-3], [AMQP-4]: UTF-8,
well-formed, with the element names of the specification (values escaped by the XML
writer).

Incoming messages are parsed with the standard library's expat parser; a document with a
DOCTYPE (the door to entity expansion) is refused. Parse errors name the element, never its
value: they are logged, and values are patient data."""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from pacs.validators import validate_ae_title
from worklist.choices import StepStatus


class MalformedMessage(Exception):
    """A message that is not one of the RIS messages of [AMQP-4]; the reason says why."""


# --- Outgoing [AMQP-3] ---------------------------------------------------------------------


def _document(root: str, children: dict[str, str]) -> bytes:
    element = ET.Element(root)
    for name, text in children.items():
        ET.SubElement(element, name).text = text
    return ET.tostring(element, encoding="unicode").encode("utf-8")


def mwl_status_message(accession_number: str, status: str) -> bytes:
    """``<mwl><accession_number>…</accession_number><status>…</status></mwl>``"""
    return _document("mwl", {"accession_number": accession_number, "status": status})


def new_study_message(study_instance_uid: str) -> bytes:
    """``<study><uid>…</uid></study>``"""
    return _document("study", {"uid": study_instance_uid})


def new_series_message(series_instance_uid: str) -> bytes:
    """``<series><uid>…</uid></series>``"""
    return _document("series", {"uid": series_instance_uid})


# --- Incoming [AMQP-4] ---------------------------------------------------------------------

# <procedure> element -> RequestedProcedure field. ``pid`` is the issuer of the patient ID
# (the specification lists patient ID and issuer in that order, [MWL-1]).
_PROCEDURE_ELEMENTS = {
    "patient_id": "patient_id",
    "pid": "issuer_of_patient_id",
    "patient_name": "patient_name",
    "patient_sex": "patient_sex",
    "patient_dob": "patient_birth_date",
    "patient_weight": "patient_weight",
    "pregnancy_status": "pregnancy_status",
    "study_uid": "study_instance_uid",
    "accession_number": "accession_number",
    "admission_id": "admission_id",
    "proc_description": "requested_procedure_description",
    "rpcs_code_value": "procedure_code_value",
    "rpcs_coding_scheme_version": "procedure_coding_scheme_version",
    "rpcs_coding_scheme_designator": "procedure_coding_scheme_designator",
    "rpcs_code_meaning": "procedure_code_meaning",
}
_STEP_ELEMENTS = {
    "modality": "modality",
    "station_ae_title": "station_ae_title",
    "start_date": "start_date",
    "start_time": "start_time",
    "step_description": "description",
    "physician_name": "performing_physician_name",
    "spcs_code_value": "protocol_code_value",
    "spcs_coding_scheme_version": "protocol_coding_scheme_version",
    "spcs_coding_scheme_designator": "protocol_coding_scheme_designator",
    "spcs_code_meaning": "protocol_code_meaning",
}
# Longest value of each field (the DICOM VR's length, or the column's).
_MAX_LENGTH = {
    "patient_id": 64,
    "issuer_of_patient_id": 64,
    "patient_name": 324,
    "study_instance_uid": 64,
    "accession_number": 16,
    "admission_id": 64,
    "requested_procedure_description": 64,
    "modality": 16,
    "station_ae_title": 255,
    "description": 64,
    "performing_physician_name": 324,
}
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_TIME_RE = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_CS_RE = re.compile(r"^[A-Z0-9_ ]*$")


@dataclass
class NewProcedures:
    """``<mwl>``: procedures to create, each ``(values, steps)``."""

    procedures: list[tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)


@dataclass
class AccessionStatus:
    """``<mwl-missed>`` / ``<mwl-canceled>``: every step of the accession to ``status``."""

    accession_number: str
    status: StepStatus


def _date(name: str, text: str) -> datetime.date:
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise MalformedMessage(f"<{name}> is not a yyyymmdd date") from None


def _value(name: str, field_name: str, text: str) -> Any:
    if len(text) > _MAX_LENGTH.get(field_name, 64):
        raise MalformedMessage(f"<{name}> is longer than {_MAX_LENGTH.get(field_name, 64)}")
    if not text:
        return None if field_name in {"patient_birth_date", "start_date"} else ""
    match field_name:
        case "patient_birth_date" | "start_date":
            return _date(name, text)
        case "start_time":
            if not _TIME_RE.match(text):
                raise MalformedMessage(f"<{name}> is not an hhmmss time")
            return text
        case "patient_weight":
            try:
                weight = float(text)
            except ValueError:
                raise MalformedMessage(f"<{name}> is not a number") from None
            if not 0 <= weight <= 1000:
                raise MalformedMessage(f"<{name}> is out of range")
            return weight
        case "pregnancy_status":
            if text not in {"1", "2", "3", "4"}:
                raise MalformedMessage(f"<{name}> is not 1, 2, 3 or 4")
            return int(text)
        case "patient_sex":
            if text.upper() not in {"M", "F", "O"}:
                raise MalformedMessage(f"<{name}> is not M, F or O")
            return text.upper()
        case "study_instance_uid":
            if text != ":SERVER" and not _UID_RE.match(text):
                raise MalformedMessage(f"<{name}> is not a UID or :SERVER")
            return text
        case "modality":
            if not _CS_RE.match(text.upper()):
                raise MalformedMessage(f"<{name}> is not a modality code")
            return text.upper()
        case "station_ae_title":
            titles = [title.strip() for title in text.split("\\")]
            try:
                for title in titles:
                    validate_ae_title(title)
            except Exception:
                raise MalformedMessage(f"<{name}> is not an AE title") from None
            return "\\".join(titles)
    return text


def _fields(element: ET.Element, names: dict[str, str], skip: set[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for child in element:
        if child.tag in skip:
            continue
        field_name = names.get(child.tag)
        if field_name is None:
            continue  # an element we do not know: ignored, for later RIS versions
        if len(child):
            raise MalformedMessage(f"<{child.tag}> holds elements; it takes text")
        values[field_name] = _value(child.tag, field_name, (child.text or "").strip())
    return values


def _parse(body: bytes) -> ET.Element:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage("the message is not UTF-8") from None
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise MalformedMessage("a DOCTYPE is not accepted")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise MalformedMessage(
            f"not well-formed XML ({exc.msg if hasattr(exc, 'msg') else exc})"
        ) from None


def parse_message(body: bytes) -> NewProcedures | AccessionStatus:
    """One incoming message [AMQP-4]; raises :class:`MalformedMessage`."""
    root = _parse(body)
    if root.tag in ("mwl-missed", "mwl-canceled"):
        accession = root.find("accession_number")
        text = (accession.text or "").strip() if accession is not None else ""
        if not text:
            raise MalformedMessage(f"<{root.tag}> without an <accession_number>")
        status = StepStatus.MISSED if root.tag == "mwl-missed" else StepStatus.CANCELED
        return AccessionStatus(text, status)
    if root.tag != "mwl":
        raise MalformedMessage(f"unknown message <{root.tag}>")
    procedures = root.findall("procedure")
    if not procedures:
        raise MalformedMessage("<mwl> without a <procedure>")
    result = NewProcedures()
    for procedure in procedures:
        values = _fields(procedure, _PROCEDURE_ELEMENTS, skip={"step"})
        steps = [_fields(step, _STEP_ELEMENTS, skip=set()) for step in procedure.findall("step")]
        if not steps:
            raise MalformedMessage("<procedure> without a <step>")
        result.procedures.append((values, steps))
    return result
