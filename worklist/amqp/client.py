"""The RabbitMQ connection and topology [AMQP-1], [AMQP-2], with pika.

The server declares its own topology (idempotent): two durable direct exchanges, three
durable queues and their bindings, by the names in the settings, plus a dead-letter queue
beside the incoming queue. A queue that already exists with other arguments (a RIS
installation's own) is used as it is."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, ChannelClosedByBroker

from pacs.models import AmqpSettings

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0
HEARTBEAT_SECONDS = 30
_PRECONDITION_FAILED = 406


def connection_parameters(row: AmqpSettings) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        host=row.host,
        port=row.port,
        virtual_host=row.virtual_host,
        credentials=pika.PlainCredentials(row.user, row.password),
        heartbeat=HEARTBEAT_SECONDS,
        blocked_connection_timeout=30,
        connection_attempts=1,
        socket_timeout=CONNECT_TIMEOUT_SECONDS,
        stack_timeout=CONNECT_TIMEOUT_SECONDS * 2,
        client_properties={"connection_name": "vesalius-pacs"},
    )


def connect(row: AmqpSettings) -> pika.BlockingConnection:
    return pika.BlockingConnection(connection_parameters(row))


def dead_letter_queue(row: AmqpSettings) -> str:
    """Where malformed incoming messages go, with the reason in a header [AMQP-4]."""
    return f"{row.mwl_queue}.dead-letter"


@dataclass(frozen=True)
class Topology:
    """The names in use, to notice when the settings change them."""

    ris_exchange: str
    request_exchange: str
    mwl_queue: str
    mwl_changed_queue: str
    studies_queue: str
    mwl_routing_key: str
    mwl_state_routing_key: str
    new_study_routing_key: str
    new_series_routing_key: str

    @classmethod
    def of(cls, row: AmqpSettings) -> Topology:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


def _declare_queue(connection: pika.BlockingConnection, channel: BlockingChannel, name: str):
    """Declare a durable queue; if it exists with other properties, use it as it is."""
    try:
        channel.queue_declare(queue=name, durable=True)
        return channel
    except ChannelClosedByBroker as exc:
        if exc.reply_code != _PRECONDITION_FAILED:
            raise
        logger.warning("RabbitMQ queue %s exists with other properties; using it as it is", name)
        channel = connection.channel()
        channel.queue_declare(queue=name, passive=True)
        return channel


def declare_topology(connection: pika.BlockingConnection, row: AmqpSettings) -> None:
    """The exchanges, queues and bindings of [AMQP-2], on a channel of their own."""
    channel = connection.channel()
    for exchange in (row.ris_exchange, row.request_exchange):
        channel.exchange_declare(exchange=exchange, exchange_type="direct", durable=True)
    for queue in (row.mwl_queue, row.mwl_changed_queue, row.studies_queue, dead_letter_queue(row)):
        channel = _declare_queue(connection, channel, queue)
    bindings = (
        (row.mwl_queue, row.ris_exchange, row.mwl_routing_key),
        (row.mwl_changed_queue, row.ris_exchange, row.mwl_state_routing_key),
        (row.studies_queue, row.request_exchange, row.new_study_routing_key),
        (row.studies_queue, row.request_exchange, row.new_series_routing_key),
    )
    for queue, exchange, routing_key in bindings:
        channel.queue_bind(queue=queue, exchange=exchange, routing_key=routing_key)
    channel.close()


@dataclass
class ConnectionTest:
    ok: bool
    message: str
    seconds: float


def check_connection(row: AmqpSettings) -> ConnectionTest:
    """ "Test connection" [AMQP-1]: connect, open the configured channel, and check that
    the incoming queue can be declared; never raises."""
    started = time.monotonic()
    try:
        connection = connect(row)
        try:
            channel = connection.channel(channel_number=row.channel)
            channel.close()
        finally:
            if connection.is_open:
                connection.close()
    except (AMQPError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        return ConnectionTest(
            False,
            f"Cannot use RabbitMQ at {row.host}:{row.port}: {reason}",
            time.monotonic() - started,
        )
    return ConnectionTest(
        True,
        f"Connected to RabbitMQ at {row.host}:{row.port}, virtual host {row.virtual_host}",
        time.monotonic() - started,
    )
