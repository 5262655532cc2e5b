"""Storage folders CRUD [STO-1], [STO-2], [STO-5]."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from storages.api.serializers import StorageDeleteSerializer, StorageSerializer, with_usage
from storages.models import Storage
from storages.services import delete_storage


class StorageViewSet(viewsets.ModelViewSet):
    """Storage folders with free space, used space and number of studies."""

    serializer_class = StorageSerializer
    filterset_fields = ["enabled"]

    def get_queryset(self):
        return with_usage(Storage.objects.order_by("id"))

    @extend_schema(parameters=[StorageDeleteSerializer], responses={204: None})
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        """Remove a storage and its index rows; with ``remove_files=true`` also its files.
        Needs ``confirm=true``."""
        params = StorageDeleteSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        delete_storage(self.get_object(), remove_files=params.validated_data["remove_files"])
        return Response(status=status.HTTP_204_NO_CONTENT)
