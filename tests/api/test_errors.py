"""Every API error is JSON: {"message": ..., "errors": {...}} [WEB-1]."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_an_unknown_api_url_answers_404_in_json(api):
    response = api.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"message": "Not found.", "errors": {}}


def test_a_missing_object_answers_404_in_json(api):
    response = api.get("/api/devices/999999/")
    assert response.status_code == 404
    assert response.json()["message"]
    assert response.json()["errors"] == {}


def test_a_wrong_method_answers_405_in_json(api):
    response = api.put("/api/studies/")
    assert response.status_code == 405
    assert "PUT" in response.json()["message"]


def test_a_validation_error_answers_400_with_field_errors(api):
    response = api.post("/api/devices/", {"ae_title": "X"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["message"].startswith("Invalid input")
    assert "host" in body["errors"]
    assert "port" in body["errors"]
    assert all(isinstance(messages, list) for messages in body["errors"].values())


def test_malformed_json_answers_400_in_json(api):
    response = api.post("/api/devices/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["message"]
