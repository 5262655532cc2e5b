"""Who may use DICOMweb [WADO-DEV], [WEB-2]: console users, the master cookie, and WADO
devices by address with FIND (QIDO-RS), UPLOAD (STOW-RS) and DOWNLOAD (WADO-RS, WADO-URI)."""

from __future__ import annotations

import base64
import uuid

import pytest
from django.conf import settings
from django.contrib.auth.hashers import MD5PasswordHasher
from rest_framework.test import APIClient

from devices.models import WadoDevice
from studies.models import Instance
from tests.conftest import reconfigure
from tests.dicom_helpers import make_dataset
from tests.dicomweb.conftest import MULTIPART_DICOM, PASSWORD, multipart_body, part10_bytes

CLIENT_ADDRESS = "192.0.2.10"  # TEST-NET-1: never a real peer
pytestmark = pytest.mark.usefixtures("pacs_runtime")


def qido(client: APIClient, address: str = CLIENT_ADDRESS, **extra):
    return client.get(
        "/dicomweb/studies", HTTP_ACCEPT="application/dicom+json", REMOTE_ADDR=address, **extra
    )


def stow(client: APIClient, address: str = CLIENT_ADDRESS, **extra):
    return client.post(
        "/dicomweb/studies",
        data=multipart_body([part10_bytes(make_dataset())]),
        content_type=MULTIPART_DICOM,
        REMOTE_ADDR=address,
        **extra,
    )


def wado(client: APIClient, address: str = CLIENT_ADDRESS, **extra):
    return client.get(
        "/dicomweb/studies/1.2.3.4/metadata",
        HTTP_ACCEPT="application/dicom+json",
        REMOTE_ADDR=address,
        **extra,
    )


SERVICES = {"find": qido, "upload": stow, "download": wado}


@pytest.mark.parametrize("service", SERVICES)
def test_no_credentials_from_an_unlisted_address_is_401_with_a_json_reason(anonymous, service):
    response = SERVICES[service](anonymous)
    assert response.status_code == 401
    body = response.json()
    assert "not a listed DICOMweb client" in body["message"]
    assert body["errors"] == {}
    # No Basic challenge to a client that did not try Basic (no browser login dialog).
    assert not response["WWW-Authenticate"].startswith("Basic")
    assert not Instance.objects.exists()


@pytest.mark.parametrize("service", SERVICES)
def test_a_wado_device_without_the_permission_is_403(anonymous, service):
    WadoDevice.objects.create(address=CLIENT_ADDRESS, **{service: False})
    response = SERVICES[service](anonymous)
    assert response.status_code == 403
    assert service.upper() in response.json()["message"]
    assert not Instance.objects.exists()


def test_a_wado_device_with_find_may_search_without_credentials(anonymous):
    WadoDevice.objects.create(address=CLIENT_ADDRESS, find=True, upload=False, download=False)
    assert qido(anonymous).status_code == 200
    assert stow(anonymous).status_code == 403


def test_a_wado_device_with_upload_may_store_without_credentials(anonymous):
    WadoDevice.objects.create(address=CLIENT_ADDRESS, find=False, upload=True)
    assert stow(anonymous).status_code == 200
    assert Instance.objects.count() == 1
    assert qido(anonymous).status_code == 403


def test_another_address_does_not_inherit_a_devices_permissions(anonymous):
    WadoDevice.objects.create(address=CLIENT_ADDRESS)
    assert qido(anonymous, address="192.0.2.11").status_code == 401


def test_a_device_listed_by_host_name_is_matched_by_what_the_name_resolves_to(anonymous):
    WadoDevice.objects.create(address="localhost", find=False)
    assert qido(anonymous, address="127.0.0.1").status_code == 403


def test_an_ipv6_device_address_matches_its_other_spellings(anonymous):
    WadoDevice.objects.create(address="2001:db8::1", find=True)
    assert qido(anonymous, address="2001:0db8:0:0:0:0:0:1").status_code == 200


