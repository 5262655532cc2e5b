"""WADO-RS metadata (PS3.18 10.4.1.1.2, F.2): valid DICOM JSON that round-trips through
pydicom with BulkDataURIs that resolve, served from the per-instance cache that follows the
index as instances are added, replaced and deleted."""

from __future__ import annotations

import shutil

import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomweb.models import InstanceMetadata
from pacs.config import get_runtime_settings, invalidate_runtime_settings
from studies.models import Instance, Series
from studies.services import Outcome, delete_series
from tests.dicomweb import wado_fixtures
from tests.dicomweb.wado_fixtures import part10, store_bytes, store_corpus, store_file, store_series

pytestmark = pytest.mark.django_db(transaction=True)
web = wado_fixtures.web

DICOM_JSON = "application/dicom+json"


def comparable(ds: Dataset) -> dict[int, object]:
    """Values as pydicom reads them, sequences item by item (bulk values, group lengths and
    the Available Transfer Syntax UID the server adds left out)."""
    values = {}
    for element in ds:
        if element.tag.element == 0 or element.tag.group == 0x7FE0 or element.tag == 0x00083002:
            continue
        if element.VR in ("OB", "OW", "UN", "OF", "OD", "OL", "OV"):
            continue
        if element.VR == "SQ":
            values[int(element.tag)] = [comparable(item) for item in element.value]
        else:
            values[int(element.tag)] = element.value
    return values


def round_trip(dicomweb, document: dict) -> Dataset:
    return Dataset.from_json(
        document, bulk_data_uri_handler=lambda uri: b"".join(dicomweb.retrieve_bulkdata(uri))
    )


@pytest.mark.parametrize(
    "name", ["pydicom-data__emri_small.dcm", "pydicom-data__emri_small_RLE.dcm"]
)
def test_multi_frame_metadata_round_trips_and_its_bulk_data_resolves(
    dicomweb, live_pacs, corpus_dir, name
):
    item = store_file(corpus_dir / "dev" / name)
    [document] = dicomweb.retrieve_series_metadata(item.study, item.series)
    assert document["7FE00010"]["BulkDataURI"].startswith(live_pacs + "/studies/")
    assert "Value" not in document["7FE00010"] and "InlineBinary" not in document["7FE00010"]
    assert document["00083002"] == {"vr": "UI", "Value": [item.instance.transfer_syntax_uid]}
    original = pydicom.dcmread(item.path)
    restored = round_trip(dicomweb, document)
    assert comparable(restored) == comparable(original)
    assert int(restored.NumberOfFrames) == 10
    if original.file_meta.TransferSyntaxUID.is_compressed:
        # Encapsulated pixel data comes back as its frames, each as stored.
        from pydicom.encaps import generate_frames

        frames = list(generate_frames(original.PixelData, number_of_frames=10))
        assert restored.PixelData == b"".join(frames)
    else:
        assert restored.PixelData == original.PixelData


def test_metadata_of_a_31_instance_series_round_trips(dicomweb, live_pacs):
    series = store_series(31)
    documents = dicomweb.retrieve_series_metadata(series[0].study, series[0].series)
    assert len(documents) == 31
    by_uid = {document["00080018"]["Value"][0]: document for document in documents}
    assert list(by_uid) == [item.sop for item in series]  # instance number order
    for item in series:
        document = by_uid[item.sop]
        # The 2000-byte private value is over the threshold: a BulkDataURI, not inline.
        assert set(document["00291010"]) == {"vr", "BulkDataURI"}
        assert document["00200013"] == {"vr": "IS", "Value": [series.index(item) + 1]}
        restored = round_trip(dicomweb, document)
        original = pydicom.dcmread(pydicom.filebase.DicomBytesIO(item.data))
        assert comparable(restored) == comparable(original)
        assert restored[0x00291010].value == b"\x01" * 2000
        assert restored.PixelData == original.PixelData


def test_metadata_of_the_31_images_of_the_dicomdir_file_set_round_trips(
    dicomweb, live_pacs, corpus_dir
):
    paths = sorted(
        path
        for path in (corpus_dir / "dev" / "dicomdir_fileset").rglob("*")
        if path.is_file() and path.name != "DICOMDIR"
    )
    assert len(paths) == 31
    stored = [store_file(path) for path in paths]
    documents = []
    for study in sorted({item.study for item in stored}):
        documents += dicomweb.retrieve_study_metadata(study)
    assert len(documents) == 31
    originals = {item.sop: pydicom.dcmread(item.path) for item in stored}
    for document in documents:
        restored = round_trip(dicomweb, document)
        original = originals[restored.SOPInstanceUID]
        assert comparable(restored) == comparable(original)
        assert restored.PixelData == original.PixelData


def test_large_values_inside_sequences_have_bulk_data_uris_that_resolve(dicomweb, live_pacs):
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(store_series(1)[0].data))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    icon = Dataset()
    icon.Rows = icon.Columns = 40
    icon.add_new(0x7FE00010, "OB", bytes(range(256)) * 7)  # 1792 bytes, nested pixel data
    second = Dataset()
    second.add_new(0x00291010, "OB", b"\x02" * 1500)
    ds.add_new(0x00880200, "SQ", [icon])  # Icon Image Sequence
    ds.add_new(0x00291020, "SQ", [Dataset(), second])
    item = store_bytes(part10(ds))
    document = dicomweb.retrieve_instance_metadata(item.study, item.series, item.sop)
    nested = document["00880200"]["Value"][0]["7FE00010"]["BulkDataURI"]
    assert nested.endswith(f"/instances/{item.sop}/bulkdata/00880200/0/7FE00010")
    assert dicomweb.retrieve_bulkdata(nested) == [bytes(range(256)) * 7]
    deeper = document["00291020"]["Value"][1]["00291010"]["BulkDataURI"]
    assert deeper.endswith("/bulkdata/00291020/1/00291010")
    assert dicomweb.retrieve_bulkdata(deeper) == [b"\x02" * 1500]
    restored = round_trip(dicomweb, document)
    assert restored.IconImageSequence[0].PixelData == bytes(range(256)) * 7


