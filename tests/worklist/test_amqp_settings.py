"""The RabbitMQ settings [AMQP-1]: the environment's first values, the settings API (the
password write-only, bad values refused) and "test connection" against the real broker."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from pacs.config import apply_amqp_environment, get_amqp_settings
from pacs.env import env_amqp_url
from tests.dicom_helpers import free_port
from tests.ops.test_env import assert_refused, run_manage
from tests.worklist.amqp_helpers import private_vhost

pytestmark = pytest.mark.django_db

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def test_the_url_gives_host_port_vhost_and_credentials(monkeypatch):
    monkeypatch.setenv("PACS_AMQP_URL", "amqp://ris%40x:p%3Ass@rabbit.example:5673/ris%2Fprod")
    assert env_amqp_url("PACS_AMQP_URL", DEFAULT_URL) == {
        "host": "rabbit.example",
        "port": 5673,
        "virtual_host": "ris/prod",
        "user": "ris@x",
        "password": "p:ss",
    }
    monkeypatch.setenv("PACS_AMQP_URL", "amqp://localhost")
    assert env_amqp_url("PACS_AMQP_URL", DEFAULT_URL)["virtual_host"] == "/"


@pytest.mark.parametrize("url", ["http://host/", "amqp://host:99999/", "amqp:///vhost"])
def test_a_bad_url_is_refused(monkeypatch, url):
    monkeypatch.setenv("PACS_AMQP_URL", url)
    with pytest.raises(ImproperlyConfigured, match="PACS_AMQP_URL"):
        env_amqp_url("PACS_AMQP_URL", DEFAULT_URL)


def test_a_bad_url_stops_start_up_naming_the_option(tmp_path):
    assert_refused(run_manage(tmp_path, "check", PACS_AMQP_URL="rabbit://x"), "PACS_AMQP_URL")


def test_the_environment_sets_the_row_and_leaves_the_toggles_on(monkeypatch, settings):
    settings.PACS_AMQP_ENABLED = True
    settings.PACS_AMQP_URL = env_amqp_url("X_UNSET", "amqp://u:p@10.0.0.9:5680/v")
    monkeypatch.setenv("PACS_AMQP_ENABLED", "on")
    monkeypatch.setenv("PACS_AMQP_URL", "amqp://u:p@10.0.0.9:5680/v")
    row = apply_amqp_environment()
    assert (row.enabled, row.host, row.port, row.virtual_host, row.user, row.password) == (
        True,
        "10.0.0.9",
        5680,
        "v",
        "u",
        "p",
    )
    assert (row.send_mwl_status, row.send_new_study, row.send_new_series) == (True, True, True)
    assert (row.ris_exchange, row.mwl_queue, row.mwl_state_routing_key) == (
        "PACS.RIS",
        "PACS.MWL",
        "mwl_state_rk",
    )


def test_without_the_environment_the_saved_row_is_kept(monkeypatch):
    monkeypatch.delenv("PACS_AMQP_ENABLED", raising=False)
    monkeypatch.delenv("PACS_AMQP_URL", raising=False)
    row = get_amqp_settings(fresh=True)
    row.host, row.enabled = "saved.example", True
    row.save()
    assert apply_amqp_environment().host == "saved.example"


def test_the_api_shows_the_settings_without_the_password_and_saves_changes(api):
    body = api.get("/api/settings/amqp/").json()
    assert "password" not in body
    assert body["mwl_changed_queue"] == "PACS.MWL_changed"
    response = api.patch(
        "/api/settings/amqp/",
        {"password": "s3cret", "mwl_queue": "Inobitec.MWL", "send_new_series": False},
        format="json",
    )
    assert response.status_code == 200, response.content
    row = get_amqp_settings(fresh=True)
    assert (row.password, row.mwl_queue, row.send_new_series) == ("s3cret", "Inobitec.MWL", False)


def test_the_api_refuses_bad_settings_with_the_error_body(api):
    response = api.patch(
        "/api/settings/amqp/",
        {"port": 70000, "host": "bad host!", "mwl_queue": "", "channel": 0},
        format="json",
    )
    assert response.status_code == 400
    assert {"port", "host", "mwl_queue", "channel"} <= set(response.json()["errors"])
    assert get_amqp_settings(fresh=True).port == 5672


def test_test_connection_reports_success_with_the_real_broker(api):
    with private_vhost() as vhost:
        response = api.post("/api/settings/amqp/test/", {"virtual_host": vhost}, format="json")
    body = response.json()
    assert response.status_code == 200
    assert body["ok"] is True, body["message"]
    assert body["seconds"] < 10


def test_test_connection_reports_a_refused_port_and_saves_nothing(api):
    port = free_port()
    response = api.post("/api/settings/amqp/test/", {"port": port}, format="json")
    body = response.json()
    assert body["ok"] is False
    assert f"127.0.0.1:{port}" in body["message"]
    assert get_amqp_settings(fresh=True).port == 5672


def test_test_connection_reports_wrong_credentials(api):
    with private_vhost() as vhost:
        response = api.post(
            "/api/settings/amqp/test/",
            {"user": "nobody", "password": "wrong", "virtual_host": vhost},
            format="json",
        )
    assert response.json()["ok"] is False
