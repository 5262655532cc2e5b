"""Reads of the index for the console: the study search [STU-1]-[STU-4].

The console search runs on the query engine that C-FIND uses (``studies/matching.py``,
[QR-5]): its patterns are DICOM wildcard patterns (PS3.4 C.2.2.2.4) with the console's
"prefix by default" rule added, its modality filter is ModalitiesInStudy matching, and its
date filters are DA range matching (C.2.2.2.5).
"""

from __future__ import annotations

import calendar
import datetime
from dataclasses import dataclass
from enum import StrEnum

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from studies import matching
from studies.models import Series, Study

MAX_SEARCH_LENGTH = 128


class SearchField(StrEnum):
    """What the console search box matches [STU-1]."""

    PATIENT_NAME = "patient_name"
    PATIENT_ID = "patient_id"
    ACCESSION_NUMBER = "accession_number"


class DateRange(StrEnum):
    """Relative study-date filters [STU-3], all counted back from the server's local date."""

    ALL = "all"
    TODAY = "today"
    YESTERDAY = "yesterday"
    LAST_WEEK = "last_week"  # the last 7 days including today
    LAST_MONTH = "last_month"  # from the same day one calendar month ago through today
    LAST_YEAR = "last_year"  # from the same day one year ago through today


# Ordering keys of the console list -> the column sorted on. Names sort case-insensitively
# (on the case-folded copy).
ORDERING_FIELDS: dict[str, str] = {
    "patient_name": "patient__patient_name_search",
    "patient_id": "patient__patient_id",
    "patient_birth_date": "patient__patient_birth_date",
    "patient_sex": "patient__patient_sex",
    "study_date": "study_date",
    "study_time": "study_time",
    "accession_number": "accession_number",
    "study_description": "study_description",
    "referring_physician_name": "referring_physician_name",
    "modalities_in_study": "modalities_in_study",
    "number_of_series": "number_of_series",
    "number_of_instances": "number_of_instances",
    "received_at": "received_at",
    "size_bytes": "size_bytes",
}
DEFAULT_ORDERING = "-received_at"


@dataclass(frozen=True)
class StudySearch:
    """Validated parameters of the console study search."""

    search: str = ""
    search_field: SearchField = SearchField.PATIENT_NAME
    modalities: tuple[str, ...] = ()
    date: DateRange = DateRange.ALL
    study_date: datetime.date | None = None
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    birth_date: datetime.date | None = None
    ordering: str = DEFAULT_ORDERING


def console_pattern(pattern: str) -> str:
    """A console search pattern as a DICOM wildcard pattern: plain text is a prefix match
    (``Smi`` -> ``Smi*``), a leading ``*`` makes it "contains" (``*mit`` -> ``*mit*``)."""
    return pattern if pattern.endswith("*") else f"{pattern}*"


def wildcard_q(field: str, pattern: str, *, case_insensitive: bool) -> Q:
    """Match ``field`` against a console search pattern [STU-1]:

    - plain text is a prefix match (``Smi`` finds ``Smith``);
    - a leading ``*`` makes it a "contains" match (``*mit`` finds ``Smith``);
    - ``*`` (any run of characters) and ``?`` (one character) may appear inside.

    The translation is the query engine's wild card matching
    (:func:`studies.matching.wildcard_q`): prefix and contains patterns stay index-friendly
    ``startswith`` / ``contains`` lookups. With ``case_insensitive`` False the caller passes
    an already case-folded pattern and a case-folded column (names, every script)."""
    return matching.wildcard_q(field, console_pattern(pattern), case_insensitive=case_insensitive)


def _months_back(day: datetime.date, months: int) -> datetime.date:
    """The same day ``months`` calendar months earlier, clamped to the month's last day."""
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    return datetime.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def date_range_bounds(
    date_range: DateRange, today: datetime.date | None = None
) -> tuple[datetime.date, datetime.date] | None:
    """Inclusive study-date bounds of a relative filter; None for "all"."""
    today = today or timezone.localdate()
    match date_range:
        case DateRange.ALL:
            return None
        case DateRange.TODAY:
            return today, today
        case DateRange.YESTERDAY:
            yesterday = today - datetime.timedelta(days=1)
            return yesterday, yesterday
        case DateRange.LAST_WEEK:
            return today - datetime.timedelta(days=6), today
        case DateRange.LAST_MONTH:
            return _months_back(today, 1), today
        case DateRange.LAST_YEAR:
            return _months_back(today, 12), today
    raise ValueError(date_range)


def modality_q(modality: str) -> Q:
    """Studies whose ModalitiesInStudy (backslash-separated) holds ``modality`` as a value."""
    return matching.modality_in_study_q(modality)


def search_q(search: str, search_field: SearchField, *, patient_path: str = "patient__") -> Q:
    """The console search [STU-1] on patient name, patient ID or accession number;
    ``patient_path`` reaches the patient columns (empty where they are on the row itself,
    as on a worklist procedure)."""
    if search_field is SearchField.PATIENT_NAME:
        name = search.casefold()
        return wildcard_q(f"{patient_path}patient_name_search", name, case_insensitive=False)
    if search_field is SearchField.PATIENT_ID:
        return wildcard_q(f"{patient_path}patient_id", search, case_insensitive=True)
    return wildcard_q("accession_number", search, case_insensitive=True)


def date_range_q(column: str, low: datetime.date | None, high: datetime.date | None) -> Q:
    """DA range matching (PS3.4 C.2.2.2.5), open at either end."""
    value = f"{low:%Y%m%d}" if low else ""
    value += "-" + (f"{high:%Y%m%d}" if high else "")
    return matching.range_q(column, value, "DA")


def order_by(ordering: str, columns: dict[str, str]) -> list:
    """The ORDER BY of a console list [STU-4]: ``ordering`` is a key of ``columns``,
    ``-`` first for descending; the primary key breaks ties."""
    descending = ordering.startswith("-")
    column = columns[ordering.lstrip("-")]
    # NULLs last in both directions, so SQLite and PostgreSQL page the same way.
    key = F(column).desc(nulls_last=True) if descending else F(column).asc(nulls_last=True)
    return [key, "-id" if descending else "id"]


def search_studies(params: StudySearch) -> QuerySet[Study]:
    """The console study list: search, filters and ordering; one query with the patient."""
    queryset = Study.objects.select_related("patient")
    if params.search:
        queryset = queryset.filter(search_q(params.search, params.search_field))
    if params.modalities:
        any_modality = Q()
        for modality in params.modalities:
            any_modality |= modality_q(modality)
        queryset = queryset.filter(any_modality)
    bounds = date_range_bounds(params.date)
    if bounds:
        queryset = queryset.filter(date_range_q("study_date", *bounds))
    if params.study_date:
        queryset = queryset.filter(matching.single_value_q("study_date", params.study_date))
    if params.date_from or params.date_to:
        queryset = queryset.filter(date_range_q("study_date", params.date_from, params.date_to))
    if params.birth_date:
        queryset = queryset.filter(
            matching.single_value_q("patient__patient_birth_date", params.birth_date)
        )
    return queryset.order_by(*order_by(params.ordering, ORDERING_FIELDS))


def series_of_study(study: Study) -> QuerySet[Series]:
    """The series panel of a study [STU-7], in series-number order."""
    return study.series.order_by(F("series_number").asc(nulls_last=True), "id")
