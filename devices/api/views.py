"""Devices CRUD with C-ECHO [DEV], and DICOMweb clients CRUD [WADO-DEV]."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from devices import services
from devices.api.serializers import (
    DeviceSerializer,
    EchoRequestSerializer,
    EchoResultSerializer,
    WadoDeviceSerializer,
)
from devices.models import Device, WadoDevice


class DeviceViewSet(viewsets.ModelViewSet):
    """DICOM devices (application entities) and what they may do here."""

    queryset = Device.objects.order_by("ae_title")
    serializer_class = DeviceSerializer
    filterset_fields = ["upload", "mwl", "download", "find", "use_tls", "heartbeat", "status"]

    @extend_schema(request=None, responses=EchoResultSerializer)
    @action(detail=True, methods=["post"])
    def echo(self, request: Request, pk: str | None = None) -> Response:
        """C-ECHO the device; the answer says success / refused / timeout / error and how long
        it took (a failed echo is still a 200: the request itself worked)."""
        device = self.get_object()
        result = services.echo(
            device.ae_title,
            device.host,
            device.port,
            certificate=device.certificate if device.use_tls else None,
        )
        return Response(EchoResultSerializer(asdict(result)).data)

    @extend_schema(
        request=EchoRequestSerializer,
        responses=EchoResultSerializer,
        operation_id="devices_echo_unsaved",
    )
    @action(detail=False, methods=["post"], url_path="echo")
    def echo_unsaved(self, request: Request) -> Response:
        """C-ECHO a peer given by AE title, host and port, before saving it as a device."""
        peer = EchoRequestSerializer(data=request.data)
        peer.is_valid(raise_exception=True)
        result = services.echo(**peer.validated_data)
        return Response(EchoResultSerializer(asdict(result)).data)


class WadoDeviceViewSet(viewsets.ModelViewSet):
    """DICOMweb clients allowed by network address."""

    queryset = WadoDevice.objects.order_by("address")
    serializer_class = WadoDeviceSerializer
    filterset_fields = ["upload", "download", "find"]
