"""The study list: search [STU-1], modality [STU-2] and date filters [STU-3], ordering and
pagination [STU-4], and its query count."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from studies.selectors import ORDERING_FIELDS, DateRange, date_range_bounds, wildcard_q
from tests.api.factories import make_patient, make_study

pytestmark = pytest.mark.django_db


def uids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["study_instance_uid"] for row in response.json()["results"]}


def search(api, text: str, field: str = "patient_name", **extra) -> set[str]:
    return uids(api.get("/api/studies/", {"search": text, "search_field": field, **extra}))


@pytest.fixture
def names():
    """Studies of patients with names in several scripts, keyed by a short label."""
    rows = {
        "smith": "Smith^John",
        "smithson": "Smithson^Anna",
        "goldsmith": "Goldsmith^Ruth",
        "smyth": "Smyth^Carl",
        "ivanov": "Иванов^Иван",
        "ivanova": "ИВАНОВА^Мария",
        "papadopoulos": "Παπαδόπουλος^Νίκος",
        "yamada": "山田^太郎=やまだ^たろう",
        "muller": "Müller^Jürgen",
        "dotted": "O.Brien^Pat",
        "caret": "Caret[x]^Y",
    }
    return {label: make_study(patient_name=name).study_instance_uid for label, name in rows.items()}


def test_it_lists_studies_with_patient_and_study_attributes(api):
    patient = make_patient(
        "Doe^Jane", "P-1", patient_birth_date=datetime.date(1980, 2, 3), patient_sex="F"
    )
    make_study(
        patient,
        study_date=datetime.date(2024, 5, 6),
        accession_number="ACC1",
        study_description="Chest",
        referring_physician_name="House^Gregory",
    )
    row = api.get("/api/studies/").json()["results"][0]
    assert row["patient_name"] == "Doe^Jane"
    assert row["patient_id"] == "P-1"
    assert row["patient_birth_date"] == "1980-02-03"
    assert row["patient_sex"] == "F"
    assert row["study_date"] == "2024-05-06"
    assert row["accession_number"] == "ACC1"
    assert row["study_description"] == "Chest"
    assert row["referring_physician_name"] == "House^Gregory"
    for key in ("number_of_series", "number_of_instances", "size_bytes", "received_at"):
        assert key in row


def test_search_is_a_prefix_match_by_default(api, names):
    assert search(api, "smith") == {names["smith"], names["smithson"]}


def test_a_leading_star_makes_it_a_contains_match(api, names):
    assert search(api, "*smith") == {names["smith"], names["smithson"], names["goldsmith"]}


def test_a_question_mark_matches_one_character(api, names):
    assert search(api, "sm?th") == {names["smith"], names["smithson"], names["smyth"]}


def test_a_star_inside_matches_any_run_of_characters(api, names):
    assert search(api, "s*son") == {names["smithson"]}
    assert search(api, "*d*smith") == {names["goldsmith"]}


def test_a_trailing_star_changes_nothing(api, names):
    assert search(api, "smith*") == search(api, "smith")


def test_search_is_case_insensitive_for_latin(api, names):
    assert search(api, "SMITH") == {names["smith"], names["smithson"]}
    assert search(api, "müller") == search(api, "MÜLLER") == {names["muller"]}


def test_search_is_case_insensitive_for_cyrillic(api, names):
    assert search(api, "иван") == {names["ivanov"], names["ivanova"]}
    assert search(api, "ИВАНОВ^И") == {names["ivanov"]}
    assert search(api, "*мария") == {names["ivanova"]}


def test_search_is_case_insensitive_for_greek(api, names):
    assert search(api, "ΠΑΠΑΔΌΠΟΥΛΟΣ") == {names["papadopoulos"]}
    assert search(api, "*νίκος") == {names["papadopoulos"]}


def test_search_matches_japanese_names(api, names):
    assert search(api, "山田") == {names["yamada"]}
    assert search(api, "*やまだ") == {names["yamada"]}
    assert search(api, "山?^太郎") == {names["yamada"]}


def test_wildcards_work_with_unicode(api, names):
    assert search(api, "ив?нов*") == {names["ivanov"], names["ivanova"]}


def test_regex_characters_in_the_search_are_literal(api, names):
    assert search(api, "o.b?ien") == {names["dotted"]}
    assert search(api, "ob?ien") == set()
    assert search(api, "caret[x]?y") == {names["caret"]}
    assert search(api, "*[x]") == {names["caret"]}


def test_sql_like_characters_in_the_search_are_literal(api, names):
    assert search(api, "%") == set()
    assert search(api, "_mith") == set()


def test_search_by_patient_id_and_accession_number(api):
    first = make_study(patient_id="ab-123", accession_number="RX2024-001")
    second = make_study(patient_id="AB-999", accession_number="rx2024-002")
    third = make_study(patient_id="XAB-1", accession_number="CT-1")
    assert search(api, "AB-", "patient_id") == {
        first.study_instance_uid,
        second.study_instance_uid,
    }
    assert search(api, "*b-1", "patient_id") == {
        first.study_instance_uid,
        third.study_instance_uid,
    }
    assert search(api, "rx2024-00?", "accession_number") == {
        first.study_instance_uid,
        second.study_instance_uid,
    }
    assert search(api, "*-002", "accession_number") == {second.study_instance_uid}


def test_search_over_128_characters_is_refused(api):
    response = api.get("/api/studies/", {"search": "x" * 129})
    assert response.status_code == 400
    assert "search" in response.json()["errors"]
    assert api.get("/api/studies/", {"search": "x" * 128}).status_code == 200


def test_an_unknown_search_field_is_refused(api):
    response = api.get("/api/studies/", {"search": "x", "search_field": "study_uid"})
    assert response.status_code == 400
    assert "search_field" in response.json()["errors"]


def test_a_search_of_only_stars_matches_everything(api, names):
    assert search(api, "**", page_size=100) == set(names.values())


# --- modality filter [STU-2] -----------------------------------------------------------


def _with_modalities(value: str):
    study = make_study()
    study.modalities_in_study = value
    study.save(update_fields=["modalities_in_study"])
    return study.study_instance_uid


def test_the_modality_filter_matches_any_of_the_given_modalities(api):
    ct = _with_modalities("CT")
    ct_sr = _with_modalities("CT\\SR")
    mr = _with_modalities("MR")
    pt_mr_sr = _with_modalities("MR\\PT\\SR")
    _with_modalities("US")
    assert uids(api.get("/api/studies/", {"modality": "CT"})) == {ct, ct_sr}
    assert uids(api.get("/api/studies/", {"modality": "mr,ct"})) == {ct, ct_sr, mr, pt_mr_sr}
    assert uids(api.get("/api/studies/", {"modality": "PT"})) == {pt_mr_sr}
    assert uids(api.get("/api/studies/", {"modality": "SR"})) == {ct_sr, pt_mr_sr}


def test_the_modality_filter_matches_whole_values_only(api):
    _with_modalities("CTX\\MRI")
    assert uids(api.get("/api/studies/", {"modality": "CT"})) == set()
    assert uids(api.get("/api/studies/", {"modality": "MR"})) == set()


def test_an_invalid_modality_is_refused(api):
    response = api.get("/api/studies/", {"modality": "CT,C%T"})
    assert response.status_code == 400
    assert "modality" in response.json()["errors"]


# --- date filters [STU-3] --------------------------------------------------------------


@pytest.fixture
def dated():
    """Studies at fixed offsets (days) from the server's local date."""
    today = timezone.localdate()
    offsets = {"today": 0, "d1": 1, "d6": 6, "d7": 7, "d29": 29, "d40": 40, "d364": 364}
    studies = {
        label: make_study(study_date=today - datetime.timedelta(days=days)).study_instance_uid
        for label, days in offsets.items()
    }
    studies["future"] = make_study(study_date=today + datetime.timedelta(days=3)).study_instance_uid
    studies["undated"] = make_study().study_instance_uid
    studies["old"] = make_study(study_date=today.replace(year=today.year - 2)).study_instance_uid
    return today, studies


