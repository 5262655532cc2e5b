"""The DICOMweb port [WEB-3]: DICOMweb at the root of its own port (same application), under
/dicomweb/ on the web port; nothing else is served on the DICOMweb port."""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.usefixtures("pacs_runtime")
JSON = {"HTTP_ACCEPT": "application/dicom+json"}


@pytest.fixture
def ports(settings):
    settings.PACS_HTTP_PORT = 8000
    settings.PACS_DICOMWEB_PORT = 8010
    settings.PACS_DICOMWEB_ENABLED = True
    return settings


def test_dicomweb_answers_at_the_root_of_its_port(api, ports):
    response = api.get("/studies", SERVER_PORT="8010", **JSON)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+json"


def test_retrieve_urls_on_the_dicomweb_port_point_at_its_root(api, ports, indexed_corpus):
    [first, *_] = api.get("/studies", SERVER_PORT="8010", HTTP_HOST="pacs:8010", **JSON).json()
    uid = first["0020000D"]["Value"][0]
    assert first["00081190"]["Value"] == [f"http://pacs:8010/studies/{uid}"]


def test_the_console_and_api_are_not_served_on_the_dicomweb_port(api, ports):
    for path in ("/api/studies/", "/dicomweb/studies", "/api/schema/"):
        response = api.get(path, SERVER_PORT="8010")
        assert response.status_code == 404
        assert response.json() == {"message": "Not found.", "errors": {}}


def test_the_web_port_serves_dicomweb_under_its_prefix_only(api, ports):
    assert api.get("/dicomweb/studies", SERVER_PORT="8000", **JSON).status_code == 200
    assert api.get("/studies", SERVER_PORT="8000", **JSON).status_code == 404


@pytest.mark.parametrize("change", [{"PACS_DICOMWEB_ENABLED": False}, {"PACS_DICOMWEB_PORT": 0}])
def test_a_disabled_dicomweb_port_routes_nothing_to_the_root(api, ports, change):
    for name, value in change.items():
        setattr(ports, name, value)
    assert api.get("/studies", SERVER_PORT="8010", **JSON).status_code == 404
    assert api.get("/dicomweb/studies", SERVER_PORT="8010", **JSON).status_code == 200


def test_a_live_server_on_the_dicomweb_port_answers_dicomweb_clients(
    live_pacs, live_user, live_server, settings
):
    settings.PACS_DICOMWEB_PORT = int(live_server.url.rsplit(":", 1)[1])
    settings.PACS_DICOMWEB_ENABLED = True
    from dicomweb_client.api import DICOMwebClient

    from tests.dicomweb.conftest import PASSWORD

    session = requests.Session()
    session.auth = (live_user.username, PASSWORD)
    client = DICOMwebClient(url=live_server.url, session=session)
    assert client.search_for_studies() == []
    assert requests.get(f"{live_server.url}/api/studies/", auth=session.auth).status_code == 404
