"""``python manage.py runamqp``: the RabbitMQ link with the RIS [AMQP]: consumes the
incoming worklist queue and publishes the outbox (see ``worklist.amqp.runner``).

It stays up when RabbitMQ is disabled (idle, watching the settings), so that enabling it
in the console needs no restart; SIGTERM or SIGINT ends it after the work in hand."""

from __future__ import annotations

import logging
import signal

from django.core.management.base import BaseCommand

from pacs.config import apply_environment


class Command(BaseCommand):
    help = "Run the RabbitMQ link with the RIS (incoming worklist, outgoing events)."

    def handle(self, *args, **options) -> None:
        from worklist.amqp.runner import AmqpRunner

        # pika logs every connection open and close at INFO; ours say what matters.
        logging.getLogger("pika").setLevel(logging.WARNING)
        apply_environment()
        runner = AmqpRunner()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: runner.stop())
        runner.run()
