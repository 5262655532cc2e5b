"""``manage.py runamqp``: the RabbitMQ link with the RIS [AMQP-1]-[AMQP-4], one loop in one
thread on one connection.

- Consumer: messages of the incoming queue are parsed and applied in one transaction, and
  acknowledged only after the commit. A malformed message is published to the dead-letter
  queue with the reason in its headers, logged, then acknowledged; the consumer carries on.
  A database failure puts the message back (nack with requeue) for a later try.
- Publisher: the outbox rows of the ``amqp`` destination are claimed, published with
  publisher confirms (persistent messages), and marked delivered one by one as the broker
  confirms them; on a failure they are released and tried again after reconnecting.
- With RabbitMQ disabled the loop connects to nothing and checks the settings every few
  seconds; a change of host, credentials or names reconnects and declares the topology.
- A lost connection (broker restart) is retried with a growing back-off (0.5 s to 10 s).
- ``stop`` (SIGTERM) ends the loop after the message or event in hand; unacknowledged
  prefetched messages go back to the queue when the connection closes.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
import time
from dataclasses import dataclass

import pika
from django.db import DatabaseError, close_old_connections, transaction
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError
from pika.spec import Basic, BasicProperties

from pacs import outbox
from pacs.config import get_amqp_settings
from pacs.models import AmqpSettings, OutboxEvent
from worklist import services
from worklist.amqp import client, messages
from worklist.choices import ChangeSource
from worklist.models import RequestedProcedure

logger = logging.getLogger("worklist.amqp")

SETTINGS_SECONDS = 2.0
OUTBOX_POLL_SECONDS = 0.2
EVENTS_PER_BATCH = 100
PREFETCH = 20
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
PURGE_EVERY_SECONDS = 3600
KEEP_DELIVERED = datetime.timedelta(days=7)


def apply_message(message: messages.NewProcedures | messages.AccessionStatus) -> int:
    """Apply a parsed RIS message in one transaction; the number of procedures created or
    steps changed. A procedure whose Study Instance UID is in the worklist already is not
    created again, so a message delivered twice (the broker redelivers one whose
    acknowledgement was lost) adds it once."""
    if isinstance(message, messages.AccessionStatus):
        return services.set_accession_status(
            message.accession_number, message.status, source=ChangeSource.RIS
        )
    created = 0
    with transaction.atomic():
        for values, steps in message.procedures:
            uid = str(values.get("study_instance_uid") or "")
            known = uid not in ("", services.SERVER_UID_PLACEHOLDER) and (
                RequestedProcedure.objects.filter(study_instance_uid=uid).exists()
            )
            if known:
                continue
            services.create_procedure(values, steps)
            created += 1
    return created


def handle_body(body: bytes) -> int:
    """Parse and apply one incoming message body (raises MalformedMessage)."""
    return apply_message(messages.parse_message(body))


def event_message(row: AmqpSettings, event: OutboxEvent) -> tuple[str, str, bytes]:
    """Exchange, routing key and body of an outbox event [AMQP-3]."""
    payload = event.payload
    match event.kind:
        case outbox.EventKind.MWL_STATUS_CHANGED:
            body = messages.mwl_status_message(payload["accession_number"], payload["status"])
            return row.ris_exchange, row.mwl_state_routing_key, body
        case outbox.EventKind.NEW_STUDY:
            body = messages.new_study_message(payload["uid"])
            return row.request_exchange, row.new_study_routing_key, body
        case outbox.EventKind.NEW_SERIES:
            body = messages.new_series_message(payload["uid"])
            return row.request_exchange, row.new_series_routing_key, body
    raise ValueError(f"unknown event kind {event.kind!r}")


def _properties(message_id: str = "", headers: dict | None = None) -> BasicProperties:
    return BasicProperties(
        content_type="application/xml",
        content_encoding="utf-8",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=message_id or None,
        app_id="vesalius-pacs",
        headers=headers,
    )


@dataclass(frozen=True)
class _Link:
    """What a connection was opened for; a change means reconnecting."""

    host: str
    port: int
    virtual_host: str
    user: str
    password: str
    channel: int
    topology: client.Topology

    @classmethod
    def of(cls, row: AmqpSettings) -> _Link:
        return cls(
            row.host,
            row.port,
            row.virtual_host,
            row.user,
            row.password,
            row.channel,
            client.Topology.of(row),
        )


class AmqpRunner:
    """The consumer and publisher loop; :meth:`run` until :meth:`stop`."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._connection: pika.BlockingConnection | None = None
        self._consumer: BlockingChannel | None = None
        self._publisher: BlockingChannel | None = None
        self._link: _Link | None = None
        self._row: AmqpSettings | None = None
        self._backoff = BACKOFF_FIRST
        self._next_attempt = 0.0
        self._consumer_tag = ""
        self.connected = threading.Event()  # for tests and the log

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        logger.info("RabbitMQ link started")
        settings_read = 0.0
        outbox_polled = 0.0
        purged = 0.0
        while not self.stopping:
            now = time.monotonic()
            if self._row is None or now - settings_read >= SETTINGS_SECONDS:
                self._row = self._read_settings()
                settings_read = now
            row = self._row
            if row is None or not row.enabled:
                self._disconnect("RabbitMQ is disabled")
                self._stopping.wait(1.0)
                continue
            if self._link is not None and self._link != _Link.of(row):
                self._disconnect("RabbitMQ settings changed")
            if self._connection is None and not self._connect(row):
                continue
            try:
                assert self._connection is not None
                self._connection.process_data_events(time_limit=0.05)
                if time.monotonic() - outbox_polled >= OUTBOX_POLL_SECONDS:
                    full = self._publish_pending(row)
                    outbox_polled = 0.0 if full else time.monotonic()
                if time.monotonic() - purged >= PURGE_EVERY_SECONDS:
                    outbox.purge_delivered(KEEP_DELIVERED)
                    purged = time.monotonic()
            except (AMQPError, OSError) as exc:
                logger.warning("RabbitMQ connection lost: %s", exc or type(exc).__name__)
                self._drop()
                self._schedule_retry()
            except DatabaseError:
                logger.exception("Database error in the RabbitMQ link; retrying")
                close_old_connections()
                self._stopping.wait(1.0)
        self._disconnect("stopping")
        logger.info("RabbitMQ link stopped")

    def _read_settings(self) -> AmqpSettings | None:
        try:
            close_old_connections()
            return get_amqp_settings(fresh=True)
        except DatabaseError:
            logger.exception("Cannot read the RabbitMQ settings")
            return self._row

    def _schedule_retry(self) -> None:
        self._next_attempt = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def _connect(self, row: AmqpSettings) -> bool:
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            self._stopping.wait(min(wait, 0.5))
            return False
        try:
            connection = client.connect(row)
            try:
                client.declare_topology(connection, row)
                consumer = connection.channel(channel_number=row.channel)
                consumer.basic_qos(prefetch_count=PREFETCH)
                self._consumer_tag = consumer.basic_consume(row.mwl_queue, self._on_message)
                publisher = connection.channel()
                publisher.confirm_delivery()
            except BaseException:
                if connection.is_open:
                    connection.close()
                raise
        except (AMQPError, OSError) as exc:
            logger.warning(
                "Cannot connect to RabbitMQ at %s:%s (%s); retrying in %.1f s",
                row.host,
                row.port,
                exc or type(exc).__name__,
                self._backoff,
            )
            self._schedule_retry()
            return False
        self._connection, self._consumer, self._publisher = connection, consumer, publisher
        self._link = _Link.of(row)
        self._backoff = BACKOFF_FIRST
        self.connected.set()
        logger.info(
            "Connected to RabbitMQ at %s:%s%s; consuming %s",
            row.host,
            row.port,
            row.virtual_host,
            row.mwl_queue,
        )
        return True

    def _drop(self) -> None:
        """Forget a broken connection."""
        connection = self._connection
        self._connection = self._consumer = self._publisher = None
        self._link = None
        self.connected.clear()
        if connection is not None and connection.is_open:
            with contextlib.suppress(AMQPError, OSError):
                connection.close()

    def _disconnect(self, reason: str) -> None:
        if self._connection is None:
            return
        with contextlib.suppress(AMQPError, OSError):
            if self._consumer is not None and self._consumer.is_open and self._consumer_tag:
                # Stop deliveries; prefetched, unacknowledged messages go back on close.
                self._consumer.basic_cancel(self._consumer_tag)
        self._drop()
        logger.info("Disconnected from RabbitMQ: %s", reason)

    # --- consumer --------------------------------------------------------------------------

    def _on_message(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ) -> None:
        try:
            changed = handle_body(body)
        except messages.MalformedMessage as exc:
            self._dead_letter(method, body, str(exc))
        except DatabaseError:
            logger.exception("RIS message not applied (database); it goes back to the queue")
            channel.basic_nack(method.delivery_tag, requeue=True)
            close_old_connections()
            self._stopping.wait(1.0)
            return
        except Exception as exc:
            logger.exception("RIS message could not be applied")
            self._dead_letter(method, body, f"could not be applied: {exc}")
        else:
            logger.info("RIS message applied (%d change(s))", changed)
        channel.basic_ack(method.delivery_tag)

    def _dead_letter(self, method: Basic.Deliver, body: bytes, reason: str) -> None:
        """Publish the message, with the reason, to the dead-letter queue (confirmed)
        before the original is acknowledged [AMQP-4]."""
        assert self._publisher is not None and self._row is not None
        queue = client.dead_letter_queue(self._row)
        headers = {
            "x-rejection-reason": reason,
            "x-original-exchange": method.exchange,
            "x-original-routing-key": method.routing_key,
        }
        self._publisher.basic_publish(
            exchange="",
            routing_key=queue,
            body=body,
            properties=_properties(headers=headers),
            mandatory=True,
        )
        logger.warning("RIS message rejected to %s: %s", queue, reason)

    # --- publisher -------------------------------------------------------------------------

    def _publish_pending(self, row: AmqpSettings) -> bool:
        """Publish the claimed outbox events, each marked delivered once confirmed; True
        when a full batch went (more may be waiting)."""
        close_old_connections()
        events = outbox.claim_batch(outbox.Destination.AMQP, EVENTS_PER_BATCH)
        assert self._publisher is not None
        for index, event in enumerate(events):
            try:
                exchange, routing_key, body = event_message(row, event)
                self._publisher.basic_publish(
                    exchange=exchange,
                    routing_key=routing_key,
                    body=body,
                    properties=_properties(message_id=f"vesalius-event-{event.pk}"),
                    mandatory=True,
                )
            except BaseException as exc:
                outbox.release(events[index:], f"{type(exc).__name__}: {exc}")
                raise
            outbox.mark_delivered([event])
        if events:
            logger.debug("Published %d event(s)", len(events))
        return len(events) == EVENTS_PER_BATCH
