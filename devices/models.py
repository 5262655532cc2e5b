"""Remote application entities: DICOM client devices [DEV] and DICOMweb clients [WADO-DEV]."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from devices.choices import DeviceStatus, PreferredTransferSyntax
from pacs.validators import validate_ae_title, validate_host


class Device(models.Model):
    """A DICOM peer (modality, workstation, PACS) and what it may do here [DEV], [DEV-ACL]."""

    ae_title = models.CharField(max_length=16, unique=True, validators=[validate_ae_title])
    host = models.CharField(max_length=255, validators=[validate_host])
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    upload = models.BooleanField(default=True, help_text="May send us instances (C-STORE).")
    mwl = models.BooleanField(default=False, help_text="May query the modality worklist.")
    download = models.BooleanField(default=False, help_text="May retrieve (C-MOVE, C-GET).")
    find = models.BooleanField(default=True, help_text="May query (C-FIND).")
    use_tls = models.BooleanField(default=False)
    certificate = models.TextField(blank=True, default="", help_text="PEM X.509 certificate.")
    description = models.CharField(max_length=128, blank=True, default="")
    preferred_transfer_syntax = models.CharField(
        max_length=64,
        choices=PreferredTransferSyntax.choices,
        default=PreferredTransferSyntax.AS_IS,
    )
    allow_lossy = models.BooleanField(
        default=False, help_text="Lossy transcoding to this device is allowed [QR-3]."
    )
    heartbeat = models.BooleanField(default=False, help_text="C-ECHO it periodically [DEV-HB].")
    status = models.CharField(
        max_length=16, choices=DeviceStatus.choices, default=DeviceStatus.UNKNOWN
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["ae_title"]

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"

    def clean(self) -> None:
        if self.use_tls and not self.certificate.strip():
            raise ValidationError({"certificate": "USE TLS needs a certificate."})


class WadoDevice(models.Model):
    """A DICOMweb client allowed by its network address [WADO-DEV]."""

    address = models.CharField(max_length=255, unique=True, validators=[validate_host])
    upload = models.BooleanField(default=True, help_text="STOW-RS.")
    download = models.BooleanField(default=True, help_text="WADO-RS and WADO-URI.")
    find = models.BooleanField(default=True, help_text="QIDO-RS.")
    description = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]

    def __str__(self) -> str:
        return self.address
