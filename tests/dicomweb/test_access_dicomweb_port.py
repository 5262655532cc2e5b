"""The DICOMweb port [WEB-3]: DICOMweb at the root of its own port (same application), under
/dicomweb/ on the web port; nothing else is served on the DICOMweb port."""

from __future__ import annotations

import pytest
import requests

from tests.ops.test_run_script import run_script  # noqa: F401 (the fixture)

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


def test_retrieve_urls_keep_the_port_when_the_host_header_drops_it(api, ports, indexed_corpus):
    # dicomweb-client sends "Host: pacs" without the port.
    [first, *_] = api.get("/studies", SERVER_PORT="8010", HTTP_HOST="pacs", **JSON).json()
    assert first["00081190"]["Value"][0].startswith("http://pacs:8010/studies/")
    # Behind a proxy the public host is the proxy's business.
    [proxied, *_] = api.get(
        "/studies", SERVER_PORT="8010", HTTP_HOST="pacs", HTTP_X_FORWARDED_PROTO="https", **JSON
    ).json()
    assert proxied["00081190"]["Value"][0].startswith("http://pacs/studies/")


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


def test_scripts_run_serves_dicomweb_on_both_ports_through_gunicorn(run_script):  # noqa: F811
    """The real deployment: gunicorn bound by scripts/run to the web port and the DICOMweb
    port. dicomweb-client with its defaults sends a body over 1 MB chunked, which gunicorn
    decodes for STOW-RS."""
    from dicomweb_client.api import DICOMwebClient

    from tests.dicom_helpers import make_dataset
    from tests.ops.test_run_script import ADMIN_PASSWORD, port_open, wait_until

    pacs = run_script()
    pacs.start()
    pacs.wait_ready()
    wait_until(lambda: port_open(pacs.dicomweb_port), 60, "DICOMweb port not listening")
    assert f"http://localhost:{pacs.dicomweb_port}/" in pacs.log()

    session = requests.Session()
    session.auth = ("admin", ADMIN_PASSWORD)
    at_root = DICOMwebClient(url=f"http://127.0.0.1:{pacs.dicomweb_port}", session=session)
    under_prefix = DICOMwebClient(
        url=f"http://127.0.0.1:{pacs.http_port}/dicomweb", session=session
    )
    ds = make_dataset(patient_id="RUN-DICOMWEB", pixels=768)  # 1.2 MB: sent chunked
    ds.preamble = b"\0" * 128
    stored = at_root.store_instances([ds])
    assert stored.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    for client, root in (
        (at_root, f"http://127.0.0.1:{pacs.dicomweb_port}/"),
        (under_prefix, f"http://127.0.0.1:{pacs.http_port}/dicomweb/"),
    ):
        [study] = client.search_for_studies(search_filters={"PatientID": "RUN-DICOMWEB"})
        assert study["00081190"]["Value"] == [f"{root}studies/{ds.StudyInstanceUID}"]
    api_on_dicomweb_port = session.get(f"http://127.0.0.1:{pacs.dicomweb_port}/api/studies/")
    assert api_on_dicomweb_port.status_code == 404


def test_scripts_run_binds_no_dicomweb_port_when_disabled(run_script):  # noqa: F811
    from tests.ops.test_run_script import port_open

    pacs = run_script(PACS_DICOMWEB_ENABLED="false")
    pacs.start()
    pacs.wait_ready()
    assert not port_open(pacs.dicomweb_port)
    assert "its own port is off" in pacs.log()


def test_the_settings_page_shows_the_dicomweb_port_and_whether_it_is_served(api, ports):
    server = api.get("/api/settings/").json()["server"]
    assert (server["dicomweb_port"], server["dicomweb_enabled"]) == (8010, True)
    ports.PACS_DICOMWEB_ENABLED = False
    assert api.get("/api/settings/").json()["server"]["dicomweb_enabled"] is False
