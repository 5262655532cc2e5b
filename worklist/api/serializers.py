"""Serializers of the console worklist [MWL-4]-[MWL-7] and the RabbitMQ settings
[AMQP-1]."""

from __future__ import annotations

import re

from rest_framework import serializers

from pacs.models import AmqpSettings
from pacs.validators import validate_ae_title, validate_host
from studies.api.serializers import StudySearchSerializer
from studies.selectors import DateRange, SearchField
from worklist.choices import ProcedureColour, StepStatus
from worklist.models import RequestedProcedure, ScheduledProcedureStep, StepStatusChange
from worklist.selectors import (
    COLOUR_OF_RANK,
    DEFAULT_ORDERING,
    ORDERING_FIELDS,
    ProcedureSearch,
)

_TM_RE = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_CS_RE = re.compile(r"^[A-Z0-9_ ]{0,16}$")
_ORDERING_CHOICES = [key for name in ORDERING_FIELDS for key in (name, f"-{name}")]


class ProcedureSearchSerializer(StudySearchSerializer):
    """Query parameters of the worklist: as the study list [STU-1]-[STU-4], the dates being
    the steps' scheduled start dates; ``colour`` filters by the list mark."""

    study_date = None  # type: ignore[assignment]
    start_date = serializers.DateField(required=False, help_text="Exact step start date.")
    colour = serializers.ChoiceField(choices=ProcedureColour.values, required=False)
    ordering = serializers.ChoiceField(choices=_ORDERING_CHOICES, default=DEFAULT_ORDERING)

    def to_search(self) -> ProcedureSearch:  # type: ignore[override]
        data = self.validated_data
        return ProcedureSearch(
            search=data.get("search", ""),
            search_field=SearchField(data["search_field"]),
            modalities=tuple(data.get("modality", ())),
            date=DateRange(data["date"]),
            start_date=data.get("start_date"),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            birth_date=data.get("birth_date"),
            colour=ProcedureColour(data["colour"]) if data.get("colour") else None,
            ordering=data["ordering"],
        )


def _validate_station_ae_titles(value: str) -> str:
    titles = [title.strip() for title in value.split("\\")] if value else []
    for title in titles:
        validate_ae_title(title)
    return "\\".join(titles)


class StepSerializer(serializers.ModelSerializer):
    """A scheduled procedure step; ``station_ae_title`` holds one AE title or several
    joined by backslashes (VM 1-n)."""

    station_ae_title = serializers.CharField(max_length=255, required=False, allow_blank=True)
    modality = serializers.RegexField(_CS_RE, max_length=16, required=False, allow_blank=True)
    start_time = serializers.RegexField(
        _TM_RE, required=False, allow_blank=True, help_text="HHMMSS (HH, HHMM also)."
    )
    status = serializers.ChoiceField(choices=StepStatus.choices, required=False)

    class Meta:
        model = ScheduledProcedureStep
        exclude = ["procedure"]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {
            "step_id": {"max_length": 16},
            "station_name": {"max_length": 16},
            "location": {"max_length": 16},
        }

    def validate_station_ae_title(self, value: str) -> str:
        try:
            return _validate_station_ae_titles(value)
        except Exception as exc:
            raise serializers.ValidationError(getattr(exc, "messages", [str(exc)])) from None


class StepWithProcedureSerializer(StepSerializer):
    class Meta(StepSerializer.Meta):
        exclude = []  # type: ignore[assignment]
        fields = "__all__"
        read_only_fields = ["id", "procedure", "created_at", "updated_at"]


class ProcedureSerializer(serializers.ModelSerializer):
    """A requested procedure with its patient [MWL-1]; ``colour`` is the list mark."""

    colour = serializers.SerializerMethodField()
    step_count = serializers.IntegerField(read_only=True, required=False)
    steps = StepSerializer(many=True, write_only=True, required=False)
    patient_sex = serializers.ChoiceField(
        choices=["", "M", "F", "O"], required=False, allow_blank=True
    )
    pregnancy_status = serializers.ChoiceField(
        choices=[1, 2, 3, 4],
        required=False,
        allow_null=True,
        help_text="1 not pregnant, 2 possibly pregnant, 3 definitely pregnant, 4 unknown.",
    )
    patient_weight = serializers.FloatField(
        required=False, allow_null=True, min_value=0, max_value=1000
    )
    study_instance_uid = serializers.RegexField(
        r"^(:SERVER|[0-9]+(\.[0-9]+)*)?$",
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="Empty or :SERVER: the PACS generates one.",
    )

    class Meta:
        model = RequestedProcedure
        exclude = ["patient_name_search"]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"accession_number": {"max_length": 16}}

    def get_colour(self, procedure: RequestedProcedure) -> str:
        rank = getattr(procedure, "colour_rank", None)
        if rank is None:
            from worklist.selectors import with_colour

            rank = with_colour(RequestedProcedure.objects.filter(pk=procedure.pk))[0].colour_rank
        return COLOUR_OF_RANK[rank].value

    def validate(self, attrs: dict) -> dict:
        if self.instance is None and not attrs.get("steps"):
            raise serializers.ValidationError({"steps": ["A procedure needs at least one step."]})
        if self.instance is not None and "steps" in attrs:
            raise serializers.ValidationError(
                {"steps": ["Edit steps through /api/worklist/steps/ or add them to the procedure."]}
            )
        return attrs


class StatusChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = StepStatusChange
        fields = ["old_status", "new_status", "source", "changed_at"]


class DeleteProceduresSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), allow_empty=False)
    confirm = serializers.BooleanField(
        default=False, help_text="Needed when a step is IN_PROGRESS [MWL-5]."
    )


class ConfirmSerializer(serializers.Serializer):
    confirm = serializers.BooleanField(
        default=False, help_text="Needed when the step is IN_PROGRESS [MWL-5]."
    )


class WorklistDeletionSerializer(serializers.Serializer):
    procedures = serializers.IntegerField()
    steps = serializers.IntegerField()
    procedure_ids = serializers.ListField(child=serializers.IntegerField())


class ImportRequestSerializer(serializers.Serializer):
    folder = serializers.CharField(
        required=False, max_length=4096, help_text="A folder on the server: every .wl file in it."
    )
    files = serializers.ListField(
        child=serializers.FileField(), required=False, help_text="Uploaded .wl files."
    )

    def validate(self, attrs: dict) -> dict:
        if bool(attrs.get("folder")) == bool(attrs.get("files")):
            raise serializers.ValidationError("Give either a folder or files.")
        return attrs


class ImportedFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    procedure_id = serializers.IntegerField(allow_null=True)
    accession_number = serializers.CharField()
    steps = serializers.IntegerField()
    error = serializers.CharField()


class ImportResultSerializer(serializers.Serializer):
    imported = ImportedFileSerializer(many=True)
    failed = ImportedFileSerializer(many=True)


class AmqpSettingsSerializer(serializers.ModelSerializer):
    """RabbitMQ connection, event toggles [AMQP-1] and topology names [AMQP-2]."""

    host = serializers.CharField(max_length=255, validators=[validate_host], required=False)
    password = serializers.CharField(
        max_length=255, write_only=True, required=False, trim_whitespace=False
    )

    class Meta:
        model = AmqpSettings
        exclude = ["id"]
        read_only_fields = ["updated_at"]


class AmqpTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()
    seconds = serializers.FloatField()