def by_date(api, **params) -> set[str]:
    return uids(api.get("/api/studies/", {"page_size": 100, **params}))


def test_the_date_filter_today_and_yesterday(api, dated):
    _today, s = dated
    assert by_date(api, date="today") == {s["today"]}
    assert by_date(api, date="yesterday") == {s["d1"]}


def test_last_week_is_the_last_seven_days_including_today(api, dated):
    _today, s = dated
    assert by_date(api, date="last_week") == {s["today"], s["d1"], s["d6"]}


def test_last_month_and_last_year(api, dated):
    _today, s = dated
    assert by_date(api, date="last_month") == {s["today"], s["d1"], s["d6"], s["d7"], s["d29"]}
    assert by_date(api, date="last_year") == {
        s[k] for k in ("today", "d1", "d6", "d7", "d29", "d40", "d364")
    }


def test_all_time_lists_every_study(api, dated):
    _today, s = dated
    assert by_date(api, date="all") == set(s.values())


def test_an_exact_study_date(api, dated):
    today, s = dated
    assert by_date(api, study_date=str(today - datetime.timedelta(days=6))) == {s["d6"]}


def test_a_date_interval_is_inclusive(api, dated):
    today, s = dated
    params = {
        "date_from": str(today - datetime.timedelta(days=7)),
        "date_to": str(today - datetime.timedelta(days=1)),
    }
    assert by_date(api, **params) == {s["d1"], s["d6"], s["d7"]}
    assert by_date(api, date_from=str(today)) == {s["today"], s["future"]}
    assert by_date(api, date_to=str(today - datetime.timedelta(days=364))) == {
        s["d364"],
        s["old"],
    }


