"""The event outbox (DESIGN §2): rows only for wanted events, claimed by one drainer at a
time, delivered once; the XML of each event [AMQP-3]."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from pacs import outbox
from pacs.config import invalidate_amqp_settings
from pacs.models import AmqpSettings, OutboxEvent
from tests.worklist.conftest import make_procedure
from worklist import services
from worklist.amqp import messages
from worklist.amqp.runner import event_message
from worklist.choices import ChangeSource, StepStatus

pytestmark = pytest.mark.django_db


def _amqp(**fields) -> None:
    AmqpSettings.objects.update_or_create(pk=1, defaults={"enabled": True, **fields})
    invalidate_amqp_settings()


def test_nothing_is_recorded_while_rabbitmq_is_off():
    _amqp(enabled=False)
    procedure = make_procedure()
    services.change_status(list(procedure.steps.all()), StepStatus.MISSED, source="console")
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize(
    ("toggle", "kind"),
    [
        ("send_mwl_status", outbox.EventKind.MWL_STATUS_CHANGED),
        ("send_new_study", outbox.EventKind.NEW_STUDY),
        ("send_new_series", outbox.EventKind.NEW_SERIES),
    ],
)
def test_each_event_kind_follows_its_toggle(toggle, kind):
    _amqp(**{toggle: False})
    assert outbox.record_event(kind, {"uid": "1.2"}) == []
    _amqp(**{toggle: True})
    assert len(outbox.record_event(kind, {"uid": "1.2"})) == 1


def test_a_status_change_is_recorded_once_per_accession_in_the_same_transaction():
    _amqp()
    procedure = make_procedure(statuses=(StepStatus.SCHEDULED,) * 3)
    changed = services.set_accession_status(
        procedure.accession_number, StepStatus.CANCELED, source=ChangeSource.RIS
    )
    assert changed == 3
    events = list(OutboxEvent.objects.values_list("kind", "payload"))
    assert events == [("mwl_status_changed", {"accession_number": "ACC1", "status": "CANCELED"})]


def test_a_claimed_event_is_not_claimed_again_until_its_claim_runs_out():
    _amqp()
    outbox.record_event(outbox.EventKind.NEW_STUDY, {"uid": "1.2.3"})
    first = outbox.claim_batch(outbox.Destination.AMQP)
    assert len(first) == 1
    assert outbox.claim_batch(outbox.Destination.AMQP) == []
    OutboxEvent.objects.update(claimed_until=timezone.now() - datetime.timedelta(seconds=1))
    assert len(outbox.claim_batch(outbox.Destination.AMQP)) == 1


def test_a_delivered_event_is_never_claimed_again_and_a_released_one_is():
    _amqp()
    outbox.record_event(outbox.EventKind.NEW_STUDY, {"uid": "1"})
    outbox.record_event(outbox.EventKind.NEW_SERIES, {"uid": "2"})
    study, series = outbox.claim_batch(outbox.Destination.AMQP)
    outbox.mark_delivered([study])
    outbox.release([series], "broker down")
    again = outbox.claim_batch(outbox.Destination.AMQP)
    assert [event.pk for event in again] == [series.pk]
    assert (again[0].attempts, again[0].last_error) == (1, "broker down")
    assert outbox.pending_count(outbox.Destination.AMQP) == 1


def test_delivered_events_are_purged_after_a_while():
    _amqp()
    outbox.record_event(outbox.EventKind.NEW_STUDY, {"uid": "1"})
    OutboxEvent.objects.update(delivered_at=timezone.now() - datetime.timedelta(days=8))
    assert outbox.purge_delivered(datetime.timedelta(days=7)) == 1


def test_the_messages_are_the_xml_of_the_specification():
    row = AmqpSettings()
    status = OutboxEvent(
        kind="mwl_status_changed", payload={"accession_number": 'A<&>"1', "status": "COMPLETED"}
    )
    assert event_message(row, status) == (
        "PACS.RIS",
        "mwl_state_rk",
        b'<mwl><accession_number>A&lt;&amp;&gt;"1</accession_number>'
        b"<status>COMPLETED</status></mwl>",
    )
    study = OutboxEvent(kind="new_study", payload={"uid": "1.2.3"})
    assert event_message(row, study) == (
        "PACS.request",
        "pacs_new_study_rk",
        b"<study><uid>1.2.3</uid></study>",
    )
    series = OutboxEvent(kind="new_series", payload={"uid": "1.2.4"})
    assert event_message(row, series)[1:] == (
        "pacs_new_series_rk",
        b"<series><uid>1.2.4</uid></series>",
    )
    accession = messages.mwl_status_message("ÅÄÖ", "MISSED")
    assert accession.decode("utf-8") == (
        "<mwl><accession_number>ÅÄÖ</accession_number><status>MISSED</status></mwl>"
    )


def test_an_incoming_message_with_a_doctype_is_refused():
    body = (
        b'<!DOCTYPE mwl [<!ENTITY a "aaaa">]>'
        b"<mwl-missed><accession_number>&a;</accession_number></mwl-missed>"
    )
    with pytest.raises(messages.MalformedMessage, match="DOCTYPE"):
        messages.parse_message(body)


def test_an_incoming_procedure_maps_every_element():
    parsed = messages.parse_message(
        b"<mwl><procedure><patient_id>1</patient_id><pid>ISS</pid><study_uid>1.2.3</study_uid>"
        b"<patient_sex>f</patient_sex><pregnancy_status>2</pregnancy_status>"
        b"<step><modality>mr</modality><station_ae_title>MR1</station_ae_title>"
        b"<start_date>20261203</start_date><start_time>0830</start_time></step>"
        b"<unknown_element>ignored</unknown_element></procedure></mwl>"
    )
    ((values, steps),) = parsed.procedures
    assert values == {
        "patient_id": "1",
        "issuer_of_patient_id": "ISS",
        "study_instance_uid": "1.2.3",
        "patient_sex": "F",
        "pregnancy_status": 2,
    }
    assert steps == [
        {
            "modality": "MR",
            "station_ae_title": "MR1",
            "start_date": datetime.date(2026, 12, 3),
            "start_time": "0830",
        }
    ]


def test_a_ris_message_delivered_twice_adds_its_procedure_once():
    from worklist.amqp.runner import handle_body
    from worklist.models import RequestedProcedure

    body = (
        b"<mwl><procedure><study_uid>1.2.3.4</study_uid><accession_number>TWICE</accession_number>"
        b"<step><modality>CT</modality></step></procedure></mwl>"
    )
    assert handle_body(body) == 1
    assert handle_body(body) == 0
    assert RequestedProcedure.objects.filter(accession_number="TWICE").count() == 1
