"""Keyset pagination of the C-FIND engines (studies.query.pages_by_pk)."""

from __future__ import annotations

import pytest

from studies.models import Patient
from studies.query import FIRST_PAGE, PAGE, pages_by_pk


@pytest.mark.django_db
def test_rows_come_in_a_small_first_page_then_large_pages_each_once_in_order() -> None:
    Patient.objects.bulk_create(
        Patient(patient_id=f"P{i:04d}") for i in range(FIRST_PAGE + PAGE + 50)
    )

    pages = list(pages_by_pk(Patient.objects.order_by("pk")))

    assert [len(page) for page in pages] == [FIRST_PAGE, PAGE, 50]
    ids = [row.patient_id for page in pages for row in page]
    assert ids == [f"P{i:04d}" for i in range(FIRST_PAGE + PAGE + 50)]


@pytest.mark.django_db
def test_a_query_without_rows_gives_no_page() -> None:
    assert list(pages_by_pk(Patient.objects.order_by("pk"))) == []
