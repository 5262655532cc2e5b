"""RabbitMQ helpers of the worklist tests: a private virtual host per test on the real broker
(so the default names of [AMQP-2] can be used without meeting other test runs), the runner
in a thread, and a plain pika client playing the RIS."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
import uuid

import pika
import pytest

from pacs.config import invalidate_amqp_settings
from pacs.models import AmqpSettings
from tests.conftest import IN_CI

BROKER_HOST, BROKER_PORT = "127.0.0.1", 5672


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120, check=check
    )


def broker_answers(timeout: float = 1.0) -> bool:
    try:
        connection = pika.BlockingConnection(
            pika.ConnectionParameters(BROKER_HOST, BROKER_PORT, socket_timeout=timeout)
        )
    except Exception:
        return False
    connection.close()
    return True


def require_broker() -> None:
    """The broker answering, and rabbitmqctl (for the private virtual hosts)."""
    if broker_answers() and shutil.which("rabbitmqctl"):
        return
    reason = f"RabbitMQ (and rabbitmqctl) at {BROKER_HOST}:{BROKER_PORT} is needed"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@contextlib.contextmanager
def private_vhost():
    """A virtual host of this test's own, deleted afterwards."""
    require_broker()
    name = f"vesalius-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield name
    finally:
        rabbitmqctl("delete_vhost", name, check=False)


def enable_amqp(vhost: str, **names) -> AmqpSettings:
    row, _ = AmqpSettings.objects.update_or_create(
        pk=1,
        defaults={
            "enabled": True,
            "host": BROKER_HOST,
            "port": BROKER_PORT,
            "virtual_host": vhost,
            "user": "guest",
            "password": "guest",
            **names,
        },
    )
    invalidate_amqp_settings()
    return row


@contextlib.contextmanager
def running_runner(wait_connected: bool = True):
    """The runamqp loop in a thread of this process."""
    from worklist.amqp.runner import AmqpRunner

    runner = AmqpRunner()
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        if wait_connected:
            assert runner.connected.wait(20), "the runner did not connect"
        yield runner
    finally:
        runner.stop()
        thread.join(30)
        assert not thread.is_alive()


class Ris:
    """The RIS side: publishes to the RIS exchange, reads the PACS's queues."""

    def __init__(self, vhost: str) -> None:
        self.connection = pika.BlockingConnection(
            pika.ConnectionParameters(BROKER_HOST, BROKER_PORT, virtual_host=vhost)
        )
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish(self, body: bytes | str, exchange: str = "PACS.RIS", key: str = "MWL") -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.channel.basic_publish(exchange, key, data, mandatory=True)

    def take(self, queue: str, count: int, timeout: float = 10.0) -> list[tuple[bytes, dict]]:
        """``count`` messages from ``queue`` (acknowledged), in order, with their headers."""
        found: list[tuple[bytes, dict]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                self.connection.sleep(0.05)
                continue
            found.append((body, dict(properties.headers or {})))
        return found

    def count(self, queue: str) -> int:
        return self.channel.queue_declare(queue, passive=True).method.message_count

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
