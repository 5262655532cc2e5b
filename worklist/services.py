"""Writes of the worklist: procedures and steps, status changes, deletion, reset, clear
[MWL-5]-[MWL-7]. The console API, the RIS consumer, the MPPS SCP and the .wl import all
change the worklist through these functions.

Every status change is kept as a :class:`StepStatusChange` and, when RabbitMQ wants it, an
"MWL status changed" outbox event written in the same transaction [AMQP-3]."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q
from pydicom.uid import generate_uid

from pacs.outbox import EventKind, record_event
from worklist.choices import FINAL_STATUSES, ChangeSource, StepStatus
from worklist.exceptions import ConfirmationRequired, InvalidStatusChange
from worklist.models import RequestedProcedure, ScheduledProcedureStep, StepStatusChange

# A Study Instance UID the caller leaves to us: generate one [AMQP-4].
SERVER_UID_PLACEHOLDER = ":SERVER"

PROCEDURE_FIELDS = frozenset(
    f.name
    for f in RequestedProcedure._meta.get_fields()
    if f.concrete and f.name not in {"id", "created_at", "updated_at", "patient_name_search"}
)
STEP_FIELDS = frozenset(
    f.name
    for f in ScheduledProcedureStep._meta.get_fields()
    if f.concrete and f.name not in {"id", "procedure", "created_at", "updated_at"}
)


def _procedure_values(values: Mapping[str, object]) -> dict[str, object]:
    unknown = set(values) - PROCEDURE_FIELDS
    if unknown:
        raise ValueError(f"not procedure fields: {sorted(unknown)}")
    return dict(values)


def _apply_procedure(procedure: RequestedProcedure, values: Mapping[str, object]) -> None:
    current_uid = procedure.study_instance_uid
    for name, value in _procedure_values(values).items():
        setattr(procedure, name, value)
    uid = (procedure.study_instance_uid or "").strip()
    if not uid or uid == SERVER_UID_PLACEHOLDER:
        # Generated once, when the procedure is first saved without one [MWL-2]; asking
        # for a generated UID again keeps the one it has.
        procedure.study_instance_uid = current_uid or generate_uid()
    procedure.patient_name_search = procedure.patient_name.casefold()


def _new_step(
    procedure: RequestedProcedure, values: Mapping[str, object]
) -> ScheduledProcedureStep:
    unknown = set(values) - STEP_FIELDS
    if unknown:
        raise ValueError(f"not step fields: {sorted(unknown)}")
    return ScheduledProcedureStep(procedure=procedure, **values)


@transaction.atomic
def create_procedure(
    values: Mapping[str, object], steps: Iterable[Mapping[str, object]]
) -> RequestedProcedure:
    """A requested procedure with its scheduled steps [MWL-7]."""
    procedure = RequestedProcedure()
    _apply_procedure(procedure, values)
    procedure.save()
    if not procedure.requested_procedure_id:
        # RequestedProcedureID is a Type 1 return key of MWL C-FIND (PS3.4 K.6.1.2.2).
        procedure.requested_procedure_id = f"RP{procedure.pk}"[:16]
        procedure.save(update_fields=["requested_procedure_id"])
    new_steps = [_new_step(procedure, step) for step in steps]
    for number, step in enumerate(new_steps, 1):
        # ScheduledProcedureStepID is Type 1 too; MPPS names the step by it.
        step.step_id = step.step_id or f"SPS{procedure.pk}.{number}"[:16]
    ScheduledProcedureStep.objects.bulk_create(new_steps)
    return procedure


@transaction.atomic
def update_procedure(
    procedure: RequestedProcedure, values: Mapping[str, object]
) -> RequestedProcedure:
    _apply_procedure(procedure, values)
    procedure.save()
    return procedure


@transaction.atomic
def add_step(procedure: RequestedProcedure, values: Mapping[str, object]) -> ScheduledProcedureStep:
    step = _new_step(procedure, values)
    step.save()
    if not step.step_id:
        step.step_id = f"SPS{procedure.pk}.{step.pk}"[:16]
        step.save(update_fields=["step_id"])
    return step


@transaction.atomic
def update_step(
    step: ScheduledProcedureStep, values: Mapping[str, object], *, source: ChangeSource
) -> ScheduledProcedureStep:
    """Edit a step; a new ``status`` goes through :func:`change_status` (history, event)."""
    values = dict(values)
    new_status = values.pop("status", None)
    unknown = set(values) - STEP_FIELDS
    if unknown:
        raise ValueError(f"not step fields: {sorted(unknown)}")
    for name, value in values.items():
        setattr(step, name, value)
    step.save()
    if new_status is not None and new_status != step.status:
        change_status([step], StepStatus(new_status), source=source)
        step.refresh_from_db()
    return step


def change_status(
    steps: Iterable[ScheduledProcedureStep], new_status: StepStatus, *, source: ChangeSource
) -> int:
    """Move steps to ``new_status``: each change is kept in the step's history and, once per
    accession number, published as "MWL status changed" through the outbox [AMQP-3]. Steps
    already in that status are left alone. Returns how many changed."""
    changed = 0
    announced: set[str] = set()
    with transaction.atomic():
        for step in steps:
            old_status = step.status
            # Conditional update: a concurrent change of the same step wins once.
            updated = ScheduledProcedureStep.objects.filter(pk=step.pk, status=old_status).exclude(
                status=new_status
            )
            if not updated.update(status=new_status):
                continue
            step.status = new_status
            StepStatusChange.objects.create(
                step=step, old_status=old_status, new_status=new_status, source=source
            )
            changed += 1
            accession_number = step.procedure.accession_number
            if accession_number not in announced:
                announced.add(accession_number)
                record_event(
                    EventKind.MWL_STATUS_CHANGED,
                    {"accession_number": accession_number, "status": str(new_status)},
                )
    return changed


def set_accession_status(
    accession_number: str, new_status: StepStatus, *, source: ChangeSource
) -> int:
    """Every step of the procedures with this accession number to ``new_status`` (the RIS's
    ``<mwl-missed>`` / ``<mwl-canceled>`` [AMQP-4])."""
    steps = ScheduledProcedureStep.objects.filter(
        procedure__accession_number=accession_number
    ).select_related("procedure")
    return change_status(list(steps), new_status, source=source)


def reset_step(step: ScheduledProcedureStep) -> ScheduledProcedureStep:
    """A step that is not SCHEDULED back to SCHEDULED [MWL-6]."""
    if step.status == StepStatus.SCHEDULED:
        raise InvalidStatusChange("The step is already SCHEDULED.")
    change_status([step], StepStatus.SCHEDULED, source=ChangeSource.CONSOLE)
    return step


def _refuse_unconfirmed(steps: Iterable[ScheduledProcedureStep], confirmed: bool) -> None:
    busy = [step for step in steps if step.status == StepStatus.IN_PROGRESS]
    if busy and not confirmed:
        raise ConfirmationRequired(
            f"{len(busy)} step(s) are IN_PROGRESS; confirm to delete them anyway."
        )


@dataclass
class DeletionResult:
    procedures: int = 0
    steps: int = 0
    procedure_ids: list[int] = field(default_factory=list)


@transaction.atomic
def delete_procedures(ids: Iterable[int], *, confirmed: bool = False) -> DeletionResult:
    """Delete procedures with their steps [MWL-5]; IN_PROGRESS steps need ``confirmed``.
    Unknown ids are ignored."""
    procedures = list(RequestedProcedure.objects.select_for_update().filter(pk__in=list(ids)))
    steps = list(ScheduledProcedureStep.objects.filter(procedure__in=procedures))
    _refuse_unconfirmed(steps, confirmed)
    result = DeletionResult(len(procedures), len(steps), sorted(p.pk for p in procedures))
    RequestedProcedure.objects.filter(pk__in=result.procedure_ids).delete()
    return result


@transaction.atomic
def delete_step(step: ScheduledProcedureStep, *, confirmed: bool = False) -> DeletionResult:
    """Delete one step; deleting the last step of a procedure deletes the procedure
    [MWL-5]. An IN_PROGRESS step needs ``confirmed``."""
    _refuse_unconfirmed([step], confirmed)
    procedure_id = step.procedure_id
    step.delete()
    result = DeletionResult(steps=1)
    if not ScheduledProcedureStep.objects.filter(procedure_id=procedure_id).exists():
        RequestedProcedure.objects.filter(pk=procedure_id).delete()
        result.procedures = 1
        result.procedure_ids = [procedure_id]
    return result


@transaction.atomic
def clear_worklist() -> DeletionResult:
    """Delete every procedure whose steps are all final (COMPLETED, DISCONTINUED, MISSED,
    CANCELED) [MWL-5]; procedures without steps go too."""
    open_steps = ScheduledProcedureStep.objects.filter(~Q(status__in=FINAL_STATUSES))
    finished = RequestedProcedure.objects.exclude(pk__in=open_steps.values("procedure_id"))
    ids = sorted(finished.values_list("pk", flat=True))
    steps = ScheduledProcedureStep.objects.filter(procedure_id__in=ids).count()
    RequestedProcedure.objects.filter(pk__in=ids).delete()
    return DeletionResult(len(ids), steps, ids)
