"""DICOM devices [DEV] and DICOMweb clients [WADO-DEV] over the API."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from devices.models import Device

pytestmark = pytest.mark.django_db

DEVICE = {
    "ae_title": "CT_ROOM_1",
    "host": "10.1.2.3",
    "port": 104,
    "upload": True,
    "mwl": True,
    "download": False,
    "find": True,
    "use_tls": False,
    "description": "CT room 1",
    "preferred_transfer_syntax": "1.2.840.10008.1.2.4.70",
}
FIELDS = {
    "id",
    "ae_title",
    "host",
    "port",
    "upload",
    "mwl",
    "download",
    "find",
    "use_tls",
    "certificate",
    "description",
    "preferred_transfer_syntax",
    "allow_lossy",
    "heartbeat",
    "status",
}


def self_signed_pem() -> str:
    """A real certificate when ``cryptography`` is installed, else a structurally valid one."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return (PEM_FIXTURE).strip() + "\n"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modality")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


# PEM armour around a DER SEQUENCE: passes the fallback check used when ``cryptography`` is
# not installed (it is not a parseable certificate, so it is used only then).
PEM_FIXTURE = """
-----BEGIN CERTIFICATE-----
MIIBdzCCAR2gAwIBAgIUE5l0b7m5yZ5y3cQ0nJ0mB8w1iZ8wCgYIKoZIzj0EAwIw
EzERMA8GA1UEAwwIbW9kYWxpdHkwHhcNMjYwMTAxMDAwMDAwWhcNMzYwMTAxMDAw
MDAwWjATMREwDwYDVQQDDAhtb2RhbGl0eTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABNmXkS0h0TQnZ8F7c3h2l0d9o7y2m2oQ0D8kYvV3r3u2m1kQbq4X8p0c7mXb
q3V6b1wQmW8m2k9Q3mYk0sQ3kCijUzBRMB0GA1UdDgQWBBQ0n9nY9n9nY9n9nY9n
9nY9n9nY9TAfBgNVHSMEGDAWgBQ0n9nY9n9nY9n9nY9n9nY9n9nY9TAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDx1x1x1x1x1x1x1x1x1x1x1x1x
1x1x1x1x1x1x1x1xAiA1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1
-----END CERTIFICATE-----
"""


