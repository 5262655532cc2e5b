"""A real browser (headless Chromium) on one origin runs OHIF-style QIDO-RS requests against
the live server on another: with the origin allowed they succeed (preflight included, as the
Authorization header makes them non-simple); without it the browser blocks them."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from studies.services import Origin, store_stream
from tests.conftest import IN_CI
from tests.dicom_helpers import make_dataset
from tests.dicomweb.conftest import PASSWORD, part10_bytes

PAGE = """<!doctype html><html><body><script>
const headers = {
  Accept: "application/dicom+json",
  Authorization: "Basic " + btoa(%(credentials)s),
};
const url = %(qido)s + "/studies?limit=101&offset=0&fuzzymatching=false"
  + "&includefield=00081030%%2C00080060";
function report(result) {
  fetch("/result", {method: "POST", body: JSON.stringify(result)});
}
fetch(url, {headers, credentials: "include"})
  .then(async (response) => report({status: response.status, body: await response.json()}))
  .catch((error) => report({error: String(error)}));
</script></body></html>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if IN_CI:
        pytest.fail("chromium is not installed (scripts/install installs it)")
    pytest.skip("chromium is not installed")


class PageServer:
    """Serves the test page on its own origin and receives what the page reports."""

    def __init__(self, page: str) -> None:
        self.result: dict | None = None
        self.reported = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.result = json.loads(self.rfile.read(length))
                outer.reported.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def load_in_chromium(url: str, profile, page: PageServer) -> dict:
    process = subprocess.Popen(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={profile}",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert page.reported.wait(60), "the page reported nothing"
        return page.result
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def ohif_page(live_pacs, live_user):
    """A page on another origin (127.0.0.1 vs the live server's localhost) that queries
    QIDO-RS the way OHIF does."""
    store_stream(io.BytesIO(part10_bytes(make_dataset())), origin=Origin("import"))
    page = PageServer(
        PAGE
        % {
            "credentials": json.dumps(f"{live_user.username}:{PASSWORD}"),
            "qido": json.dumps(live_pacs),
        }
    )
    yield page
    page.close()


def test_a_browser_on_an_allowed_origin_reads_qido_results(ohif_page, settings, tmp_path):
    settings.CORS_ALLOWED_ORIGINS = [ohif_page.origin]
    result = load_in_chromium(ohif_page.origin + "/", tmp_path / "profile", ohif_page)
    assert result.get("status") == 200, result
    [study] = result["body"]
    assert study["00080061"]["Value"] == ["CT"]
    assert "00081030" in study


def test_a_browser_on_an_origin_not_allowed_is_blocked(ohif_page, settings, tmp_path):
    settings.CORS_ALLOWED_ORIGINS = []
    result = load_in_chromium(ohif_page.origin + "/", tmp_path / "profile", ohif_page)
    assert "error" in result, result  # the browser refused to hand over the response
