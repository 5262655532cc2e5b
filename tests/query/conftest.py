"""Fixtures of the query tests: the dev corpus loaded through the one ingest service."""

from __future__ import annotations

import io

import pytest

from studies.services import Origin, Outcome, store_stream


def ingest_corpus(corpus_dir) -> int:
    """Every file of ``corpus/dev`` through the ingest service; the number stored."""
    stored = 0
    for path in sorted((corpus_dir / "dev").glob("*.dcm")):
        result = store_stream(io.BytesIO(path.read_bytes()), origin=Origin(kind="import"))
        stored += result.outcome is Outcome.STORED
    return stored


@pytest.fixture
def corpus_index(pacs_runtime, corpus_dir):
    """The dev corpus indexed (committed to the test transaction)."""
    assert ingest_corpus(corpus_dir) > 50


@pytest.fixture
def corpus_index_tx(pacs_runtime_tx, corpus_dir):
    """The dev corpus indexed and committed, for tests where the SCP's threads read it."""
    assert ingest_corpus(corpus_dir) > 50
