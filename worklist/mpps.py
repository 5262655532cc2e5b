"""Modality Performed Procedure Step [MWL-3] (PS3.4 F.7): an N-CREATE starts a performed
step (IN PROGRESS) for the scheduled steps it names, N-SET ends it (COMPLETED or
DISCONTINUED); the scheduled steps follow, each change a status-change event (§9)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pacs.dimse import status
from worklist import services
from worklist.choices import STEP_STATUS_OF_PERFORMED, ChangeSource, PerformedStatus
from worklist.models import PerformedProcedureStep, ScheduledProcedureStep

logger = logging.getLogger(__name__)


class MppsError(Exception):
    """An N-CREATE / N-SET the SCP refuses, with its DIMSE status and the reason."""

    def __init__(self, dimse_status: int, reason: str) -> None:
        super().__init__(reason)
        self.dimse_status = dimse_status


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value).strip() if value is not None else ""


def _performed_status(ds: Dataset, *, required: bool) -> PerformedStatus | None:
    if "PerformedProcedureStepStatus" not in ds:
        if required:
            raise MppsError(status.MISSING_ATTRIBUTE, "no PerformedProcedureStepStatus")
        return None
    text = _text(ds, "PerformedProcedureStepStatus").upper()
    try:
        return PerformedStatus(text)
    except ValueError:
        raise MppsError(
            status.INVALID_ATTRIBUTE_VALUE, f"PerformedProcedureStepStatus {text!r} is unknown"
        ) from None


def scheduled_steps(attributes: Dataset) -> list[ScheduledProcedureStep]:
    """The scheduled steps a performed step names in its Scheduled Step Attributes
    Sequence (0040,0270): by ScheduledProcedureStepID within the procedure given by Study
    Instance UID or Accession Number; an item without a step ID names every step of that
    procedure; an unscheduled performed step (no match) names none."""
    condition = Q()
    for item in attributes.get("ScheduledStepAttributesSequence") or []:
        procedure = Q()
        study_uid = _text(item, "StudyInstanceUID")
        accession = _text(item, "AccessionNumber")
        if study_uid:
            procedure &= Q(procedure__study_instance_uid=study_uid)
        if accession:
            procedure &= Q(procedure__accession_number=accession)
        if not procedure:
            continue
        step_id = _text(item, "ScheduledProcedureStepID")
        condition |= procedure & Q(step_id=step_id) if step_id else procedure
    if not condition:
        return []
    return list(ScheduledProcedureStep.objects.filter(condition).select_related("procedure"))


@dataclass(frozen=True)
class MppsResult:
    sop_instance_uid: str
    status: PerformedStatus
    steps: int


def create(
    sop_instance_uid: str | None, attributes: Dataset, *, calling_ae_title: str
) -> MppsResult:
    """N-CREATE (PS3.4 F.7.2.1): the status must be IN PROGRESS (F.7.2.1.2)."""
    performed = _performed_status(attributes, required=True)
    if performed is not PerformedStatus.IN_PROGRESS:
        raise MppsError(
            status.INVALID_ATTRIBUTE_VALUE,
            "N-CREATE must set PerformedProcedureStepStatus to IN PROGRESS",
        )
    uid = (sop_instance_uid or "").strip() or generate_uid()
    steps = scheduled_steps(attributes)
    try:
        with transaction.atomic():
            mpps = PerformedProcedureStep.objects.create(
                sop_instance_uid=uid,
                status=performed,
                performed_station_ae_title=_text(attributes, "PerformedStationAETitle")[:16]
                or calling_ae_title,
            )
            mpps.steps.set(steps)
            services.change_status(
                steps, STEP_STATUS_OF_PERFORMED[performed], source=ChangeSource.MPPS
            )
    except IntegrityError:
        raise MppsError(status.DUPLICATE_SOP_INSTANCE, f"MPPS {uid} exists") from None
    logger.info("MPPS %s from %s: IN PROGRESS, %d step(s)", uid, calling_ae_title, len(steps))
    return MppsResult(uid, performed, len(steps))


def update(sop_instance_uid: str, modifications: Dataset) -> MppsResult:
    """N-SET (PS3.4 F.7.2.2): a performed step that is COMPLETED or DISCONTINUED may no
    longer be updated (F.7.2.2.2); a final status moves its scheduled steps."""
    with transaction.atomic():
        mpps = (
            PerformedProcedureStep.objects.select_for_update()
            .filter(sop_instance_uid=sop_instance_uid)
            .first()
        )
        if mpps is None:
            raise MppsError(status.NO_SUCH_SOP_INSTANCE, f"no MPPS {sop_instance_uid}")
        if mpps.status != PerformedStatus.IN_PROGRESS:
            raise MppsError(
                status.PROCESSING_FAILURE,
                f"MPPS {sop_instance_uid} is {mpps.status} and may no longer be updated",
            )
        performed = _performed_status(modifications, required=False) or PerformedStatus(mpps.status)
        steps = list(mpps.steps.select_related("procedure"))
        if performed is not PerformedStatus.IN_PROGRESS:
            mpps.status = performed
            mpps.save(update_fields=["status", "updated_at"])
            services.change_status(
                steps, STEP_STATUS_OF_PERFORMED[performed], source=ChangeSource.MPPS
            )
    logger.info("MPPS %s: %s, %d step(s)", sop_instance_uid, performed, len(steps))
    return MppsResult(sop_instance_uid, performed, len(steps))
