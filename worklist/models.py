"""Requested procedures and their scheduled procedure steps [MWL-1], the history of step
status changes, and the MPPS instances received [MWL-3].

Everything MWL C-FIND matches or returns is a column (backslash-joined for multi-valued
attributes, as DICOM encodes them), so a worklist query never parses a stored dataset."""

from __future__ import annotations

from django.db import models

from worklist.choices import ChangeSource, PerformedStatus, StepStatus


class RequestedProcedure(models.Model):
    """A requested procedure with its patient and imaging service request attributes
    (PS3.4 K.6.1.2.2, Table K.6-1: Requested Procedure, Imaging Service Request, Visit and
    Patient modules)."""

    patient_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    issuer_of_patient_id = models.CharField(max_length=64, blank=True, default="")
    patient_name = models.CharField(max_length=324, blank=True, default="")
    # Case-folded copy for case-insensitive, Unicode-aware matching (as studies do).
    patient_name_search = models.CharField(max_length=324, blank=True, default="", db_index=True)
    patient_sex = models.CharField(max_length=16, blank=True, default="")
    patient_birth_date = models.DateField(null=True, blank=True, db_index=True)
    patient_weight = models.FloatField(null=True, blank=True, help_text="kg (PatientWeight).")
    pregnancy_status = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="1 not pregnant, 2 possibly, 3 definitely, 4 unknown."
    )
    medical_alerts = models.CharField(max_length=64, blank=True, default="")
    allergies = models.CharField(max_length=64, blank=True, default="")
    study_instance_uid = models.CharField(max_length=64, db_index=True)
    accession_number = models.CharField(max_length=64, blank=True, default="", db_index=True)
    admission_id = models.CharField(max_length=64, blank=True, default="")
    requested_procedure_id = models.CharField(max_length=16, blank=True, default="")
    requested_procedure_description = models.CharField(max_length=64, blank=True, default="")
    requested_procedure_priority = models.CharField(max_length=16, blank=True, default="")
    requesting_physician = models.CharField(max_length=324, blank=True, default="")
    referring_physician_name = models.CharField(max_length=324, blank=True, default="")
    # Requested Procedure Code Sequence (0032,1064), one item.
    procedure_code_value = models.CharField(max_length=64, blank=True, default="")
    procedure_coding_scheme_designator = models.CharField(max_length=64, blank=True, default="")
    procedure_coding_scheme_version = models.CharField(max_length=64, blank=True, default="")
    procedure_code_meaning = models.CharField(max_length=64, blank=True, default="")
    specific_character_set = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Requested procedure {self.accession_number or self.pk}"


class ScheduledProcedureStep(models.Model):
    """One item of the Scheduled Procedure Step Sequence (0040,0100) of a procedure; MWL
    C-FIND answers one response per step (PS3.4 K.6.1.1)."""

    procedure = models.ForeignKey(
        RequestedProcedure, on_delete=models.CASCADE, related_name="steps"
    )
    step_id = models.CharField(max_length=16, blank=True, default="")
    modality = models.CharField(max_length=16, blank=True, default="", db_index=True)
    # ScheduledStationAETitle, VM 1-n: values joined by backslashes.
    station_ae_title = models.CharField(max_length=255, blank=True, default="", db_index=True)
    station_name = models.CharField(max_length=16, blank=True, default="")
    location = models.CharField(max_length=16, blank=True, default="")
    start_date = models.DateField(null=True, blank=True)
    start_time = models.CharField(max_length=16, blank=True, default="", help_text="HHMMSS")
    description = models.CharField(max_length=64, blank=True, default="")
    performing_physician_name = models.CharField(max_length=324, blank=True, default="")
    # Scheduled Protocol Code Sequence (0040,0008), one item.
    protocol_code_value = models.CharField(max_length=64, blank=True, default="")
    protocol_coding_scheme_designator = models.CharField(max_length=64, blank=True, default="")
    protocol_coding_scheme_version = models.CharField(max_length=64, blank=True, default="")
    protocol_code_meaning = models.CharField(max_length=64, blank=True, default="")
    pre_medication = models.CharField(max_length=64, blank=True, default="")
    requested_contrast_agent = models.CharField(max_length=64, blank=True, default="")
    comments = models.TextField(blank=True, default="")
    status = models.CharField(
        max_length=16, choices=StepStatus.choices, default=StepStatus.SCHEDULED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # MWL C-FIND: status first (always matched), then date range.
            models.Index(fields=["status", "start_date", "start_time"], name="step_status_date"),
            models.Index(fields=["station_ae_title", "start_date"], name="step_station_date"),
        ]

    def __str__(self) -> str:
        return f"Step {self.step_id or self.pk} ({self.status})"


class StepStatusChange(models.Model):
    """A status change of a step, kept as its history (MPPS, console, RIS, import)."""

    step = models.ForeignKey(
        ScheduledProcedureStep, on_delete=models.CASCADE, related_name="status_changes"
    )
    old_status = models.CharField(max_length=16, choices=StepStatus.choices)
    new_status = models.CharField(max_length=16, choices=StepStatus.choices)
    source = models.CharField(max_length=16, choices=ChangeSource.choices)
    changed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.old_status} -> {self.new_status} ({self.source})"


class PerformedProcedureStep(models.Model):
    """A Modality Performed Procedure Step SOP instance created by N-CREATE (PS3.4 F.7) and
    the scheduled steps it performs (Scheduled Step Attributes Sequence)."""

    sop_instance_uid = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=PerformedStatus.choices)
    performed_station_ae_title = models.CharField(max_length=16, blank=True, default="")
    steps = models.ManyToManyField(ScheduledProcedureStep, related_name="performed_steps")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"MPPS {self.sop_instance_uid} ({self.status})"