def test_a_console_user_needs_no_device_entry(api):
    assert qido(api).status_code == 200
    assert stow(api).status_code == 200


def test_http_basic_with_a_console_login(anonymous, user):
    token = base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()
    assert qido(anonymous, HTTP_AUTHORIZATION=f"Basic {token}").status_code == 200
    wrong = base64.b64encode(f"{user.username}:wrong".encode()).decode()
    response = qido(anonymous, HTTP_AUTHORIZATION=f"Basic {wrong}")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")  # it tried Basic


def test_a_wrong_password_is_refused_even_from_a_listed_device(anonymous, user):
    WadoDevice.objects.create(address=CLIENT_ADDRESS)
    wrong = base64.b64encode(f"{user.username}:wrong".encode()).decode()
    assert qido(anonymous, HTTP_AUTHORIZATION=f"Basic {wrong}").status_code == 401


def test_the_console_session_may_search(client, user):
    client.force_login(user)
    response = client.get(
        "/dicomweb/studies", HTTP_ACCEPT="application/dicom+json", REMOTE_ADDR=CLIENT_ADDRESS
    )
    assert response.status_code == 200


def test_the_master_cookie_may_search_and_store(anonymous):
    cookie = uuid.uuid4()
    reconfigure(master_cookie=cookie, master_cookie_host="")
    anonymous.cookies[settings.PACS_MASTER_COOKIE_NAME] = str(cookie)
    assert qido(anonymous).status_code == 200
    assert stow(anonymous).status_code == 200


def test_the_master_cookie_from_a_disallowed_host_is_403(anonymous):
    cookie = uuid.uuid4()
    reconfigure(master_cookie=cookie, master_cookie_host="192.0.2.99")
    anonymous.cookies[settings.PACS_MASTER_COOKIE_NAME] = str(cookie)
    for service in SERVICES.values():
        response = service(anonymous)
        assert response.status_code == 403
        assert "not accepted from this address" in response.json()["message"]
    assert qido(anonymous, address="192.0.2.99").status_code == 200
    assert not Instance.objects.exists()


def test_a_wrong_master_cookie_is_401(anonymous):
    reconfigure(master_cookie=uuid.uuid4())
    anonymous.cookies[settings.PACS_MASTER_COOKIE_NAME] = str(uuid.uuid4())
    assert qido(anonymous).status_code == 401


class CountingHasher(MD5PasswordHasher):
    """The MD5 test hasher, counting the password checks."""

    checks = 0

    def verify(self, password, encoded):
        CountingHasher.checks += 1
        return super().verify(password, encoded)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_a_basic_login_is_checked_once_then_remembered(anonymous, user, settings):
    settings.PASSWORD_HASHERS = ["tests.dicomweb.test_access.CountingHasher"]
    CountingHasher.checks = 0
    for _ in range(5):
        assert qido(anonymous, HTTP_AUTHORIZATION=basic(user.username, PASSWORD)).status_code == 200
    assert CountingHasher.checks == 1
    for _ in range(2):  # a wrong password is checked (and refused) every time
        assert qido(anonymous, HTTP_AUTHORIZATION=basic(user.username, "wrong")).status_code == 401
    assert CountingHasher.checks == 3


def test_a_remembered_basic_login_ends_with_a_password_change_or_deactivation(anonymous, user):
    assert qido(anonymous, HTTP_AUTHORIZATION=basic(user.username, PASSWORD)).status_code == 200
    user.set_password("a new password")
    user.save()
    assert qido(anonymous, HTTP_AUTHORIZATION=basic(user.username, PASSWORD)).status_code == 401
    assert (
        qido(anonymous, HTTP_AUTHORIZATION=basic(user.username, "a new password")).status_code
        == 200
    )
    user.is_active = False
    user.save()
    assert (
        qido(anonymous, HTTP_AUTHORIZATION=basic(user.username, "a new password")).status_code
        == 401
    )