def test_instance_metadata_is_one_document(dicomweb, live_pacs):
    item = store_series(2)[1]
    document = dicomweb.retrieve_instance_metadata(item.study, item.series, item.sop)
    assert document["00080018"]["Value"] == [item.sop]
    assert Dataset.from_json(document).SOPInstanceUID == item.sop


def test_cached_metadata_is_served_without_opening_the_files(web, live_pacs, tmp_path):
    series = store_series(4)
    url = f"{web.root}/studies/{series[0].study}/series/{series[0].series}/metadata"
    first = web.get(url)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == DICOM_JSON
    assert InstanceMetadata.objects.count() == 4
    shutil.move(tmp_path / "storage", tmp_path / "elsewhere")
    again = web.get(url)
    assert again.status_code == 200
    assert again.json() == first.json()


def test_the_cache_follows_instances_added_to_the_series(web, live_pacs):
    series = store_series(3)
    url = f"{web.root}/studies/{series[0].study}/series/{series[0].series}/metadata"
    assert len(web.get(url).json()) == 3
    computed = dict(InstanceMetadata.objects.values_list("instance_id", "computed_at"))
    later = store_series(1, study_uid=series[0].study)[0]
    # Into the same series: a fresh instance with the series' UIDs.
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(later.data))
    ds.SeriesInstanceUID = series[0].series
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 4
    added = store_bytes(part10(ds))
    documents = web.get(url).json()
    assert [d["00080018"]["Value"][0] for d in documents] == [
        *(item.sop for item in series),
        added.sop,
    ]
    # Only the new instance was read; the others kept their cached rows.
    rows = dict(InstanceMetadata.objects.values_list("instance_id", "computed_at"))
    assert {pk: rows[pk] for pk in computed} == computed
    assert added.instance.pk in rows


def test_the_cache_drops_replaced_and_deleted_instances(web, live_pacs):
    series = store_series(3)
    url = f"{web.root}/studies/{series[0].study}/series/{series[0].series}/metadata"
    web.get(url)
    assert InstanceMetadata.objects.count() == 3
    # A replacement (overwrite_image) with a new value: the new file's metadata is served.
    runtime = get_runtime_settings(fresh=True)
    runtime.overwrite_image = True
    runtime.save()
    invalidate_runtime_settings()
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(series[1].data))
    ds.ImageComments = "replaced"
    store_bytes(part10(ds), outcome=Outcome.REPLACED)
    documents = web.get(url).json()
    assert [d["00204000"]["Value"][0] for d in documents] == ["x" * 10, "replaced", "x" * 10]
    assert InstanceMetadata.objects.count() == 3
    # An instance row deleted: its cached document goes with it.
    Instance.objects.filter(sop_instance_uid=series[2].sop).delete()
    assert len(web.get(url).json()) == 2
    assert InstanceMetadata.objects.count() == 2
    delete_series(Series.objects.values_list("pk", flat=True))
    assert InstanceMetadata.objects.count() == 0
    assert web.get(url).status_code == 404


def test_a_damaged_file_is_left_out_of_the_metadata_and_not_cached(web, live_pacs, tmp_path):
    series = store_series(3)
    damaged = tmp_path / "storage" / series[1].instance.relative_path
    damaged.write_bytes(series[1].data[:200])  # cut inside the file meta information
    url = f"{web.root}/studies/{series[0].study}/series/{series[0].series}/metadata"
    documents = web.get(url).json()
    assert [d["00080018"]["Value"][0] for d in documents] == [series[0].sop, series[2].sop]
    assert not InstanceMetadata.objects.filter(instance__sop_instance_uid=series[1].sop).exists()
    damaged.write_bytes(series[1].data)  # repaired: computed on the next request
    assert len(web.get(url).json()) == 3


def test_metadata_errors_are_json(web, live_pacs):
    item = store_series(1)[0]
    unknown = web.get(f"{web.root}/studies/1.2.3/metadata")
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "No such study."
    wrong_type = web.get(
        f"{web.root}/studies/{item.study}/metadata", headers={"Accept": "image/jpeg"}
    )
    assert wrong_type.status_code == 406
    assert "application/dicom+json" in wrong_type.json()["message"]
    bulk = web.get(
        f"{web.root}/studies/{item.study}/series/{item.series}/instances/{item.sop}"
        "/bulkdata/0029ZZZZ"
    )
    assert bulk.status_code == 404
    assert "message" in bulk.json()


def test_metadata_of_every_stored_corpus_file_round_trips(dicomweb, live_pacs, corpus_dir):
    stored = store_corpus(corpus_dir)
    assert len(stored) > 40
    for item in stored:
        document = dicomweb.retrieve_instance_metadata(item.study, item.series, item.sop)
        restored = Dataset.from_json(document)  # BulkDataURIs left unresolved here
        original = pydicom.dcmread(item.path)
        assert restored.SOPInstanceUID == original.SOPInstanceUID, item.path
        assert comparable(restored) == comparable(original), item.path
        if "PixelData" in original:
            assert "BulkDataURI" in document["7FE00010"], item.path
        for key, element in document.items():
            if "BulkDataURI" in element and not key.startswith("7FE0"):
                [value] = dicomweb.retrieve_bulkdata(element["BulkDataURI"])
                expected = original[int(key, 16)].value
                if original.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2":
                    continue  # sent little endian (PS3.18 8.7.3.3.2), not as stored
                assert value == expected, (item.path, key)
