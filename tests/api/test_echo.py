"""C-ECHO from the API to a device [DEV]: success, refused, timeout, with the time taken."""

from __future__ import annotations

import socket

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from devices.models import Device
from devices.services import EchoOutcome, echo

pytestmark = pytest.mark.django_db


@pytest.fixture
def echo_scp():
    """A Verification SCP on a free local port that only answers to called AE ECHOSCP."""
    ae = AE(ae_title="ECHOSCP")
    ae.add_supported_context(Verification)
    ae.require_called_aet = True
    server = ae.start_server(("127.0.0.1", 0), block=False)
    yield server.server_address[1]
    server.shutdown()


def free_port() -> int:
    """A port nobody listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_echo_succeeds_against_a_verification_scp(api, echo_scp):
    device = Device.objects.create(ae_title="ECHOSCP", host="127.0.0.1", port=echo_scp)
    response = api.post(f"/api/devices/{device.pk}/echo/")
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == "success"
    assert body["status"] == 0
    assert 0 <= body["elapsed_ms"] < 10_000


def test_echo_reports_a_rejected_association_as_refused(api, echo_scp):
    device = Device.objects.create(ae_title="SOMEONE_ELSE", host="127.0.0.1", port=echo_scp)
    body = api.post(f"/api/devices/{device.pk}/echo/").json()
    assert body["result"] == "refused"
    assert "rejected" in body["message"]


def test_echo_reports_a_closed_port_as_refused(api):
    device = Device.objects.create(ae_title="NOBODY", host="127.0.0.1", port=free_port())
    body = api.post(f"/api/devices/{device.pk}/echo/").json()
    assert body["result"] == "refused"
    assert "connection" in body["message"]


def test_echo_reports_a_peer_that_never_answers_as_a_timeout():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        result = echo("SILENT", "127.0.0.1", listener.getsockname()[1], timeout=0.5)
    assert result.result is EchoOutcome.TIMEOUT
    assert result.elapsed_ms >= 450


def test_echo_works_for_an_unsaved_device(api, echo_scp):
    response = api.post(
        "/api/devices/echo/",
        {"ae_title": "ECHOSCP", "host": "127.0.0.1", "port": echo_scp},
        format="json",
    )
    assert response.json()["result"] == "success"


def test_echo_of_an_unsaved_device_validates_its_fields(api):
    response = api.post(
        "/api/devices/echo/", {"ae_title": "A\\B", "host": "x y", "port": 0}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"ae_title", "host", "port"}
