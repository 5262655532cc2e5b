"""Named values of the worklist app."""

from __future__ import annotations

from django.db import models


class StepStatus(models.TextChoices):
    """Scheduled Procedure Step status [MWL-1] (the DICOM defined terms of (0040,0020) plus
    the RIS states MISSED and CANCELED)."""

    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"
    MISSED = "MISSED"
    CANCELED = "CANCELED"


# Steps in these states are done with: "clear worklist" removes procedures made only of
# them [MWL-5], and the colour of a procedure follows from them [MWL-4].
FINAL_STATUSES = frozenset(
    {StepStatus.COMPLETED, StepStatus.DISCONTINUED, StepStatus.MISSED, StepStatus.CANCELED}
)
OPEN_STATUSES = frozenset({StepStatus.SCHEDULED, StepStatus.IN_PROGRESS})


class ProcedureColour(models.TextChoices):
    """The mark of a procedure in the console list [MWL-4]."""

    GREEN = "green"  # every step COMPLETED
    ORANGE = "orange"  # nothing open, some MISSED / DISCONTINUED / CANCELED
    NONE = "none"  # some step still SCHEDULED or IN_PROGRESS


class ChangeSource(models.TextChoices):
    """Who changed a step's status (kept with each status-change event)."""

    CONSOLE = "console"
    MPPS = "mpps"
    RIS = "ris"
    IMPORT = "import"


class PerformedStatus(models.TextChoices):
    """Performed Procedure Step Status (0040,0252), PS3.3 C.4.14: the values MPPS uses."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


# How an MPPS state moves the scheduled step [MWL-3].
STEP_STATUS_OF_PERFORMED = {
    PerformedStatus.IN_PROGRESS: StepStatus.IN_PROGRESS,
    PerformedStatus.COMPLETED: StepStatus.COMPLETED,
    PerformedStatus.DISCONTINUED: StepStatus.DISCONTINUED,
}
