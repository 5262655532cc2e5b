"""The runtime settings record: one row, edited through the API, read by every process."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models

from pacs.validators import validate_ae_title


class RuntimeSettings(models.Model):
    """Server-wide settings that can change while the PACS runs (one row, pk=1).

    Environment variables that are set explicitly are applied to this row at each
    process start (see ``pacs.config.apply_environment``)."""

    ae_title = models.CharField(max_length=16, default="VESALIUS", validators=[validate_ae_title])
    accept_any_ae = models.BooleanField(
        default=False, help_text="Accept associations from AE titles that are not devices."
    )
    accession_crop = models.BooleanField(
        default=False, help_text="Crop AccessionNumber to 16 characters on ingest [ING-5]."
    )
    overwrite_image = models.BooleanField(
        default=False, help_text="Replace an instance received again with the same SOP UID."
    )
    free_space_limit_mb = models.PositiveBigIntegerField(
        default=2048, help_text="A storage takes new files only above this free space [STO-3]."
    )
    critical_free_space_mb = models.PositiveBigIntegerField(
        default=256,
        validators=[MinValueValidator(0)],
        help_text="Below this on every storage, the store service refuses instances [STO-7].",
    )
    temp_dir = models.CharField(max_length=1024, default="", help_text="Temp folder [STO-6].")
    master_cookie = models.UUIDField(null=True, blank=True, editable=False)
    master_cookie_host = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="If set, the master cookie is accepted only from this IP address or FQDN.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "runtime settings"
        verbose_name_plural = "runtime settings"

    def __str__(self) -> str:
        return f"Runtime settings ({self.ae_title})"
