"""Studies and series: list with search [STU-1]-[STU-4], series panel, ZIP download [STU-5],
deletion [STU-6]."""

from __future__ import annotations

from dataclasses import asdict

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from pacs.api.negotiation import IgnoreAcceptNegotiation
from studies import selectors
from studies.api.serializers import (
    DeleteStudiesSerializer,
    DeletionResultSerializer,
    SeriesSerializer,
    StudySearchSerializer,
    StudySerializer,
)
from studies.archive import safe_component, series_archive, study_archive
from studies.models import Series, Study
from studies.services.deletion import delete_series, delete_studies

_ZIP_RESPONSE = OpenApiResponse(OpenApiTypes.BINARY, description="application/zip, streamed")


def _zip_response(chunks, name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{safe_component(name, "dicom")}.zip"'
    return response


class StudyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The study list of the console and what can be done with a study."""

    serializer_class = StudySerializer
    lookup_value_regex = r"\d+"
    # Search, filters and ordering are the selector's (validated query parameters), not
    # django-filter's.
    filter_backends: list = []

    def get_queryset(self):
        if self.action == "list":
            params = StudySearchSerializer(data=self.request.query_params)
            params.is_valid(raise_exception=True)
            return selectors.search_studies(params.to_search())
        return Study.objects.select_related("patient")

    @extend_schema(parameters=[StudySearchSerializer])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    def perform_destroy(self, instance: Study) -> None:
        delete_studies([instance.pk])

    @extend_schema(responses=SeriesSerializer(many=True))
    @action(detail=True, methods=["get"], serializer_class=SeriesSerializer)
    def series(self, request: Request, pk: str | None = None) -> Response:
        """The series of the study, in series-number order (not paginated)."""
        study = self.get_object()
        queryset = selectors.series_of_study(study).select_related("study")
        return Response(SeriesSerializer(queryset, many=True).data)

    @extend_schema(request=DeleteStudiesSerializer, responses=DeletionResultSerializer)
    @action(detail=False, methods=["post"], url_path="delete")
    def delete_many(self, request: Request) -> Response:
        """Delete several studies at once (irreversible); unknown ids are ignored."""
        body = DeleteStudiesSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = delete_studies(body.validated_data["ids"])
        return Response(DeletionResultSerializer(asdict(result)).data)

    @extend_schema(responses={(200, "application/zip"): _ZIP_RESPONSE})
    @action(detail=True, methods=["get"], content_negotiation_class=IgnoreAcceptNegotiation)
    def download(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        """The study as a streamed ZIP of its DICOM files."""
        study = self.get_object()
        return _zip_response(study_archive(study), study.study_instance_uid)


class SeriesViewSet(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """One series: details, deletion and ZIP download."""

    queryset = Series.objects.select_related("study")
    serializer_class = SeriesSerializer
    lookup_value_regex = r"\d+"

    def perform_destroy(self, instance: Series) -> None:
        delete_series([instance.pk])

    @extend_schema(responses={(200, "application/zip"): _ZIP_RESPONSE})
    @action(detail=True, methods=["get"], content_negotiation_class=IgnoreAcceptNegotiation)
    def download(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        """The series as a streamed ZIP of its DICOM files."""
        series = self.get_object()
        return _zip_response(series_archive(series), series.series_instance_uid)