def test_it_creates_a_device_with_exactly_the_documented_fields(api):
    response = api.post("/api/devices/", DEVICE, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == FIELDS
    assert body["status"] == "unknown"
    assert body["preferred_transfer_syntax"] == "1.2.840.10008.1.2.4.70"
    assert Device.objects.get().ae_title == "CT_ROOM_1"


def test_it_defaults_the_transfer_syntax_to_as_is(api):
    body = {**DEVICE}
    del body["preferred_transfer_syntax"]
    response = api.post("/api/devices/", body, format="json")
    assert response.json()["preferred_transfer_syntax"] == "as_is"


def test_it_lists_updates_and_deletes_devices(api):
    device_id = api.post("/api/devices/", DEVICE, format="json").json()["id"]
    listed = api.get("/api/devices/").json()
    assert listed["count"] == 1
    assert listed["results"][0]["ae_title"] == "CT_ROOM_1"
    patched = api.patch(f"/api/devices/{device_id}/", {"port": 11112}, format="json")
    assert patched.status_code == 200
    assert patched.json()["port"] == 11112
    assert api.delete(f"/api/devices/{device_id}/").status_code == 204
    assert not Device.objects.exists()


def test_the_status_cannot_be_set_through_the_api(api):
    response = api.post("/api/devices/", {**DEVICE, "status": "online"}, format="json")
    assert response.json()["status"] == "unknown"


@pytest.mark.parametrize(
    "ae_title",
    ["", "    ", "A" * 17, "BACK\\SLASH", "TAB\tHERE"],
    ids=["empty", "spaces", "too-long", "backslash", "control"],
)
def test_it_refuses_an_invalid_ae_title(api, ae_title):
    response = api.post("/api/devices/", {**DEVICE, "ae_title": ae_title}, format="json")
    assert response.status_code == 400
    assert "ae_title" in response.json()["errors"]


@pytest.mark.parametrize("port", [0, 70000, -1, "abc"])
def test_it_refuses_a_port_outside_1_to_65535(api, port):
    response = api.post("/api/devices/", {**DEVICE, "port": port}, format="json")
    assert response.status_code == 400
    assert "port" in response.json()["errors"]


@pytest.mark.parametrize(
    "host",
    ["bad host", "-leading.example.org", "a" * 64 + ".org", "under_score.org", "1.2.3", ""],
)
def test_it_refuses_a_bad_host(api, host):
    response = api.post("/api/devices/", {**DEVICE, "host": host}, format="json")
    assert response.status_code == 400
    assert "host" in response.json()["errors"]


@pytest.mark.parametrize("host", ["192.168.0.1", "::1", "fe80::1", "pacs.example.org", "ct1"])
def test_it_accepts_ip_addresses_and_host_names(api, host):
    response = api.post("/api/devices/", {**DEVICE, "host": host}, format="json")
    assert response.status_code == 201, response.content


def test_it_refuses_a_duplicate_ae_title(api):
    assert api.post("/api/devices/", DEVICE, format="json").status_code == 201
    response = api.post("/api/devices/", {**DEVICE, "host": "10.9.9.9"}, format="json")
    assert response.status_code == 400
    assert "ae_title" in response.json()["errors"]


def test_ae_titles_are_case_sensitive(api):
    assert api.post("/api/devices/", DEVICE, format="json").status_code == 201
    response = api.post("/api/devices/", {**DEVICE, "ae_title": "ct_room_1"}, format="json")
    assert response.status_code == 201


def test_it_refuses_use_tls_without_a_certificate(api):
    response = api.post("/api/devices/", {**DEVICE, "use_tls": True}, format="json")
    assert response.status_code == 400
    assert "certificate" in response.json()["errors"]


def test_it_refuses_to_switch_on_tls_for_a_device_without_a_certificate(api):
    device_id = api.post("/api/devices/", DEVICE, format="json").json()["id"]
    response = api.patch(f"/api/devices/{device_id}/", {"use_tls": True}, format="json")
    assert response.status_code == 400
    assert "certificate" in response.json()["errors"]


def test_it_accepts_use_tls_with_a_pem_certificate(api):
    body = {**DEVICE, "use_tls": True, "certificate": self_signed_pem()}
    response = api.post("/api/devices/", body, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "certificate",
    [
        "hello",
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----",
    ],
    ids=["not-pem", "bad-base64", "not-x509"],
)
def test_it_refuses_a_certificate_that_is_not_pem_x509(api, certificate):
    body = {**DEVICE, "use_tls": True, "certificate": certificate}
    response = api.post("/api/devices/", body, format="json")
    assert response.status_code == 400
    assert "certificate" in response.json()["errors"]


def test_it_refuses_an_unknown_transfer_syntax(api):
    body = {**DEVICE, "preferred_transfer_syntax": "1.2.3.4"}
    response = api.post("/api/devices/", body, format="json")
    assert response.status_code == 400
    assert "preferred_transfer_syntax" in response.json()["errors"]


def test_it_refuses_a_description_over_128_characters(api):
    response = api.post("/api/devices/", {**DEVICE, "description": "x" * 129}, format="json")
    assert response.status_code == 400
    assert "description" in response.json()["errors"]


def test_the_device_list_costs_the_same_queries_for_1_and_30_devices(api):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get("/api/devices/?page_size=30").status_code == 200
        return len(queries)

    Device.objects.create(ae_title="D0", host="h0", port=104)
    one = count_queries()
    for n in range(1, 30):
        Device.objects.create(ae_title=f"D{n}", host=f"h{n}", port=104)
    assert count_queries() == one == 2


# --- DICOMweb clients ------------------------------------------------------------------


def test_it_creates_a_wado_device_with_every_permission_on_by_default(api):
    response = api.post("/api/wado-devices/", {"address": "viewer.example.org"}, format="json")
    assert response.status_code == 201
    assert response.json() == {
        "id": response.json()["id"],
        "address": "viewer.example.org",
        "upload": True,
        "download": True,
        "find": True,
        "description": "",
    }


def test_it_refuses_a_bad_or_duplicate_wado_address(api):
    assert api.post("/api/wado-devices/", {"address": "::1"}, format="json").status_code == 201
    duplicate = api.post("/api/wado-devices/", {"address": "::1"}, format="json")
    assert duplicate.status_code == 400
    bad = api.post("/api/wado-devices/", {"address": "no spaces.org"}, format="json")
    assert bad.status_code == 400
    assert "address" in bad.json()["errors"]


def test_it_updates_and_deletes_a_wado_device(api):
    wado_id = api.post("/api/wado-devices/", {"address": "10.0.0.5"}, format="json").json()["id"]
    response = api.patch(f"/api/wado-devices/{wado_id}/", {"upload": False}, format="json")
    assert response.json()["upload"] is False
    assert api.delete(f"/api/wado-devices/{wado_id}/").status_code == 204