def test_an_interval_that_ends_before_it_starts_is_refused(api):
    response = api.get("/api/studies/", {"date_from": "2024-02-01", "date_to": "2024-01-01"})
    assert response.status_code == 400
    assert "date_to" in response.json()["errors"]


@pytest.mark.parametrize(
    "params",
    [
        {"study_date": "2024-13-01"},
        {"date_from": "yesterday"},
        {"date_to": "2024/01/01"},
        {"birth_date": "1980-02-30"},
        {"date": "last_decade"},
    ],
)
def test_bad_dates_are_refused(api, params):
    response = api.get("/api/studies/", params)
    assert response.status_code == 400
    assert set(response.json()["errors"]) == set(params)


def test_the_birth_date_filter(api):
    born = make_study(patient_birth_date=datetime.date(1970, 1, 1))
    make_study(patient_birth_date=datetime.date(1970, 1, 2))
    make_study()
    assert by_date(api, birth_date="1970-01-01") == {born.study_instance_uid}


def test_relative_ranges_clamp_to_the_end_of_shorter_months():
    assert date_range_bounds(DateRange.LAST_MONTH, datetime.date(2024, 3, 31)) == (
        datetime.date(2024, 2, 29),
        datetime.date(2024, 3, 31),
    )
    assert date_range_bounds(DateRange.LAST_YEAR, datetime.date(2024, 2, 29)) == (
        datetime.date(2023, 2, 28),
        datetime.date(2024, 2, 29),
    )
    assert date_range_bounds(DateRange.LAST_MONTH, datetime.date(2024, 1, 15)) == (
        datetime.date(2023, 12, 15),
        datetime.date(2024, 1, 15),
    )


# --- ordering and pagination [STU-4] ---------------------------------------------------


@pytest.fixture
def sortable():
    """Three studies that differ in every sortable column, in the same order for each."""
    base = timezone.now()
    for n, (name, sex, modalities) in enumerate(
        [("adams^a", "F", "CT"), ("Baker^B", "M", "CT\\MR"), ("cole^c", "O", "US")]
    ):
        study = make_study(
            patient_name=name,
            patient_id=f"ID{n}",
            patient_birth_date=datetime.date(1950 + n, 1, 1),
            patient_sex=sex,
            study_date=datetime.date(2020 + n, 1, 1),
            study_time=f"1{n}0000",
            accession_number=f"ACC{n}",
            study_description=f"desc {n}",
            referring_physician_name=f"Dr{n}",
            received_at=base + datetime.timedelta(minutes=n),
        )
        study.modalities_in_study = modalities
        study.number_of_series = n + 1
        study.number_of_instances = 10 * (n + 1)
        study.size_bytes = 1000 * (n + 1)
        study.save()


