"""Runtime settings over the API [SET-1]."""

from __future__ import annotations

import pytest

from pacs.config import get_runtime_settings

pytestmark = pytest.mark.django_db


def test_it_shows_runtime_settings_and_the_read_only_server_configuration(api, settings):
    body = api.get("/api/settings/").json()
    assert body["ae_title"]
    assert body["free_space_limit_mb"] >= 0
    server = body["server"]
    assert server["version"] == settings.VERSION
    assert server["dicom_port"] == settings.PACS_DICOM_PORT
    assert server["database"]["engine"] in {"sqlite3", "postgresql"}


def test_it_updates_runtime_settings_and_every_reader_sees_them_at_once(api, tmp_path):
    response = api.patch(
        "/api/settings/",
        {
            "ae_title": "NEW_AE",
            "accept_any_ae": True,
            "accession_crop": True,
            "overwrite_image": True,
            "free_space_limit_mb": 100,
            "critical_free_space_mb": 10,
            "temp_dir": str(tmp_path),
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    runtime = get_runtime_settings()
    assert runtime.ae_title == "NEW_AE"
    assert runtime.accept_any_ae is True
    assert runtime.temp_dir == str(tmp_path)


def test_it_refuses_a_temp_folder_that_does_not_exist(api, tmp_path):
    response = api.patch("/api/settings/", {"temp_dir": str(tmp_path / "no")}, format="json")
    assert response.status_code == 400
    assert "temp_dir" in response.json()["errors"]


def test_it_refuses_a_relative_temp_folder(api):
    response = api.patch("/api/settings/", {"temp_dir": "tmp"}, format="json")
    assert response.status_code == 400
    assert "temp_dir" in response.json()["errors"]


@pytest.mark.parametrize(
    "body",
    [{"ae_title": "BAD\\AE"}, {"ae_title": "A" * 17}, {"free_space_limit_mb": -1}],
)
def test_it_refuses_invalid_runtime_settings(api, body):
    response = api.patch("/api/settings/", body, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == set(body)


def test_the_server_section_is_read_only(api):
    response = api.patch("/api/settings/", {"server": {"version": "9"}}, format="json")
    assert response.status_code == 200
    assert response.json()["server"]["version"] != "9"


def test_settings_need_a_login(anonymous):
    assert anonymous.get("/api/settings/").status_code == 401
