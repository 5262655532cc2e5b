"""The index of everything stored: Patient / Study / Series / Instance [ING-6].

Everything the console list, C-FIND and QIDO-RS match or return lives in indexed columns,
so no query opens a file. Counts are kept on the rows (updated by the ingest and delete
services) so lists need no aggregation."""

from __future__ import annotations

from django.db import models

from storages.models import Storage


class Patient(models.Model):
    """A patient, identified by Patient ID and Issuer of Patient ID."""

    patient_id = models.CharField(max_length=64, blank=True, default="")
    issuer_of_patient_id = models.CharField(max_length=64, blank=True, default="")
    patient_name = models.CharField(max_length=324, blank=True, default="")
    # Case-folded copy for case-insensitive, Unicode-aware matching [STU-1], [ING-7].
    patient_name_search = models.CharField(max_length=324, blank=True, default="", db_index=True)
    patient_birth_date = models.DateField(null=True, blank=True, db_index=True)
    patient_sex = models.CharField(max_length=16, blank=True, default="")
    number_of_studies = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient_id", "issuer_of_patient_id"], name="unique_patient_identity"
            )
        ]
        indexes = [models.Index(fields=["patient_id"])]

    def __str__(self) -> str:
        return f"{self.patient_name} ({self.patient_id})"


class Study(models.Model):
    """A study; the unit of the console list and of most transfers."""

    study_instance_uid = models.CharField(max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="studies")
    study_date = models.DateField(null=True, blank=True, db_index=True)
    study_time = models.CharField(max_length=32, blank=True, default="")
    accession_number = models.CharField(max_length=64, blank=True, default="", db_index=True)
    study_id = models.CharField(max_length=16, blank=True, default="")
    study_description = models.CharField(max_length=256, blank=True, default="")
    referring_physician_name = models.CharField(max_length=324, blank=True, default="")
    # Backslash-separated, sorted: the ModalitiesInStudy value.
    modalities_in_study = models.CharField(max_length=256, blank=True, default="")
    specific_character_set = models.CharField(max_length=128, blank=True, default="")
    number_of_series = models.PositiveIntegerField(default=0)
    number_of_instances = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    received_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.study_instance_uid


class Series(models.Model):
    """A series, with the maintenance flags of forwarding, compression and commitment."""

    series_instance_uid = models.CharField(max_length=64, unique=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    modality = models.CharField(max_length=16, blank=True, default="", db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=256, blank=True, default="")
    body_part_examined = models.CharField(max_length=16, blank=True, default="")
    series_date = models.DateField(null=True, blank=True)
    series_time = models.CharField(max_length=32, blank=True, default="")
    number_of_instances = models.PositiveIntegerField(default=0)
    number_of_frames = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    received_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField()
    forwarded = models.BooleanField(default=False)
    compressed = models.BooleanField(default=False)
    committed = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return self.series_instance_uid


class Instance(models.Model):
    """One stored SOP instance and where its file is."""

    sop_instance_uid = models.CharField(max_length=64, unique=True)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_class_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(default=1)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64)
    storage = models.ForeignKey(Storage, on_delete=models.CASCADE, related_name="instances")
    relative_path = models.CharField(max_length=512)
    size_bytes = models.PositiveBigIntegerField()
    received_at = models.DateTimeField()
    source_ae_title = models.CharField(max_length=16, blank=True, default="")
    source_address = models.CharField(max_length=255, blank=True, default="")

    def __str__(self) -> str:
        return self.sop_instance_uid


class StudyProcedureCode(models.Model):
    """One item of a study's Procedure Code Sequence (0008,1032), indexed when the study is
    created, for sequence matching (PS3.4 C.2.2.2.6) without opening a file."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="procedure_codes")
    position = models.PositiveSmallIntegerField()  # the item's place in the sequence
    code_value = models.CharField(max_length=64, blank=True, default="", db_index=True)
    coding_scheme_designator = models.CharField(max_length=64, blank=True, default="")
    coding_scheme_version = models.CharField(max_length=64, blank=True, default="")
    code_meaning = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["study_id", "position"]

    def __str__(self) -> str:
        return f"{self.coding_scheme_designator} {self.code_value}"


class SeriesRequestAttributes(models.Model):
    """One item of a series' Request Attributes Sequence (0040,0275): the order the series
    was acquired for, indexed when the series is created (PS3.4 C.2.2.2.6)."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="request_attributes")
    position = models.PositiveSmallIntegerField()
    requested_procedure_id = models.CharField(max_length=16, blank=True, default="", db_index=True)
    scheduled_procedure_step_id = models.CharField(
        max_length=16, blank=True, default="", db_index=True
    )
    accession_number = models.CharField(max_length=64, blank=True, default="", db_index=True)
    requested_procedure_description = models.CharField(max_length=64, blank=True, default="")
    scheduled_procedure_step_description = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["series_id", "position"]
        verbose_name_plural = "series request attributes"

    def __str__(self) -> str:
        return f"{self.requested_procedure_id} / {self.scheduled_procedure_step_id}"
