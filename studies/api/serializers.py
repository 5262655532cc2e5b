"""Serializers of the study list, study detail and series panel [STU-1]-[STU-7]."""

from __future__ import annotations

import re

from rest_framework import serializers

from studies.models import Series, Study
from studies.selectors import (
    DEFAULT_ORDERING,
    MAX_SEARCH_LENGTH,
    ORDERING_FIELDS,
    DateRange,
    SearchField,
    StudySearch,
)

_MODALITY_RE = re.compile(r"^[A-Z0-9_]{1,16}$")
_ORDERING_CHOICES = [key for name in ORDERING_FIELDS for key in (name, f"-{name}")]


class StudySearchSerializer(serializers.Serializer):
    """Query parameters of the study list.

    ``search`` matches ``search_field`` by prefix; a leading ``*`` makes it "contains"; ``*``
    and ``?`` are wildcards; case-insensitive for every script. ``date`` counts back from the
    server's local date: ``last_week`` is the last 7 days including today, ``last_month``
    and ``last_year`` start on the same day one month / one year ago. ``date_from`` and
    ``date_to`` are inclusive; all date filters combine."""

    search = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_SEARCH_LENGTH, trim_whitespace=True
    )
    search_field = serializers.ChoiceField(
        choices=[field.value for field in SearchField], default=SearchField.PATIENT_NAME.value
    )
    modality = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Comma-separated modalities (CT,MR); a study matches if it holds any.",
    )
    date = serializers.ChoiceField(
        choices=[choice.value for choice in DateRange], default=DateRange.ALL.value
    )
    study_date = serializers.DateField(required=False, help_text="Exact study date.")
    date_from = serializers.DateField(required=False, help_text="Study date from (inclusive).")
    date_to = serializers.DateField(required=False, help_text="Study date to (inclusive).")
    birth_date = serializers.DateField(required=False, help_text="Exact patient birth date.")
    ordering = serializers.ChoiceField(choices=_ORDERING_CHOICES, default=DEFAULT_ORDERING)

    def validate_modality(self, value: str) -> list[str]:
        modalities = [item.strip().upper() for item in value.split(",") if item.strip()]
        bad = [item for item in modalities if not _MODALITY_RE.match(item)]
        if bad:
            raise serializers.ValidationError(f"Not a modality: {', '.join(bad)}.")
        return modalities

    def validate(self, attrs: dict) -> dict:
        date_from, date_to = attrs.get("date_from"), attrs.get("date_to")
        if date_from and date_to and date_from > date_to:
            raise serializers.ValidationError({"date_to": ["date_to is before date_from."]})
        return attrs

    def to_search(self) -> StudySearch:
        data = self.validated_data
        return StudySearch(
            search=data.get("search", ""),
            search_field=SearchField(data["search_field"]),
            modalities=tuple(data.get("modality", ())),
            date=DateRange(data["date"]),
            study_date=data.get("study_date"),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            birth_date=data.get("birth_date"),
            ordering=data["ordering"],
        )


class StudySerializer(serializers.ModelSerializer):
    """A row of the study list, patient attributes flattened."""

    patient_name = serializers.CharField(source="patient.patient_name", read_only=True)
    patient_id = serializers.CharField(source="patient.patient_id", read_only=True)
    issuer_of_patient_id = serializers.CharField(
        source="patient.issuer_of_patient_id", read_only=True
    )
    patient_birth_date = serializers.DateField(source="patient.patient_birth_date", read_only=True)
    patient_sex = serializers.CharField(source="patient.patient_sex", read_only=True)
    modalities = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields = [
            "id",
            "study_instance_uid",
            "patient_name",
            "patient_id",
            "issuer_of_patient_id",
            "patient_birth_date",
            "patient_sex",
            "study_date",
            "study_time",
            "accession_number",
            "study_id",
            "study_description",
            "referring_physician_name",
            "modalities_in_study",
            "modalities",
            "number_of_series",
            "number_of_instances",
            "size_bytes",
            "received_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_modalities(self, study: Study) -> list[str]:
        return [item for item in study.modalities_in_study.split("\\") if item]


class SeriesSerializer(serializers.ModelSerializer):
    """A row of the series panel [STU-7]."""

    study_instance_uid = serializers.CharField(source="study.study_instance_uid", read_only=True)

    class Meta:
        model = Series
        fields = [
            "id",
            "series_instance_uid",
            "study",
            "study_instance_uid",
            "modality",
            "series_number",
            "series_description",
            "body_part_examined",
            "series_date",
            "series_time",
            "number_of_instances",
            "number_of_frames",
            "size_bytes",
            "received_at",
            "forwarded",
            "compressed",
            "committed",
        ]
        read_only_fields = fields


class DeleteStudiesSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=10000
    )


class DeletionResultSerializer(serializers.Serializer):
    studies = serializers.IntegerField()
    series = serializers.IntegerField()
    instances = serializers.IntegerField()
    patients = serializers.IntegerField()
