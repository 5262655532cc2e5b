"""Reads of the index for the console: the study search [STU-1]-[STU-4].

The wildcard translation (:func:`wildcard_q`) is deliberately small and self-contained so that
it can move into the query engine (``studies/matching.py``) that C-FIND and QIDO-RS share.
"""

from __future__ import annotations

import calendar
import datetime
from dataclasses import dataclass
from enum import StrEnum

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from studies.models import Series, Study

MAX_SEARCH_LENGTH = 128

# The regex metacharacters common to Python's ``re`` (SQLite's REGEXP in Django) and
# PostgreSQL's ARE; each is escaped with a backslash, which both read as a literal.
_REGEX_SPECIAL = set("\\.^$|?*+()[]{}")


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


def _regex_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in _REGEX_SPECIAL else char for char in text)


def wildcard_q(field: str, pattern: str, *, case_insensitive: bool) -> Q:
    """Match ``field`` against a console search pattern [STU-1].

    - plain text is a prefix match (``Smi`` finds ``Smith``);
    - a leading ``*`` makes it a "contains" match (``*mit`` finds ``Smith``);
    - ``*`` (any run of characters) and ``?`` (one character) may appear inside.

    Patterns without inner wildcards become ``startswith`` / ``contains`` lookups, which
    PostgreSQL can serve from an index; only ``?`` or an inner ``*`` needs a regular expression
    (anchored at the start unless the pattern starts with ``*``). With ``case_insensitive``
    False the caller passes an already case-folded pattern and a case-folded column, which is
    how names match case-insensitively for every script on SQLite and PostgreSQL alike.
    """
    contains = pattern.startswith("*")
    core = pattern.lstrip("*").rstrip("*")
    if not core:
        return Q()
    prefix = "i" if case_insensitive else ""
    if "*" not in core and "?" not in core:
        lookup = "contains" if contains else "startswith"
        return Q(**{f"{field}__{prefix}{lookup}": core})
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else _regex_escape(char) for char in core
    )
    if not contains:
        regex = "^" + regex
    return Q(**{f"{field}__{prefix}regex": regex})


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
    return (
        Q(modalities_in_study=modality)
        | Q(modalities_in_study__startswith=f"{modality}\\")
        | Q(modalities_in_study__endswith=f"\\{modality}")
        | Q(modalities_in_study__contains=f"\\{modality}\\")
    )


def _search_q(search: str, search_field: SearchField) -> Q:
    if search_field is SearchField.PATIENT_NAME:
        return wildcard_q("patient__patient_name_search", search.casefold(), case_insensitive=False)
    column = "patient__patient_id" if search_field is SearchField.PATIENT_ID else "accession_number"
    return wildcard_q(column, search, case_insensitive=True)


def _order_by(ordering: str) -> list:
    descending = ordering.startswith("-")
    column = ORDERING_FIELDS[ordering.lstrip("-")]
    # NULLs last in both directions, so SQLite and PostgreSQL page the same way.
    key = F(column).desc(nulls_last=True) if descending else F(column).asc(nulls_last=True)
    return [key, "-id" if descending else "id"]


def search_studies(params: StudySearch) -> QuerySet[Study]:
    """The console study list: search, filters and ordering; one query with the patient."""
    queryset = Study.objects.select_related("patient")
    if params.search:
        queryset = queryset.filter(_search_q(params.search, params.search_field))
    if params.modalities:
        any_modality = Q()
        for modality in params.modalities:
            any_modality |= modality_q(modality)
        queryset = queryset.filter(any_modality)
    bounds = date_range_bounds(params.date)
    if bounds:
        queryset = queryset.filter(study_date__range=bounds)
    if params.study_date:
        queryset = queryset.filter(study_date=params.study_date)
    if params.date_from:
        queryset = queryset.filter(study_date__gte=params.date_from)
    if params.date_to:
        queryset = queryset.filter(study_date__lte=params.date_to)
    if params.birth_date:
        queryset = queryset.filter(patient__patient_birth_date=params.birth_date)
    return queryset.order_by(*_order_by(params.ordering))


def series_of_study(study: Study) -> QuerySet[Series]:
    """The series panel of a study [STU-7], in series-number order."""
    return study.series.order_by(F("series_number").asc(nulls_last=True), "id")
