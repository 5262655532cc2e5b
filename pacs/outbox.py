"""The one event outbox (DESIGN §2): an event is a row written in the same transaction as
the change it reports, and a drainer per destination delivers it afterwards.

Nothing is lost while a broker is down (the rows wait), nothing is announced for a change
that was rolled back (the row goes with it), and several drainers may run at once: each
claims a batch with a conditional update (``claimed_until``) and marks a row delivered only
after the destination confirmed it. An event is recorded only for destinations that want
it now, so with RabbitMQ off nothing piles up.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from enum import StrEnum

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pacs.config import get_amqp_settings
from pacs.models import OutboxEvent


class EventKind(StrEnum):
    """What happened [AMQP-3]."""

    MWL_STATUS_CHANGED = "mwl_status_changed"
    NEW_STUDY = "new_study"
    NEW_SERIES = "new_series"


class Destination(StrEnum):
    AMQP = "amqp"


# The RabbitMQ settings toggle of each event kind [AMQP-1].
_AMQP_TOGGLES = {
    EventKind.MWL_STATUS_CHANGED: "send_mwl_status",
    EventKind.NEW_STUDY: "send_new_study",
    EventKind.NEW_SERIES: "send_new_series",
}

CLAIM_SECONDS = 60


def destinations_for(kind: EventKind) -> list[Destination]:
    """Where an event of ``kind`` goes now: RabbitMQ when it is enabled and the kind's
    toggle is on."""
    amqp = get_amqp_settings()
    if amqp.enabled and getattr(amqp, _AMQP_TOGGLES[kind]):
        return [Destination.AMQP]
    return []


def record_event(kind: EventKind, payload: dict) -> list[OutboxEvent]:
    """Write the event's outbox rows; call inside the transaction of the change."""
    return [
        OutboxEvent.objects.create(destination=destination, kind=kind, payload=payload)
        for destination in destinations_for(kind)
    ]


def claim_batch(destination: Destination, limit: int = 100) -> list[OutboxEvent]:
    """Claim up to ``limit`` undelivered events, oldest first, for ``CLAIM_SECONDS``: rows
    another drainer holds are skipped, and a crashed drainer's claim runs out."""
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    candidates = list(
        OutboxEvent.objects.filter(free, destination=destination, delivered_at__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    if not candidates:
        return []
    until = now + datetime.timedelta(seconds=CLAIM_SECONDS)
    with transaction.atomic():
        claimed = []
        for event_id in candidates:
            # Conditional update per row: only the drainer whose update matched owns it.
            if OutboxEvent.objects.filter(free, pk=event_id).update(claimed_until=until):
                claimed.append(event_id)
    return list(OutboxEvent.objects.filter(pk__in=claimed).order_by("id"))


def mark_delivered(events: Sequence[OutboxEvent]) -> None:
    OutboxEvent.objects.filter(pk__in=[event.pk for event in events]).update(
        delivered_at=timezone.now(), claimed_until=None
    )


def release(events: Sequence[OutboxEvent], error: str) -> None:
    """Give back events that could not be delivered (tried again on the next round)."""
    for event in events:
        OutboxEvent.objects.filter(pk=event.pk).update(
            claimed_until=None, attempts=event.attempts + 1, last_error=error[:2000]
        )


def pending_count(destination: Destination) -> int:
    return OutboxEvent.objects.filter(destination=destination, delivered_at__isnull=True).count()


def purge_delivered(older_than: datetime.timedelta) -> int:
    """Delete events delivered longer than ``older_than`` ago (kept a while for support)."""
    cutoff = timezone.now() - older_than
    deleted, _ = OutboxEvent.objects.filter(delivered_at__lt=cutoff).delete()
    return deleted
