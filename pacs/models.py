"""The runtime settings record: one row, edited through the API, read by every process."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
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


class AmqpSettings(models.Model):
    """RabbitMQ connection to a RIS and the event toggles [AMQP-1], and the exchange, queue
    and routing-key names of its topology [AMQP-2] (one row, pk=1).

    ``PACS_AMQP_ENABLED`` and ``PACS_AMQP_URL`` give the first values (applied at each start
    when set, see ``pacs.config.apply_environment``); the console edits them at run time."""

    enabled = models.BooleanField(default=False)
    host = models.CharField(max_length=255, default="127.0.0.1")
    port = models.PositiveIntegerField(
        default=5672, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    virtual_host = models.CharField(max_length=255, default="/")
    channel = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(65535)],
        help_text="AMQP channel number the PACS opens.",
    )
    user = models.CharField(max_length=255, default="guest")
    password = models.CharField(max_length=255, default="guest")
    send_mwl_status = models.BooleanField(default=True, help_text="Publish MWL status changes.")
    send_new_study = models.BooleanField(default=True, help_text="Publish new studies.")
    send_new_series = models.BooleanField(default=True, help_text="Publish new series.")
    ris_exchange = models.CharField(max_length=255, default="PACS.RIS")
    request_exchange = models.CharField(max_length=255, default="PACS.request")
    mwl_queue = models.CharField(max_length=255, default="PACS.MWL")
    mwl_changed_queue = models.CharField(max_length=255, default="PACS.MWL_changed")
    studies_queue = models.CharField(max_length=255, default="PACS.Studies")
    mwl_routing_key = models.CharField(max_length=255, default="MWL")
    mwl_state_routing_key = models.CharField(max_length=255, default="mwl_state_rk")
    new_study_routing_key = models.CharField(max_length=255, default="pacs_new_study_rk")
    new_series_routing_key = models.CharField(max_length=255, default="pacs_new_series_rk")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "RabbitMQ settings"
        verbose_name_plural = "RabbitMQ settings"

    def __str__(self) -> str:
        return f"RabbitMQ {self.host}:{self.port} ({'on' if self.enabled else 'off'})"


class OutboxEvent(models.Model):
    """An event to deliver, written in the same transaction as the change it reports
    (DESIGN §2, one event outbox), so it is neither lost when a broker is down nor sent for
    a change that was rolled back. Each ``destination`` (``amqp``; e-mail later) has one
    drainer that claims rows with a conditional update and marks them delivered once the
    broker confirmed them."""

    destination = models.CharField(max_length=16)
    kind = models.CharField(max_length=32)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    # A drainer holds the rows it is sending until this time (a crashed one lets go).
    claimed_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(
                fields=["destination", "id"],
                condition=models.Q(delivered_at__isnull=True),
                name="outbox_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} to {self.destination}"
