"""Serializers of DICOM devices [DEV] and DICOMweb clients [WADO-DEV]."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from devices.models import Device, WadoDevice
from devices.services import EchoOutcome, validate_certificate
from pacs.validators import validate_ae_title, validate_host


class DeviceSerializer(serializers.ModelSerializer):
    """A DICOM device. ``preferred_transfer_syntax`` is a transfer syntax UID or ``as_is``;
    ``status`` is kept by the heartbeat [DEV-HB]."""

    class Meta:
        model = Device
        fields = [
            "id",
            "ae_title",
            "host",
            "port",
            "upload",
            "mwl",
            "download",
            "find",
            "use_tls",
            "certificate",
            "description",
            "preferred_transfer_syntax",
            "allow_lossy",
            "heartbeat",
            "status",
        ]
        read_only_fields = ["status"]
        extra_kwargs = {"certificate": {"trim_whitespace": False}}

    def validate_certificate(self, value: str) -> str:
        if value.strip():
            try:
                validate_certificate(value)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.messages) from None
        return value

    def validate(self, attrs: dict) -> dict:
        def current(name: str):
            if name in attrs:
                return attrs[name]
            return getattr(self.instance, name) if self.instance else None

        if current("use_tls") and not (current("certificate") or "").strip():
            raise serializers.ValidationError({"certificate": ["USE TLS needs a certificate."]})
        return attrs


class EchoRequestSerializer(serializers.Serializer):
    """A peer to C-ECHO that need not be saved as a device."""

    ae_title = serializers.CharField(max_length=16, validators=[validate_ae_title])
    host = serializers.CharField(max_length=255, validators=[validate_host])
    port = serializers.IntegerField(min_value=1, max_value=65535)


class EchoResultSerializer(serializers.Serializer):
    result = serializers.ChoiceField(choices=[outcome.value for outcome in EchoOutcome])
    elapsed_ms = serializers.FloatField()
    message = serializers.CharField()
    status = serializers.IntegerField(allow_null=True, help_text="DIMSE status of the C-ECHO.")


class WadoDeviceSerializer(serializers.ModelSerializer):
    """A DICOMweb client allowed by address, with its permissions [WADO-DEV]."""

    class Meta:
        model = WadoDevice
        fields = ["id", "address", "upload", "download", "find", "description"]
