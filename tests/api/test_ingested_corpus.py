"""The API over instances stored by the real ingest service: Unicode search on names decoded
from their character sets, counts, and ZIP downloads byte-identical to what was sent."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread

from pacs.config import get_runtime_settings, invalidate_runtime_settings
from studies.models import Instance, Study
from studies.services import Origin, Outcome, store_stream

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingested(corpus_dir, storage, tmp_path):
    """Every corpus file through the ingest service; returns {SOPInstanceUID: sha256} of the
    files that were stored (the first of several sharing a SOP Instance UID wins)."""
    runtime = get_runtime_settings(fresh=True)
    runtime.temp_dir = str(tmp_path)
    runtime.free_space_limit_mb = 0
    runtime.critical_free_space_mb = 0
    runtime.save()
    invalidate_runtime_settings()
    stored: dict[str, str] = {}
    for path in sorted((corpus_dir / "dev").glob("*.dcm")):
        data = path.read_bytes()
        result = store_stream(io.BytesIO(data), origin=Origin(kind="import"))
        if result.outcome is Outcome.STORED:
            stored[result.sop_instance_uid] = hashlib.sha256(data).hexdigest()
    assert stored
    return stored


def names(api, text: str) -> set[str]:
    response = api.get("/api/studies/", {"search": text, "page_size": 100})
    assert response.status_code == 200
    return {row["patient_name"] for row in response.json()["results"]}


def test_corpus_names_in_every_character_set_are_found_case_insensitively(api, ingested):
    assert names(api, "buc^jérôme") == {"Buc^Jérôme"}
    assert names(api, "äNEAS") == {"Äneas^Rüdiger"}
    assert names(api, "ΔΙΟΝΥΣΙΟΣ") == {"Διονυσιος"}
    assert names(api, "*山田") == {"Yamada^Tarou=山田^太郎=やまだ^たろう"}
    assert names(api, "люкceмбypг") == {"Люкceмбypг"}
    assert names(api, "*王^小?") == {"Wang^XiaoDong=王^小東"}


def test_the_list_counts_match_the_stored_instances(api, ingested):
    rows = api.get("/api/studies/", {"page_size": 100}).json()
    assert rows["count"] == Study.objects.count()
    assert sum(row["number_of_instances"] for row in rows["results"]) == len(ingested)
    for row in rows["results"]:
        series = api.get(f"/api/studies/{row['id']}/series/").json()
        assert row["number_of_series"] == len(series)
        assert row["number_of_instances"] == sum(s["number_of_instances"] for s in series)


def test_zip_downloads_return_every_stored_file_byte_identical(api, ingested):
    seen: dict[str, str] = {}
    for study in Study.objects.all():
        response = api.get(f"/api/studies/{study.pk}/download/")
        archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
        for name in archive.namelist():
            data = archive.read(name)
            sop_instance_uid = name.rsplit("/", 1)[-1].removesuffix(".dcm")
            assert dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID == (
                sop_instance_uid
            )
            seen[sop_instance_uid] = hashlib.sha256(data).hexdigest()
    assert seen == ingested
    assert Instance.objects.count() == len(ingested)


def test_deleting_every_study_empties_the_index_and_the_storage(
    api, ingested, storage, django_capture_on_commit_callbacks
):
    ids = list(Study.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/studies/delete/", {"ids": ids}, format="json")
    assert response.json()["instances"] == len(ingested)
    assert not Instance.objects.exists()
    assert not [p for p in Path(storage.path).rglob("*") if p.is_file()]
