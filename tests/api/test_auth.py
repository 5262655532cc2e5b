"""Login, logout, CSRF, Basic auth and the master cookie [WEB-2]."""

from __future__ import annotations

import base64
import uuid

import pytest
from rest_framework.test import APIClient

from pacs.models import RuntimeSettings
from tests.api.conftest import PASSWORD

pytestmark = pytest.mark.django_db

MASTER = "vesalius_master"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_it_refuses_an_unauthenticated_request_with_401_and_a_json_error(anonymous):
    response = anonymous.get("/api/studies/")
    assert response.status_code == 401
    body = response.json()
    assert body["message"]
    assert body["errors"] == {}


def test_a_401_does_not_make_browsers_pop_up_a_basic_login_dialog(anonymous):
    response = anonymous.get("/api/studies/")
    assert not response["WWW-Authenticate"].startswith("Basic")


def test_a_failed_basic_login_gets_a_basic_challenge(anonymous):
    response = anonymous.get("/api/studies/", HTTP_AUTHORIZATION=basic("nobody", "x"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")


def test_it_logs_in_with_json_and_returns_the_user_and_a_csrf_token(anonymous, user):
    response = anonymous.post(
        "/api/auth/login/", {"username": "operator", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["user"]["username"] == "operator"
    assert response.json()["csrf_token"]
    assert "csrftoken" in response.cookies
    assert anonymous.get("/api/auth/me/").json()["authenticated_by"] == "session"


def test_it_refuses_a_wrong_password(anonymous, user):
    response = anonymous.post(
        "/api/auth/login/", {"username": "operator", "password": "nope"}, format="json"
    )
    assert response.status_code in (401, 403)
    assert response.json()["message"] == "Wrong user name or password."


def test_it_needs_username_and_password_to_log_in(anonymous):
    response = anonymous.post("/api/auth/login/", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"username", "password"}


def test_it_enforces_csrf_on_unsafe_requests_of_a_session(session_client):
    response = session_client.post("/api/wado-devices/", {"address": "10.0.0.1"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["message"]


def test_it_accepts_an_unsafe_request_with_the_csrf_token(session_client):
    response = session_client.post(
        "/api/wado-devices/",
        {"address": "10.0.0.1"},
        format="json",
        HTTP_X_CSRFTOKEN=session_client.csrf_token,
    )
    assert response.status_code == 201


def test_it_logs_out(session_client):
    response = session_client.post("/api/auth/logout/", HTTP_X_CSRFTOKEN=session_client.csrf_token)
    assert response.status_code == 204
    assert session_client.get("/api/auth/me/").status_code == 401


def test_it_hands_out_a_csrf_token_to_anyone(anonymous):
    response = anonymous.get("/api/auth/csrf/")
    assert response.status_code == 200
    assert response.json()["csrf_token"]


def test_it_accepts_basic_authentication_for_scripts(user):
    client = APIClient()
    response = client.get("/api/auth/me/", HTTP_AUTHORIZATION=basic("operator", PASSWORD))
    assert response.status_code == 200
    assert response.json()["authenticated_by"] == "basic"


def test_it_refuses_basic_authentication_with_a_wrong_password(user):
    client = APIClient()
    response = client.get("/api/auth/me/", HTTP_AUTHORIZATION=basic("operator", "x"))
    assert response.status_code == 401


# --- master cookie ---------------------------------------------------------------------


def _generate(api, **body) -> str:
    response = api.post("/api/settings/master-cookie/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["master_cookie"]


def test_it_has_no_master_cookie_until_one_is_generated(api):
    body = api.get("/api/settings/master-cookie/").json()
    assert body["master_cookie"] is None
    assert body["cookie_name"] == MASTER


def test_it_authenticates_a_request_carrying_the_master_cookie(api):
    cookie = _generate(api)
    client = APIClient()
    client.cookies[MASTER] = cookie
    response = client.get("/api/studies/")
    assert response.status_code == 200
    assert client.get("/api/auth/me/").json() == {
        "authenticated_by": "master_cookie",
        "user": None,
    }


def test_regenerating_the_master_cookie_invalidates_the_old_one(api):
    old = _generate(api)
    new = _generate(api)
    assert old != new
    client = APIClient()
    client.cookies[MASTER] = old
    assert client.get("/api/studies/").status_code == 401
    client.cookies[MASTER] = new
    assert client.get("/api/studies/").status_code == 200


def test_it_refuses_a_master_cookie_after_it_is_deleted(api):
    cookie = _generate(api)
    assert api.delete("/api/settings/master-cookie/").status_code == 204
    assert RuntimeSettings.objects.get(pk=1).master_cookie is None
    client = APIClient()
    client.cookies[MASTER] = cookie
    assert client.get("/api/studies/").status_code == 401


def test_it_refuses_a_made_up_or_malformed_master_cookie(api):
    _generate(api)
    client = APIClient()
    client.cookies[MASTER] = str(uuid.uuid4())
    assert client.get("/api/studies/").status_code == 401
    client.cookies[MASTER] = "not-a-uuid"
    assert client.get("/api/studies/").status_code == 401


def test_it_accepts_the_master_cookie_only_from_the_restricted_host(api):
    cookie = _generate(api, host="192.0.2.10")
    client = APIClient()
    client.cookies[MASTER] = cookie
    assert client.get("/api/studies/", REMOTE_ADDR="192.0.2.10").status_code == 200
    refused = client.get("/api/studies/", REMOTE_ADDR="192.0.2.11")
    assert refused.status_code == 403
    assert "address" in refused.json()["message"]


def test_it_changes_the_host_restriction_without_changing_the_cookie(api):
    cookie = _generate(api, host="192.0.2.10")
    response = api.patch("/api/settings/master-cookie/", {"host": ""}, format="json")
    assert response.status_code == 200
    assert response.json() == {"master_cookie": cookie, "cookie_name": MASTER, "host": ""}
    client = APIClient()
    client.cookies[MASTER] = cookie
    assert client.get("/api/studies/", REMOTE_ADDR="198.51.100.7").status_code == 200


def test_it_refuses_a_bad_master_cookie_host(api):
    response = api.post("/api/settings/master-cookie/", {"host": "bad host!"}, format="json")
    assert response.status_code == 400
    assert "host" in response.json()["errors"]


def test_the_master_cookie_cannot_manage_itself(api):
    cookie = _generate(api)
    client = APIClient()
    client.cookies[MASTER] = cookie
    assert client.post("/api/settings/master-cookie/").status_code == 403
    assert client.delete("/api/settings/master-cookie/").status_code == 403


def test_the_master_cookie_host_may_be_a_host_name(api):
    cookie = _generate(api, host="localhost")
    client = APIClient()
    client.cookies[MASTER] = cookie
    assert client.get("/api/studies/", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/api/studies/", REMOTE_ADDR="192.0.2.1").status_code == 403
