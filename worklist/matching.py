"""MWL C-FIND matching (PS3.4 K.6.1.2, Table K.6-1) on the worklist models, with the
matching types of the one query engine (:mod:`studies.matching`, PS3.4 C.2.2.2).

A worklist entity is a scheduled procedure step with its requested procedure: the
identifier's top-level keys are matched on the procedure's columns, the keys inside the
one item of the Scheduled Procedure Step Sequence on the step's (sequence matching,
C.2.2.2.6: the step matches when every key of the item matches), and the keys inside a code
sequence item on the code columns. Keys not listed here are return keys only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Q
from pydicom.dataset import Dataset

from studies import matching
from studies.matching import InvalidIdentifier, Key, Level, element_values
from worklist.choices import OPEN_STATUSES, StepStatus

_PROCEDURE = "procedure__"


@dataclass(frozen=True)
class MwlKey:
    """A matching / return key: ``column`` on the step (procedure columns prefixed), the
    folded ``match_column`` for person names, ``multi_valued`` for VM 1-n values stored
    joined by backslashes."""

    keyword: str
    vr: str
    column: str
    match_column: str | None = None
    multi_valued: bool = False

    def engine_key(self) -> Key:
        """The key as the query engine describes one (its level plays no part here)."""
        return Key(self.keyword, Level.STUDY, self.vr, self.column, self.match_column)


def _procedure_key(keyword: str, vr: str, column: str, match_column: str | None = None):
    return MwlKey(
        keyword, vr, _PROCEDURE + column, _PROCEDURE + match_column if match_column else None
    )


# Top-level keys: Patient, Visit, Imaging Service Request and Requested Procedure modules.
PROCEDURE_KEYS: dict[str, MwlKey] = {
    key.keyword: key
    for key in (
        _procedure_key("PatientName", "PN", "patient_name", "patient_name_search"),
        _procedure_key("PatientID", "LO", "patient_id"),
        _procedure_key("IssuerOfPatientID", "LO", "issuer_of_patient_id"),
        _procedure_key("PatientBirthDate", "DA", "patient_birth_date"),
        _procedure_key("PatientSex", "CS", "patient_sex"),
        _procedure_key("PatientWeight", "DS", "patient_weight"),
        _procedure_key("PregnancyStatus", "US", "pregnancy_status"),
        _procedure_key("MedicalAlerts", "LO", "medical_alerts"),
        _procedure_key("Allergies", "LO", "allergies"),
        _procedure_key("StudyInstanceUID", "UI", "study_instance_uid"),
        _procedure_key("AccessionNumber", "SH", "accession_number"),
        _procedure_key("AdmissionID", "LO", "admission_id"),
        _procedure_key("RequestedProcedureID", "SH", "requested_procedure_id"),
        _procedure_key("RequestedProcedureDescription", "LO", "requested_procedure_description"),
        _procedure_key("RequestedProcedurePriority", "SH", "requested_procedure_priority"),
        _procedure_key("RequestingPhysician", "PN", "requesting_physician"),
        _procedure_key("ReferringPhysicianName", "PN", "referring_physician_name"),
    )
}
# Keys of the Scheduled Procedure Step Sequence item (0040,0100).
STEP_KEYS: dict[str, MwlKey] = {
    key.keyword: key
    for key in (
        MwlKey("Modality", "CS", "modality"),
        MwlKey("ScheduledStationAETitle", "AE", "station_ae_title", multi_valued=True),
        MwlKey("ScheduledStationName", "SH", "station_name"),
        MwlKey("ScheduledProcedureStepLocation", "SH", "location"),
        MwlKey("ScheduledProcedureStepStartDate", "DA", "start_date"),
        MwlKey("ScheduledProcedureStepStartTime", "TM", "start_time"),
        MwlKey("ScheduledProcedureStepDescription", "LO", "description"),
        MwlKey("ScheduledPerformingPhysicianName", "PN", "performing_physician_name"),
        MwlKey("ScheduledProcedureStepID", "SH", "step_id"),
        MwlKey("PreMedication", "LO", "pre_medication"),
        MwlKey("RequestedContrastAgent", "LO", "requested_contrast_agent"),
        MwlKey("CommentsOnTheScheduledProcedureStep", "LT", "comments"),
    )
}
STEP_STATUS_KEYWORD = "ScheduledProcedureStepStatus"
STEP_SEQUENCE = "ScheduledProcedureStepSequence"
# Code sequences (one item each) and the prefix of their columns.
CODE_SEQUENCES = {
    "RequestedProcedureCodeSequence": _PROCEDURE + "procedure_",
    "ScheduledProtocolCodeSequence": "protocol_",
}
CODE_ITEM_KEYS = {
    "CodeValue": ("SH", "code_value"),
    "CodingSchemeDesignator": ("SH", "coding_scheme_designator"),
    "CodingSchemeVersion": ("SH", "coding_scheme_version"),
    "CodeMeaning": ("LO", "code_meaning"),
}
# Where each code sequence sits: at the top level or inside the step item.
TOP_LEVEL_CODE_SEQUENCES = ("RequestedProcedureCodeSequence",)
STEP_CODE_SEQUENCES = ("ScheduledProtocolCodeSequence",)

# Status values a query may name (CS: the DICOM spelling with a space, and STARTED, mean
# IN_PROGRESS).
_STATUS_ALIASES = {"IN PROGRESS": StepStatus.IN_PROGRESS, "STARTED": StepStatus.IN_PROGRESS}


def in_value_list_q(column: str, value: str) -> Q:
    """A multi-valued column (values joined by backslashes) holds a value matching
    ``value`` (PS3.4 C.2.2.2: an entity matches when any one of its values matches).
    Without wildcards this is the engine's "one of the listed values" condition; a wild
    card pattern (C.2.2.2.4) applies to each value on its own, so ``*`` never runs across
    a backslash."""
    if "*" not in value and "?" not in value:
        return matching.modality_in_study_q(value, column)
    if not value.strip("*"):
        return matching.universal_q()
    one_value = "".join(
        "[^\\\\]*" if char == "*" else "[^\\\\]" if char == "?" else re.escape(char)
        for char in value
    )
    return Q(**{f"{column}__regex": rf"^(.*\\)?{one_value}(\\.*)?$"})


def key_q(key: MwlKey, values: list[str]) -> Q:
    """The condition of one key, by its VR and value (the engine's matching types)."""
    if not values:
        return matching.universal_q()
    if key.multi_valued:
        return matching.multiple_values_q(
            [value.strip() for value in values], lambda value: in_value_list_q(key.column, value)
        )
    return matching.key_q(key.engine_key(), values)


def _code_sequence_q(item: Dataset, prefix: str) -> Q:
    condition = Q()
    for keyword, (vr, column) in CODE_ITEM_KEYS.items():
        values = element_values(item, keyword)
        if values:
            condition &= key_q(MwlKey(keyword, vr, prefix + column), values)
    return condition


def _sequence_item(identifier: Dataset, keyword: str) -> Dataset | None:
    """The one item of a sequence key; zero items (or none given) is universal matching."""
    if keyword not in identifier:
        return None
    items = identifier[keyword].value or []
    if len(items) > 1:
        raise InvalidIdentifier(f"{keyword} holds {len(items)} items; a query has one")
    return items[0] if items else None


def statuses(step_item: Dataset | None) -> list[StepStatus]:
    """The step statuses a query asks for [MWL-2]: SCHEDULED unless it names
    ScheduledProcedureStepStatus values; only open steps (SCHEDULED, IN_PROGRESS) are
    ever worklist entries."""
    values = element_values(step_item, STEP_STATUS_KEYWORD) if step_item is not None else None
    if not values:
        return [StepStatus.SCHEDULED]
    wanted = []
    for value in values:
        text = value.strip().upper()
        status = _STATUS_ALIASES.get(text) or (text if text in StepStatus.values else None)
        if status is not None and StepStatus(status) in OPEN_STATUSES:
            wanted.append(StepStatus(status))
    return wanted


def worklist_q(identifier: Dataset) -> Q:
    """The condition of an MWL C-FIND identifier on :class:`ScheduledProcedureStep`."""
    condition = Q()
    for keyword, key in PROCEDURE_KEYS.items():
        condition &= key_q(key, element_values(identifier, keyword) or [])
    for keyword in TOP_LEVEL_CODE_SEQUENCES:
        item = _sequence_item(identifier, keyword)
        if item is not None:
            condition &= _code_sequence_q(item, CODE_SEQUENCES[keyword])
    step_item = _sequence_item(identifier, STEP_SEQUENCE)
    condition &= Q(status__in=statuses(step_item))
    if step_item is not None:
        for keyword, key in STEP_KEYS.items():
            condition &= key_q(key, element_values(step_item, keyword) or [])
        for keyword in STEP_CODE_SEQUENCES:
            item = _sequence_item(step_item, keyword)
            if item is not None:
                condition &= _code_sequence_q(item, CODE_SEQUENCES[keyword])
    return condition