@pytest.mark.parametrize("column", sorted(ORDERING_FIELDS))
def test_it_sorts_on_every_column_both_ways(api, sortable, column):
    ascending = api.get("/api/studies/", {"ordering": column}).json()["results"]
    descending = api.get("/api/studies/", {"ordering": f"-{column}"}).json()["results"]
    assert [row["patient_id"] for row in ascending] == ["ID0", "ID1", "ID2"]
    assert [row["patient_id"] for row in descending] == ["ID2", "ID1", "ID0"]


def test_sorting_on_an_unknown_column_is_refused(api):
    response = api.get("/api/studies/", {"ordering": "password"})
    assert response.status_code == 400
    assert "ordering" in response.json()["errors"]


def test_studies_without_a_date_sort_last_both_ways(api):
    undated = make_study(patient_id="NODATE")
    make_study(study_date=datetime.date(2020, 1, 1))
    make_study(study_date=datetime.date(2021, 1, 1))
    for ordering in ("study_date", "-study_date"):
        rows = api.get("/api/studies/", {"ordering": ordering}).json()["results"]
        assert rows[-1]["study_instance_uid"] == undated.study_instance_uid


def test_the_newest_received_study_comes_first_by_default(api, sortable):
    rows = api.get("/api/studies/").json()["results"]
    assert [row["patient_id"] for row in rows] == ["ID2", "ID1", "ID0"]


@pytest.mark.parametrize("page_size", [15, 30, 50, 100])
def test_it_pages_with_each_offered_page_size(api, page_size):
    for _ in range(101):
        make_study()
    body = api.get("/api/studies/", {"page_size": page_size}).json()
    assert body["count"] == 101
    assert len(body["results"]) == page_size
    last = api.get("/api/studies/", {"page_size": page_size, "page": "last"}).json()
    assert len(last["results"]) == (101 % page_size or page_size)
    assert last["next"] is None


def test_the_default_page_size_is_15(api):
    for _ in range(16):
        make_study()
    body = api.get("/api/studies/").json()
    assert len(body["results"]) == 15
    assert body["next"]
    second = api.get("/api/studies/", {"page": 2}).json()
    assert len(second["results"]) == 1
    assert second["previous"]


@pytest.mark.parametrize("page_size", ["7", "0", "1000", "abc"])
def test_a_page_size_that_is_not_offered_is_refused(api, page_size):
    response = api.get("/api/studies/", {"page_size": page_size})
    assert response.status_code == 400
    assert "page_size" in response.json()["errors"]


def test_a_page_past_the_end_is_404(api):
    make_study()
    assert api.get("/api/studies/", {"page": 5}).status_code == 404


def test_the_study_list_costs_the_same_queries_for_1_and_30_studies(api, django_assert_num_queries):
    make_study()
    with django_assert_num_queries(2):
        assert len(api.get("/api/studies/", {"page_size": 30}).json()["results"]) == 1
    for _ in range(29):
        make_study()
    with django_assert_num_queries(2):
        assert len(api.get("/api/studies/", {"page_size": 30}).json()["results"]) == 30


def test_the_search_queries_need_a_regex_only_for_inner_wildcards():
    assert "regex" not in str(wildcard_q("f", "abc", case_insensitive=False))
    assert "regex" not in str(wildcard_q("f", "*abc*", case_insensitive=False))
    assert "startswith" in str(wildcard_q("f", "abc", case_insensitive=True))
    assert "regex" in str(wildcard_q("f", "a?c", case_insensitive=False))
    assert "regex" in str(wildcard_q("f", "a*c", case_insensitive=False))


def test_a_page_tells_its_number_size_and_the_number_of_pages(api):
    for _ in range(31):
        make_study()
    body = api.get("/api/studies/", {"page_size": 15, "page": "last"}).json()
    assert {k: body[k] for k in ("count", "page", "page_size", "total_pages")} == {
        "count": 31,
        "page": 3,
        "page_size": 15,
        "total_pages": 3,
    }
