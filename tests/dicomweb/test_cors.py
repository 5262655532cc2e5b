"""CORS of the DICOMweb routes (django-cors-headers): configured origins, the console's own
origin by default, preflight for the headers OHIF sends. The browser-level check is
test_cors_browser.py."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("pacs_runtime")

VIEWER = "http://viewer.example:3000"


def preflight(client, path="/dicomweb/studies", origin=VIEWER, **extra):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, accept",
        **extra,
    )


@pytest.fixture
def viewer_allowed(settings):
    settings.CORS_ALLOWED_ORIGINS = [VIEWER]


def test_a_preflight_from_a_configured_origin_allows_ohifs_request(anonymous, viewer_allowed):
    response = preflight(anonymous)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == VIEWER
    assert response["Access-Control-Allow-Credentials"] == "true"
    allowed_headers = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "accept"} <= allowed_headers
    assert {"GET", "POST"} <= {
        m.strip() for m in response["Access-Control-Allow-Methods"].split(",")
    }


def test_a_search_from_a_configured_origin_carries_the_cors_headers(api, viewer_allowed):
    response = api.get(
        "/dicomweb/studies", HTTP_ORIGIN=VIEWER, HTTP_ACCEPT="application/dicom+json"
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == VIEWER
    assert "Warning" in response["Access-Control-Expose-Headers"]


def test_an_error_answer_carries_the_cors_headers_too(anonymous, viewer_allowed):
    response = anonymous.get("/dicomweb/studies", HTTP_ORIGIN=VIEWER)
    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == VIEWER  # so the viewer can read why


def test_nothing_is_allowed_cross_origin_by_default(anonymous, api):
    assert "Access-Control-Allow-Origin" not in preflight(anonymous)
    response = api.get("/dicomweb/studies", HTTP_ORIGIN=VIEWER)
    assert "Access-Control-Allow-Origin" not in response


def test_the_consoles_own_origin_may_call_the_dicomweb_port(anonymous, settings):
    settings.PACS_HTTP_PORT = 8000
    settings.PACS_DICOMWEB_PORT = 8010
    console = "http://pacs.example:8000"
    response = preflight(
        anonymous, "/studies", origin=console, SERVER_PORT="8010", HTTP_HOST="pacs.example:8010"
    )
    assert response["Access-Control-Allow-Origin"] == console
    for other in ("http://pacs.example:9000", "http://elsewhere.example:8000"):
        response = preflight(
            anonymous, "/studies", origin=other, SERVER_PORT="8010", HTTP_HOST="pacs.example:8010"
        )
        assert "Access-Control-Allow-Origin" not in response


def test_every_origin_may_be_allowed(anonymous, settings):
    settings.CORS_ALLOW_ALL_ORIGINS = True
    assert preflight(anonymous)["Access-Control-Allow-Origin"] == VIEWER


def test_a_stow_preflight_allows_posting_multipart_with_credentials(anonymous, viewer_allowed):
    response = anonymous.options(
        "/dicomweb/studies/1.2.3",
        HTTP_ORIGIN=VIEWER,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == VIEWER
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "content-type" in response["Access-Control-Allow-Headers"]
