"""Reads of the worklist for the console [MWL-4]: the procedure list with the study list's
search, filters and ordering (``studies.selectors``, the same query engine), the colour of
each procedure, and the steps of one."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)

from studies import matching
from studies.selectors import (
    DateRange,
    SearchField,
    date_range_bounds,
    date_range_q,
    order_by,
    search_q,
)
from worklist.choices import FINAL_STATUSES, OPEN_STATUSES, ProcedureColour, StepStatus
from worklist.models import RequestedProcedure, ScheduledProcedureStep

ORDERING_FIELDS: dict[str, str] = {
    "patient_name": "patient_name_search",
    "patient_id": "patient_id",
    "patient_sex": "patient_sex",
    "patient_birth_date": "patient_birth_date",
    "patient_weight": "patient_weight",
    "pregnancy_status": "pregnancy_status",
    "accession_number": "accession_number",
    "admission_id": "admission_id",
    "requested_procedure_description": "requested_procedure_description",
    "created_at": "created_at",
}
DEFAULT_ORDERING = "-created_at"


@dataclass(frozen=True)
class ProcedureSearch:
    """Validated parameters of the console worklist search; the dates are the steps'
    scheduled start dates (a procedure matches when one of its steps does)."""

    search: str = ""
    search_field: SearchField = SearchField.PATIENT_NAME
    modalities: tuple[str, ...] = ()
    date: DateRange = DateRange.ALL
    start_date: datetime.date | None = None
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    birth_date: datetime.date | None = None
    colour: ProcedureColour | None = None
    ordering: str = DEFAULT_ORDERING


def with_colour(queryset: QuerySet[RequestedProcedure]) -> QuerySet[RequestedProcedure]:
    """Annotate the step counts and the colour mark [MWL-4]: green when every step is
    COMPLETED, orange when none is open and some ended otherwise (MISSED, DISCONTINUED,
    CANCELED), none while a step is SCHEDULED or IN_PROGRESS."""
    return queryset.annotate(
        step_count=Count("steps", distinct=True),
        completed_count=Count("steps", filter=Q(steps__status=StepStatus.COMPLETED), distinct=True),
        open_count=Count("steps", filter=Q(steps__status__in=OPEN_STATUSES), distinct=True),
        other_final_count=Count(
            "steps",
            filter=Q(steps__status__in=FINAL_STATUSES - {StepStatus.COMPLETED}),
            distinct=True,
        ),
    ).annotate(
        colour_rank=Case(
            When(step_count__gt=0, completed_count=F("step_count"), then=Value(2)),
            When(open_count=0, other_final_count__gt=0, then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        )
    )


COLOUR_OF_RANK = {2: ProcedureColour.GREEN, 1: ProcedureColour.ORANGE, 0: ProcedureColour.NONE}
RANK_OF_COLOUR = {colour: rank for rank, colour in COLOUR_OF_RANK.items()}


def search_procedures(params: ProcedureSearch) -> QuerySet[RequestedProcedure]:
    """The console worklist: search, filters and ordering, one query with the colours."""
    queryset = RequestedProcedure.objects.all()
    if params.search:
        queryset = queryset.filter(search_q(params.search, params.search_field, patient_path=""))
    step_conditions = Q()
    if params.modalities:
        step_conditions &= Q(modality__in=params.modalities)
    bounds = date_range_bounds(params.date)
    if bounds:
        step_conditions &= date_range_q("start_date", *bounds)
    if params.start_date:
        step_conditions &= matching.single_value_q("start_date", params.start_date)
    if params.date_from or params.date_to:
        step_conditions &= date_range_q("start_date", params.date_from, params.date_to)
    if step_conditions:
        steps = ScheduledProcedureStep.objects.filter(step_conditions, procedure=OuterRef("pk"))
        queryset = queryset.filter(Exists(steps))
    if params.birth_date:
        queryset = queryset.filter(matching.single_value_q("patient_birth_date", params.birth_date))
    queryset = with_colour(queryset)
    if params.colour is not None:
        queryset = queryset.filter(colour_rank=RANK_OF_COLOUR[params.colour])
    return queryset.order_by(*order_by(params.ordering, ORDERING_FIELDS))


def steps_of_procedure(procedure: RequestedProcedure) -> QuerySet[ScheduledProcedureStep]:
    """The steps list of the selected procedure [MWL-4], in schedule order."""
    return procedure.steps.order_by(
        F("start_date").asc(nulls_last=True), "start_time", "id"
    ).select_related("procedure")
