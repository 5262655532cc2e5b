"""The console worklist [MWL-4]-[MWL-7] and the RabbitMQ settings [AMQP-1]: thin views over
``worklist.services``, ``worklist.selectors`` and ``worklist.importing``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pacs.config import get_amqp_settings, invalidate_amqp_settings
from worklist import importing, selectors, services
from worklist.amqp.client import check_connection
from worklist.api.serializers import (
    AmqpSettingsSerializer,
    AmqpTestSerializer,
    ConfirmSerializer,
    DeleteProceduresSerializer,
    ImportRequestSerializer,
    ImportResultSerializer,
    ProcedureSearchSerializer,
    ProcedureSerializer,
    StatusChangeSerializer,
    StepSerializer,
    StepWithProcedureSerializer,
    WorklistDeletionSerializer,
)
from worklist.choices import ChangeSource
from worklist.exceptions import ConfirmationRequired, InvalidStatusChange, WorklistError
from worklist.models import RequestedProcedure, ScheduledProcedureStep


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The change conflicts with the state of the worklist."


def _raise_api_error(exc: WorklistError) -> None:
    if isinstance(exc, ConfirmationRequired):
        raise Conflict({"detail": str(exc), "confirm": [str(exc)]}) from exc
    if isinstance(exc, InvalidStatusChange):
        raise Conflict({"detail": str(exc), "status": [str(exc)]}) from exc
    raise exceptions.ValidationError({"non_field_errors": [str(exc)]}) from exc


_CONFIRM_PARAMETER = OpenApiParameter(
    "confirm", bool, description="Delete even when a step is IN_PROGRESS [MWL-5]."
)


def _confirmed(request: Request) -> bool:
    body = ConfirmSerializer(data={"confirm": request.query_params.get("confirm", False)})
    body.is_valid(raise_exception=True)
    return body.validated_data["confirm"]


class ProcedureViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Requested procedures: the console worklist list, create, edit, delete."""

    serializer_class = ProcedureSerializer
    lookup_value_regex = r"\d+"
    filter_backends: list = []
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if self.action == "list":
            params = ProcedureSearchSerializer(data=self.request.query_params)
            params.is_valid(raise_exception=True)
            return selectors.search_procedures(params.to_search())
        return selectors.with_colour(RequestedProcedure.objects.all())

    @extend_schema(parameters=[ProcedureSearchSerializer])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer: ProcedureSerializer) -> None:
        data = dict(serializer.validated_data)
        steps = data.pop("steps")
        serializer.instance = services.create_procedure(data, steps)

    def perform_update(self, serializer: ProcedureSerializer) -> None:
        serializer.instance = services.update_procedure(
            serializer.instance, serializer.validated_data
        )

    @extend_schema(parameters=[_CONFIRM_PARAMETER], responses=WorklistDeletionSerializer)
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        procedure = self.get_object()
        try:
            result = services.delete_procedures([procedure.pk], confirmed=_confirmed(request))
        except WorklistError as exc:
            _raise_api_error(exc)
        return Response(WorklistDeletionSerializer(asdict(result)).data)

    @extend_schema(request=DeleteProceduresSerializer, responses=WorklistDeletionSerializer)
    @action(detail=False, methods=["post"], url_path="delete")
    def delete_many(self, request: Request) -> Response:
        """Delete several procedures (irreversible); unknown ids are ignored."""
        body = DeleteProceduresSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            result = services.delete_procedures(
                body.validated_data["ids"], confirmed=body.validated_data["confirm"]
            )
        except WorklistError as exc:
            _raise_api_error(exc)
        return Response(WorklistDeletionSerializer(asdict(result)).data)

    @extend_schema(
        methods=["get"], responses=StepSerializer(many=True), description="Steps, in order."
    )
    @extend_schema(methods=["post"], request=StepSerializer, responses={201: StepSerializer})
    @action(detail=True, methods=["get", "post"], serializer_class=StepSerializer)
    def steps(self, request: Request, pk: str | None = None) -> Response:
        """The steps of the procedure (not paginated), or add one."""
        procedure = self.get_object()
        if request.method == "POST":
            body = StepSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            step = services.add_step(procedure, body.validated_data)
            return Response(StepSerializer(step).data, status=status.HTTP_201_CREATED)
        return Response(StepSerializer(selectors.steps_of_procedure(procedure), many=True).data)

    @extend_schema(request=None, responses=WorklistDeletionSerializer)
    @action(detail=False, methods=["post"])
    def clear(self, request: Request) -> Response:
        """Clear the worklist: delete every procedure whose steps are all final [MWL-5]."""
        return Response(WorklistDeletionSerializer(asdict(services.clear_worklist())).data)

    @extend_schema(
        request={
            "application/json": ImportRequestSerializer,
            "multipart/form-data": ImportRequestSerializer,
        },
        responses=ImportResultSerializer,
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[JSONParser, MultiPartParser, FormParser],
    )
    def import_files(self, request: Request) -> Response:
        """Import DICOM worklist files (.wl) from a server folder or uploaded [MWL-7]."""
        data = request.data
        if hasattr(data, "getlist"):
            data = {"folder": data.get("folder", ""), "files": data.getlist("files")}
            data = {key: value for key, value in data.items() if value}
        body = ImportRequestSerializer(data=data)
        body.is_valid(raise_exception=True)
        try:
            if body.validated_data.get("folder"):
                result = importing.import_folder(Path(body.validated_data["folder"]))
            else:
                uploads = body.validated_data["files"]
                result = importing.import_files((upload.name, upload) for upload in uploads)
        except WorklistError as exc:
            raise exceptions.ValidationError({"folder": [str(exc)]}) from exc
        return Response(ImportResultSerializer(asdict(result)).data)


class StepViewSet(
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """One scheduled procedure step: edit (a status change is an event), delete, reset."""

    queryset = ScheduledProcedureStep.objects.select_related("procedure")
    serializer_class = StepWithProcedureSerializer
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_update(self, serializer: StepWithProcedureSerializer) -> None:
        serializer.instance = services.update_step(
            serializer.instance, serializer.validated_data, source=ChangeSource.CONSOLE
        )

    @extend_schema(parameters=[_CONFIRM_PARAMETER], responses=WorklistDeletionSerializer)
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        """Delete the step; the last step of a procedure takes the procedure with it."""
        step = self.get_object()
        try:
            result = services.delete_step(step, confirmed=_confirmed(request))
        except WorklistError as exc:
            _raise_api_error(exc)
        return Response(WorklistDeletionSerializer(asdict(result)).data)

    @extend_schema(
        request=None,
        responses={200: StepWithProcedureSerializer, 409: OpenApiResponse(description="SCHEDULED")},
    )
    @action(detail=True, methods=["post"])
    def reset(self, request: Request, pk: str | None = None) -> Response:
        """Back to SCHEDULED [MWL-6]."""
        step = self.get_object()
        try:
            services.reset_step(step)
        except WorklistError as exc:
            _raise_api_error(exc)
        step.refresh_from_db()
        return Response(StepWithProcedureSerializer(step).data)

    @extend_schema(responses=StatusChangeSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: str | None = None) -> Response:
        """The status changes of the step, oldest first."""
        step = self.get_object()
        changes = step.status_changes.order_by("changed_at", "id")
        return Response(StatusChangeSerializer(changes, many=True).data)


class AmqpSettingsView(APIView):
    """RabbitMQ settings [AMQP-1], [AMQP-2]; the password is write-only. The consumer and
    the publisher pick up a change within seconds."""

    @extend_schema(responses=AmqpSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(AmqpSettingsSerializer(get_amqp_settings(fresh=True)).data)

    @extend_schema(request=AmqpSettingsSerializer, responses=AmqpSettingsSerializer)
    def patch(self, request: Request) -> Response:
        serializer = AmqpSettingsSerializer(
            get_amqp_settings(fresh=True), data=request.data, partial=True
        )
        serializer.is_valid(raise_exception=True)
        serializer.save()
        invalidate_amqp_settings()
        return Response(serializer.data)


class AmqpTestView(APIView):
    """ "Test connection" [AMQP-1]: connect with the saved settings, or with the settings in
    the body (not saved), and say how it went."""

    @extend_schema(request=AmqpSettingsSerializer, responses=AmqpTestSerializer)
    def post(self, request: Request) -> Response:
        row = get_amqp_settings(fresh=True)
        serializer = AmqpSettingsSerializer(row, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        for name, value in serializer.validated_data.items():
            setattr(row, name, value)  # tried, not saved
        return Response(AmqpTestSerializer(asdict(check_connection(row))).data)
